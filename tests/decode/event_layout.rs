//! The Rust mirror of `struct mcpspy_event` and its constants must match
//! bpf/mcpspy.h as a C compiler lays it out.

use mcpspy::event::{self, EventHeader};
use std::mem::{offset_of, size_of};
use std::process::Command;

/// Compiles a probe against the header and returns "name value" lines.
fn c_facts() -> Vec<(String, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("probe.c");
    let bin = dir.path().join("probe");
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/types.h>\n#include \"mcpspy.h\"\n\
         #define P(n, v) printf(\"%s %llu\\n\", n, (unsigned long long)(v))\nint main(void) {\n\
         P(\"sizeof\", sizeof(struct mcpspy_event));\n",
    );
    for f in FIELDS {
        c.push_str(&format!(
            "P(\"{f}\", offsetof(struct mcpspy_event, {f}));\n"
        ));
    }
    for (name, _) in constants() {
        c.push_str(&format!("P(\"{name}\", {name});\n"));
    }
    c.push_str("return 0; }\n");
    std::fs::write(&src, c).unwrap();
    let bpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-I", bpf_dir, "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e} (install a C compiler: scripts/setup.sh)"));
    assert!(
        out.status.success(),
        "{cc} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().unwrap();
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.to_string(), v.parse().unwrap())
        })
        .collect()
}

const FIELDS: [&str; 22] = [
    "kind",
    "call",
    "direction",
    "fd_kind",
    "flags",
    "len",
    "fd",
    "ts_ns",
    "tgid",
    "tid",
    "ino",
    "peer_ino",
    "stream_off",
    "call_len",
    "call_off",
    "ssl",
    "laddr",
    "raddr",
    "lport",
    "rport",
    "_pad",
    "comm",
];

fn rust_offset(field: &str) -> usize {
    match field {
        "kind" => offset_of!(EventHeader, kind),
        "call" => offset_of!(EventHeader, call),
        "direction" => offset_of!(EventHeader, direction),
        "fd_kind" => offset_of!(EventHeader, fd_kind),
        "flags" => offset_of!(EventHeader, flags),
        "len" => offset_of!(EventHeader, len),
        "fd" => offset_of!(EventHeader, fd),
        "ts_ns" => offset_of!(EventHeader, ts_ns),
        "tgid" => offset_of!(EventHeader, tgid),
        "tid" => offset_of!(EventHeader, tid),
        "ino" => offset_of!(EventHeader, ino),
        "peer_ino" => offset_of!(EventHeader, peer_ino),
        "stream_off" => offset_of!(EventHeader, stream_off),
        "call_len" => offset_of!(EventHeader, call_len),
        "call_off" => offset_of!(EventHeader, call_off),
        "ssl" => offset_of!(EventHeader, ssl),
        "laddr" => offset_of!(EventHeader, laddr),
        "raddr" => offset_of!(EventHeader, raddr),
        "lport" => offset_of!(EventHeader, lport),
        "rport" => offset_of!(EventHeader, rport),
        "_pad" => offset_of!(EventHeader, _pad),
        "comm" => offset_of!(EventHeader, comm),
        other => panic!("unknown field {other}"),
    }
}

fn constants() -> Vec<(&'static str, u64)> {
    use event::{call, counter, end_counter, fd_kind, flags, kind};
    vec![
        ("MCPSPY_EVENT_VERSION", event::EVENT_VERSION as u64),
        ("MCPSPY_COMM_LEN", event::COMM_LEN as u64),
        ("MCPSPY_CHUNK_MAX", event::CHUNK_MAX as u64),
        ("MCPSPY_REC_DATA", kind::DATA as u64),
        ("MCPSPY_REC_EXEC", kind::EXEC as u64),
        ("MCPSPY_REC_END", kind::END as u64),
        ("MCPSPY_CALL_READ", call::READ as u64),
        ("MCPSPY_CALL_WRITE", call::WRITE as u64),
        ("MCPSPY_CALL_READV", call::READV as u64),
        ("MCPSPY_CALL_WRITEV", call::WRITEV as u64),
        ("MCPSPY_CALL_RECVFROM", call::RECVFROM as u64),
        ("MCPSPY_CALL_SENDTO", call::SENDTO as u64),
        ("MCPSPY_CALL_RECVMSG", call::RECVMSG as u64),
        ("MCPSPY_CALL_SENDMSG", call::SENDMSG as u64),
        ("MCPSPY_CALL_SSL_READ", call::SSL_READ as u64),
        ("MCPSPY_CALL_SSL_WRITE", call::SSL_WRITE as u64),
        ("MCPSPY_CALL_CLOSE", call::CLOSE as u64),
        ("MCPSPY_DIR_READ", 0),
        ("MCPSPY_DIR_WRITE", 1),
        ("MCPSPY_FD_PIPE", fd_kind::PIPE as u64),
        ("MCPSPY_FD_UNIX", fd_kind::UNIX as u64),
        ("MCPSPY_FD_TCP4", fd_kind::TCP4 as u64),
        ("MCPSPY_FD_TCP6", fd_kind::TCP6 as u64),
        ("MCPSPY_FD_OTHER", fd_kind::OTHER as u64),
        ("MCPSPY_F_READ_FAILED", flags::READ_FAILED as u64),
        ("MCPSPY_F_TRUNCATED", flags::TRUNCATED as u64),
        ("MCPSPY_F_STREAM_START", flags::STREAM_START as u64),
        ("MCPSPY_F_TLS", flags::TLS as u64),
        ("MCPSPY_CNT_EVENTS", counter::EVENTS as u64),
        ("MCPSPY_CNT_BYTES", counter::BYTES as u64),
        ("MCPSPY_CNT_RING_FULL", counter::RING_FULL as u64),
        (
            "MCPSPY_CNT_RING_FULL_BYTES",
            counter::RING_FULL_BYTES as u64,
        ),
        ("MCPSPY_CNT_READ_FAILED", counter::READ_FAILED as u64),
        ("MCPSPY_CNT_MAP_FULL", counter::MAP_FULL as u64),
        ("MCPSPY_CNT_TRUNCATED", counter::TRUNCATED as u64),
        (
            "MCPSPY_CNT_TRUNCATED_BYTES",
            counter::TRUNCATED_BYTES as u64,
        ),
        ("MCPSPY_CNT_MAX", counter::COUNT as u64),
        ("MCPSPY_END_SUBMITTED", end_counter::SUBMITTED as u64),
        ("MCPSPY_END_RING_FULL", end_counter::RING_FULL as u64),
        ("MCPSPY_END_MAX", end_counter::COUNT as u64),
    ]
}

#[test]
fn rust_mirror_matches_the_c_header() {
    let facts = c_facts();
    let get = |name: &str| {
        facts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("probe did not print {name}"))
            .1
    };
    assert_eq!(
        get("sizeof"),
        size_of::<EventHeader>() as u64,
        "struct size"
    );
    assert_eq!(event::HEADER_LEN, size_of::<EventHeader>());
    for f in FIELDS {
        assert_eq!(get(f), rust_offset(f) as u64, "offset of {f}");
    }
    for (name, value) in constants() {
        assert_eq!(get(name), value, "{name}");
    }
}
