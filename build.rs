//! Compiles bpf/mcpspy.bpf.c and generates its Rust skeleton; the object is embedded in the binary.
use libbpf_cargo::SkeletonBuilder;
use std::{env, path::PathBuf};

const SRC: &str = "bpf/mcpspy.bpf.c";

fn main() {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("mcpspy.skel.rs");
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-I", "bpf", "-Wall", "-Wno-unused-function"])
        .build_and_generate(&out)
        .expect("compiling bpf/mcpspy.bpf.c (is clang installed? run scripts/setup.sh)");
    // The object is mcpspy.bpf.c and the headers it includes: any change in bpf/.
    println!("cargo:rerun-if-changed=bpf");
}
