//! Attaching the TLS probes. Where the kernel has uprobe_multi links (6.6
//! and later), every offset of a program in one binary is one link, which
//! detaches in one step; a perf-event uprobe per offset detaches one grace
//! period each, which made stopping a recording take seconds (issue 13).
//! The choice is made before the programs load: a program loaded for
//! multi links attaches only through them.

use libbpf_rs::{Link, OpenProgramMut, ProgramAttachType, ProgramMut, UprobeMultiOpts, UprobeOpts};
use std::path::Path;

/// Whether this kernel has uprobe_multi links: its BTF has their type.
/// MCPSPY_UPROBE_MULTI=0 in the environment says no, to use (and test) the
/// perf-event uprobes older kernels need.
pub fn multi_supported() -> bool {
    if std::env::var_os("MCPSPY_UPROBE_MULTI").is_some_and(|v| v == "0") {
        return false;
    }
    libbpf_rs::btf::Btf::from_vmlinux().is_ok_and(|btf| {
        btf.type_by_name::<libbpf_rs::btf::types::Struct<'_>>("bpf_uprobe_multi_link")
            .is_some()
    })
}

/// Loads `prog` for multi links when `multi`.
pub fn prepare(prog: &mut OpenProgramMut<'_>, multi: bool) {
    if multi {
        prog.set_attach_type(ProgramAttachType::TraceUprobeMulti);
    }
}

/// Whether `prog` was loaded for multi links.
pub fn is_multi(prog: &ProgramMut<'_>) -> bool {
    matches!(prog.attach_type(), ProgramAttachType::TraceUprobeMulti)
}

/// Where in a binary a probe goes.
pub enum Site<'a> {
    /// An exported function, found by the loader.
    Function(&'a str),
    /// File offsets of instructions.
    Offsets(&'a [u64]),
}

/// Attaches `prog` at `site` of `path` for every process that runs it, now
/// or later: one link, or one per offset where multi links are absent.
pub fn attach(
    prog: &ProgramMut<'_>,
    path: &Path,
    site: Site<'_>,
    retprobe: bool,
) -> libbpf_rs::Result<Vec<Link>> {
    if is_multi(prog) {
        // A function by pattern: an exact name has no glob characters.
        // (libbpf's `syms` missed the versioned exports of libssl.so.3.)
        let (pattern, offsets) = match site {
            Site::Function(f) => (f, Vec::new()),
            Site::Offsets(offsets) => ("", offsets.iter().map(|&o| o as usize).collect()),
        };
        let opts = UprobeMultiOpts {
            offsets,
            retprobe,
            ..Default::default()
        };
        return Ok(vec![
            prog.attach_uprobe_multi_with_opts(-1, path, pattern, opts)?
        ]);
    }
    let one = |func_name: Option<String>, offset: u64| {
        prog.attach_uprobe_with_opts(
            -1,
            path,
            offset as usize,
            UprobeOpts {
                func_name,
                retprobe,
                ..Default::default()
            },
        )
    };
    match site {
        Site::Function(f) => Ok(vec![one(Some(f.to_string()), 0)?]),
        Site::Offsets(offsets) => offsets.iter().map(|&o| one(None, o)).collect(),
    }
}
