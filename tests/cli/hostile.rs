//! Files from strangers: what sits beside a capture cannot hang a reader
//! or be written to, a file that cannot be read says why (permission,
//! damage, not a capture), and no command changes a byte of what it reads.

use super::{mcpspy, mkfifo, s, session, stderr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every command that reads a capture.
const READERS: [&[&str]; 6] = [
    &["replay"],
    &["query", "--summary"],
    &["export"],
    &["info"],
    &["verify"],
    &["show", "1"],
];

/// Runs mcpspy, killing it (and failing) if it runs for 60 s: a hang.
/// Its output goes to files (a full pipe would stop it).
fn bounded(args: &[&str]) -> Output {
    bounded_from(args, Stdio::null())
}

/// As [`bounded`], reading `stdin`.
fn bounded_from(args: &[&str], stdin: Stdio) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = super::support::mcpspy_command()
        .args(args)
        .stdin(stdin)
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// The run was refused (exit 2), saying `why`; `what` names the run.
fn refused(o: &Output, why: &str, what: &str) {
    assert_eq!(o.status.code(), Some(2), "{what}: {}", said(o));
    assert!(stderr(o).contains(why), "{what}: {}", said(o));
}

/// What a command said, on either stream (verify reports on stdout).
fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}

fn with<'a>(cmd: &[&'a str], cap: &'a Path) -> Vec<&'a str> {
    let mut all = vec![cmd[0], s(cap)];
    all.extend_from_slice(&cmd[1..]);
    all
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_fifo_beside_the_capture_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    for side in ["-journal", "-wal", "-shm"] {
        let fifo = format!("{}{side}", cap.display());
        mkfifo(&fifo);
        for cmd in READERS {
            refused(
                &bounded(&with(cmd, &cap)),
                "is not a regular file",
                &format!("{side} {cmd:?}"),
            );
        }
        std::fs::remove_file(&fifo).unwrap();
    }
}

#[test]
fn a_wal_beside_the_capture_is_ignored_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let wal = format!("{}-wal", cap.display());
    std::fs::write(&wal, b"not a write-ahead log, and never read").unwrap();
    let before = listing(dir.path());
    let bytes = std::fs::read(&cap).unwrap();
    for cmd in READERS {
        let o = bounded(&with(cmd, &cap));
        assert!(o.status.code() == Some(0), "{cmd:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("-wal beside the capture is ignored"),
            "{cmd:?}: {}",
            stderr(&o)
        );
        assert_eq!(
            listing(dir.path()),
            before,
            "{cmd:?}: no -shm, nothing new beside it"
        );
    }
    assert_eq!(std::fs::read(&cap).unwrap(), bytes);
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        b"not a write-ahead log, and never read"
    );
}

#[test]
fn a_capture_the_user_may_not_read_says_permission_denied() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "\n*** SKIPPED a_capture_the_user_may_not_read...: needs root to drop to nobody ***\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cap = session(dir.path());
    std::fs::set_permissions(&cap, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for cmd in READERS {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_mcpspy"))
            .args(with(cmd, &cap))
            .output()
            .expect("setpriv (util-linux)");
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("ermission denied"), "{cmd:?}: {err}");
        assert!(!err.contains("not an mcpspy capture"), "{cmd:?}: {err}");
        assert!(
            err.contains(s(&cap)),
            "{cmd:?}: names the user's file: {err}"
        );
    }
}

#[test]
fn a_truncated_capture_reads_as_damaged_never_as_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let whole = std::fs::read(root.join("py_http.db")).unwrap();
    for keep in [whole.len() / 2, whole.len() - 4096, 8192] {
        let cap = dir.path().join(format!("cut-{keep}.db"));
        std::fs::write(&cap, &whole[..keep]).unwrap();
        for cmd in READERS {
            let o = bounded(&with(cmd, &cap));
            let err = said(&o);
            assert!(!err.contains("panicked"), "{cmd:?} {keep}: {err}");
            assert!(
                !err.contains("not an mcpspy capture"),
                "{cmd:?} {keep}: {err}"
            );
            assert!(
                o.status.code() != Some(0) && (err.contains("damaged") || err.contains("altered")),
                "{cmd:?} cut at {keep}: {:?} {err}",
                o.status
            );
            assert!(
                !err.contains("/tmp/.tmp") || err.contains(s(&cap)),
                "names the user's file: {err}"
            );
        }
    }
}

#[test]
fn no_command_changes_a_byte_of_what_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let sealed = dir.path().join("sealed.db");
    std::fs::copy(root.join("py_stdio_sealed.db"), &sealed).unwrap();
    let plain = session(dir.path());
    for cap in [&sealed, &plain] {
        let before = std::fs::read(cap).unwrap();
        let names = listing(dir.path());
        for cmd in READERS.iter().copied().chain([
            &["verify", "--deep", "--json"][..],
            &["query", "--method", "tools/call"],
        ]) {
            let o = mcpspy(&with(cmd, cap));
            assert!(o.status.code() != Some(2), "{cmd:?}: {}", stderr(&o));
            assert_eq!(
                std::fs::read(cap).unwrap(),
                before,
                "{cmd:?} changed {}",
                cap.display()
            );
            assert_eq!(
                listing(dir.path()),
                names,
                "{cmd:?} wrote beside {}",
                cap.display()
            );
        }
    }
}

/// A file handed to a command beside its capture (rules, a key, a
/// baseline) is read only if it is a regular file: a FIFO would hang the
/// command and /dev/zero would fill its memory.
#[test]
fn a_rules_key_or_baseline_file_must_be_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let out = dir.path().join("out.db");
    for bad in [s(&fifo), "/dev/zero"] {
        let runs: [Vec<&str>; 6] = [
            vec!["check", s(&cap), "--rules", bad],
            vec!["check", s(&cap), "--secret-rules", bad],
            vec!["check", s(&cap), "--baseline", bad],
            vec!["redact", s(&cap), "-o", s(&out), "--rules", bad],
            vec!["redact", s(&cap), "-o", s(&out), "--key-file", bad],
            vec!["verify", s(&cap), "--key", bad],
        ];
        for args in runs {
            refused(&bounded(&args), "not a regular file", &format!("{args:?}"));
            assert!(!out.exists(), "{args:?} wrote its output");
        }
    }
}

/// An output that is the capture being read is refused, even with --force:
/// the file stays as it was.
#[test]
fn no_output_overwrites_the_capture_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let before = std::fs::read(&cap).unwrap();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&cap, &link).unwrap();
    for out in [s(&cap), s(&link)] {
        for args in [
            vec!["export", s(&cap), "-o", out, "--force"],
            vec!["check", s(&cap), "-o", out, "--force"],
            vec!["check", s(&cap), "--write-baseline", out, "--force"],
        ] {
            refused(
                &bounded(&args),
                "is the capture being read",
                &format!("{args:?}"),
            );
            assert!(std::fs::read(&cap).unwrap() == before, "{args:?}");
        }
    }
}

/// Standard input that is not a capture is refused from its first bytes,
/// not spooled to a temporary file first: an endless stream ends at once.
#[test]
fn endless_standard_input_is_refused_from_its_first_bytes() {
    for cmd in READERS {
        let mut args = vec![cmd[0], "-"];
        args.extend_from_slice(&cmd[1..]);
        let zero = std::fs::File::open("/dev/zero").unwrap();
        refused(
            &bounded_from(&args, zero.into()),
            "not an mcpspy capture",
            &format!("{args:?}"),
        );
    }
}
