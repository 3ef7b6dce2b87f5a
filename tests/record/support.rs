//! Helpers for tests that record with the real kernel programs.
#![allow(dead_code)]

use mcpspy::capture::{CaptureReader, Record};
use mcpspy::event::{kind, Direction};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcpspy");

/// Recording tests watch the whole host: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when this test can load BPF programs. Says so loudly when it cannot.
pub fn bpf_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    if root && btf {
        return true;
    }
    eprintln!(
        "\n*** SKIPPED {test}: needs root and kernel BTF to load BPF (root: {root}, /sys/kernel/btf/vmlinux: {btf}) ***\n"
    );
    false
}

/// A BPF test's start: None where BPF cannot load (said loudly); else the
/// lock that runs BPF tests one at a time, and a scratch folder.
pub fn bpf_test(test: &str) -> Option<(MutexGuard<'static, ()>, tempfile::TempDir)> {
    if !bpf_available(test) {
        return None;
    }
    Some((serial(), tempfile::tempdir().expect("a scratch folder")))
}

pub struct Recorder {
    child: Child,
    pub path: PathBuf,
    stderr: std::sync::mpsc::Receiver<String>,
    pub stderr_lines: Vec<String>,
}

/// Starts `mcpspy record -o PATH ARGS...` and waits until it is attached.
pub fn start_recorder(path: &Path, args: &[&str]) -> Recorder {
    start_recorder_env(path, args, &[])
}

/// [`start_recorder`] with these variables added to its environment.
pub fn start_recorder_env(path: &Path, args: &[&str], env: &[(&str, &str)]) -> Recorder {
    let mut child = Command::new(BIN)
        .envs(env.iter().copied())
        .arg("record")
        .arg("-o")
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mcpspy record");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut rec = Recorder {
        child,
        path: path.to_path_buf(),
        stderr: rx,
        stderr_lines: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rec.stderr.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let attached = line.contains("recording to");
                rec.stderr_lines.push(line);
                if attached {
                    return rec;
                }
            }
            Err(_) => {
                if let Ok(Some(status)) = rec.child.try_wait() {
                    panic!(
                        "mcpspy record exited early ({status}): {:?}",
                        rec.stderr_lines
                    );
                }
                assert!(Instant::now() < deadline, "mcpspy record never attached");
            }
        }
    }
}

impl Recorder {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits for a clean exit; returns stdout.
    pub fn stop_with(self, signal: libc::c_int) -> (String, Vec<String>) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let (code, stdout, stderr) = self.wait();
        assert_eq!(code, Some(0), "mcpspy record failed: {stderr:?}");
        (stdout, stderr)
    }

    pub fn stop(self) -> (String, Vec<String>) {
        self.stop_with(libc::SIGINT)
    }

    /// Waits for the recorder to end by itself (the command form); returns
    /// its exit code, stdout and stderr lines.
    pub fn wait(mut self) -> (Option<i32>, String, Vec<String>) {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout)
                .expect("reading mcpspy's stdout");
        }
        let status = self.child.wait().expect("waiting for mcpspy");
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.stderr_lines.push(line);
        }
        (
            status.code(),
            stdout,
            std::mem::take(&mut self.stderr_lines),
        )
    }
}

/// A test that fails before stopping its recorder must not leave it running.
impl Drop for Recorder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every item `mcpspy export CAPTURE FILTER...` writes, as JSON.
pub fn export_items(capture: &Path, filter: &[&str]) -> Vec<serde_json::Value> {
    let out = succeed(Command::new(BIN).arg("export").arg(capture).args(filter));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The capture's `meta` value under `key`, parsed as JSON.
pub fn meta_json(capture: &Path, key: &str) -> serde_json::Value {
    let conn =
        rusqlite::Connection::open_with_flags(capture, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let text: String = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs `cmd` to its end and asserts that it succeeded; a failure shows its output.
pub fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One process's bytes on one pipe or socket, one direction, reassembled by
/// stream offset. `gaps` lists (offset, missing bytes) that the capture lacks.
#[derive(Default, Debug)]
pub struct Stream {
    pub bytes: Vec<u8>,
    pub gaps: Vec<(u64, u64)>,
    pub fd_kind: u8,
    pub peer_ino: u64,
    pub events: usize,
    pub comm: String,
    /// TCP: (local address, local port, remote address, remote port), once known.
    pub tcp: Option<(String, u16, String, u16)>,
    /// The kernel marked the stream's first record as its start.
    pub marked_start: bool,
}

/// A stream: `ino` is the pipe or socket inode, or the SSL* for TLS plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamKey {
    pub pid: u32,
    pub ino: u64,
    pub direction: Direction,
    pub tls: bool,
    /// 0, 1, …: the stream's starts over (an SSL* or socket reused).
    pub incarnation: u32,
}

/// Every data stream in a capture, reassembled. An SSL* (or a socket)
/// reused by a new connection starts its stream over from offset 0: each
/// such incarnation is a stream of its own, numbered as the decoder
/// counts them.
pub fn streams(path: &Path) -> BTreeMap<StreamKey, Stream> {
    let reader = CaptureReader::open(path).expect("opening capture");
    type Chunks = Vec<(u64, Vec<u8>)>;
    let mut chunks: BTreeMap<StreamKey, (Chunks, Stream)> = BTreeMap::new();
    // Per stream: its current incarnation, and that incarnation's end so far.
    let mut incarnation: BTreeMap<StreamKey, (u32, u64)> = BTreeMap::new();
    for block in reader.blocks(&Default::default()).expect("listing blocks") {
        let block = block.expect("reading block");
        for rec in block.records() {
            match rec.record {
                Record::Event(ev) if ev.hdr.kind == kind::DATA => {
                    let mut key = StreamKey {
                        pid: ev.hdr.tgid,
                        ino: if ev.is_tls() { ev.hdr.ssl } else { ev.hdr.ino },
                        direction: ev.direction(),
                        tls: ev.is_tls(),
                        incarnation: 0,
                    };
                    let (off, end) = (
                        ev.hdr.stream_off,
                        ev.hdr.stream_off + ev.payload.len() as u64,
                    );
                    let start = ev.hdr.flags & mcpspy::event::flags::STREAM_START != 0;
                    // Its first record starts incarnation 0, wherever it starts.
                    let (n, next) = incarnation.entry(key).or_insert((0, off));
                    if start && off < *next {
                        (*n, *next) = (*n + 1, end);
                    } else {
                        *next = (*next).max(end);
                    }
                    key.incarnation = *n;
                    let entry = chunks.entry(key).or_default();
                    if let Some(tcp) = mcpspy::event::tcp_endpoints(&ev.hdr) {
                        entry.1.tcp = Some(tcp);
                    }
                    entry.0.push((off, ev.payload.to_vec()));
                    entry.1.fd_kind = ev.hdr.fd_kind;
                    entry.1.peer_ino = ev.hdr.peer_ino;
                    entry.1.events += 1;
                    if off == 0 && ev.hdr.flags & mcpspy::event::flags::STREAM_START != 0 {
                        entry.1.marked_start = true;
                    }
                    entry.1.comm = ev.comm();
                }
                Record::Damaged { reason, .. } => panic!("damaged record: {reason}"),
                _ => {}
            }
        }
    }
    // A TLS stream may learn its socket only from the other direction's records.
    type Endpoints = (String, u16, String, u16);
    let tls_tcp: BTreeMap<(u32, u64, u32), Endpoints> = chunks
        .iter()
        .filter(|(k, _)| k.tls)
        .filter_map(|(k, (_, s))| Some(((k.pid, k.ino, k.incarnation), s.tcp.clone()?)))
        .collect();
    for (k, (_, s)) in chunks.iter_mut().filter(|(k, _)| k.tls) {
        if s.tcp.is_none() {
            s.tcp = tls_tcp.get(&(k.pid, k.ino, k.incarnation)).cloned();
        }
    }
    chunks
        .into_iter()
        .map(|(key, (mut parts, mut s))| {
            parts.sort_by_key(|(off, _)| *off);
            let mut next = parts.first().map(|p| p.0).unwrap_or(0);
            for (off, data) in parts {
                if off > next {
                    s.gaps.push((next, off - next));
                }
                if off + data.len() as u64 > next {
                    let skip = next.saturating_sub(off) as usize;
                    s.bytes.extend_from_slice(&data[skip..]);
                    next = off + data.len() as u64;
                }
            }
            (key, s)
        })
        .collect()
}

/// The stream of `pid` in `direction` whose bytes contain `needle`.
pub fn find_stream(
    all: &BTreeMap<StreamKey, Stream>,
    pid: u32,
    direction: Direction,
) -> Vec<(&StreamKey, &Stream)> {
    all.iter()
        .filter(|(k, _)| k.pid == pid && k.direction == direction)
        .collect()
}

pub fn temp_capture(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

pub use super::collector::{venv_python, ROOT};

/// One stream of the strace ground truth (tests/peers/syscall_truth.py).
#[derive(Debug)]
pub struct TruthStream {
    pub tgid: u32,
    /// Pipes and unix sockets; 0 for TCP, which strace names by its endpoints.
    pub inode: u64,
    pub direction: Direction,
    pub kind: String,
    /// strace's name of the file: `pipe:[N]`, `TCP:[a:p->b:q]`, ...
    pub target: String,
    pub bytes: Vec<u8>,
}

impl TruthStream {
    /// TCP: (local port, remote port).
    pub fn tcp_ports(&self) -> Option<(u16, u16)> {
        let inner = self.target.strip_prefix("TCP:[")?.strip_suffix(']')?;
        let (local, remote) = inner.split_once("->")?;
        let port = |end: &str| end.rsplit_once(':')?.1.parse().ok();
        Some((port(local)?, port(remote)?))
    }
}

/// Runs `args` under the strace ground truth in `dir`; returns its streams.
pub fn run_with_truth(dir: &Path, args: &[&str]) -> Vec<TruthStream> {
    let truth = Path::new(ROOT).join("tests/peers/syscall_truth.py");
    succeed(
        Command::new(venv_python())
            .arg(&truth)
            .arg("run")
            .arg("--out")
            .arg(dir)
            .arg("--")
            .args(args),
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
    truth["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            Some(TruthStream {
                tgid: s["tgid"].as_u64()? as u32,
                inode: s["inode"].as_u64().unwrap_or(0),
                target: s["target"].as_str()?.to_string(),
                direction: if s["direction"] == "write" {
                    Direction::Write
                } else {
                    Direction::Read
                },
                kind: s["kind"].as_str()?.to_string(),
                bytes: std::fs::read(dir.join(s["file"].as_str()?)).ok()?,
            })
        })
        .collect()
}

/// Asserts that a captured stream holds exactly the bytes the truth holds;
/// a failure names the lengths, the first differing offset and the bytes
/// around it on both sides, so a lost tail or a missing call shows itself.
pub fn assert_same_bytes(what: &str, captured: &[u8], truth: &[u8]) {
    if captured == truth {
        return;
    }
    let at = captured
        .iter()
        .zip(truth)
        .position(|(a, b)| a != b)
        .unwrap_or(captured.len().min(truth.len()));
    let around = |b: &[u8]| {
        let from = at.saturating_sub(24);
        String::from_utf8_lossy(&b[from.min(b.len())..(at + 24).min(b.len())])
            .escape_debug()
            .to_string()
    };
    panic!(
        "{what}: captured {} bytes, truth {}; first difference at offset {at}\n  captured: \"{}\"\n  truth:    \"{}\"",
        captured.len(),
        truth.len(),
        around(captured),
        around(truth)
    );
}

/// True for bytes that start, after whitespace, like JSON: an MCP stdio stream.
pub fn starts_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{' || b == b'[')
}

/// tests/workloads/ticker.py: a writer sending one ping per interval to a reader.
pub struct Ticker {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub writer: u32,
    pub reader: u32,
}

impl Ticker {
    pub fn start(args: &[&str]) -> Ticker {
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(ROOT).join("tests/workloads/ticker.py"))
            .args(args);
        Ticker::spawn(cmd)
    }

    /// A ticker whose processes live in the cgroup `dir` from their start.
    pub fn start_in_cgroup(dir: &Path, args: &[&str]) -> Ticker {
        let ticker = Path::new(ROOT).join("tests/workloads/ticker.py");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec python3 "$@""#)
            .arg(dir)
            .arg(ticker)
            .args(args);
        Ticker::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Ticker {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting ticker.py");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut pid = |role: &str| -> u32 {
            let line = lines.next().expect("a pid line").expect("text");
            line.strip_prefix(role)
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("expected {role:?}, got {line:?}"))
        };
        let writer = pid("writer ");
        let reader = pid("reader ");
        Ticker {
            child,
            lines,
            writer,
            reader,
        }
    }

    /// The id of the next message sent, once it has left; None at the end.
    pub fn next_sent(&mut self) -> Option<u64> {
        self.lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.strip_prefix("sent ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer killed and reaped when it goes out of scope, also when its test
/// fails: one left running keeps the test's output pipe and the BPF lock's
/// descriptor open, and the next run waits on them.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
