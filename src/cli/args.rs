//! Arguments shared by several commands: the capture to read, the filters,
//! how times are shown, and the parsers of sizes and durations.

use super::Failure;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// The capture a reader opens: `FILE`, or `-r FILE` as tcpdump and tshark
/// take it; `-` is standard input.
#[derive(Args, Debug, Clone, Default)]
pub struct Input {
    /// Capture file (`-`: read it from standard input) [default: capture.db]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Capture file, as tcpdump and tshark take it
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        conflicts_with = "file"
    )]
    pub read: Option<PathBuf>,
}

impl Input {
    pub fn path(&self) -> PathBuf {
        self.read
            .clone()
            .or_else(|| self.file.clone())
            .unwrap_or_else(|| PathBuf::from("capture.db"))
    }
}

/// Filters shared by replay, query, export and show; they combine with AND.
#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only this method (responses match their request's method)
    #[arg(long)]
    pub method: Vec<String>,
    /// Only tools/call of this tool
    #[arg(long)]
    pub tool: Vec<String>,
    /// Only messages sent or received by this process
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Only messages sent or received by a process of this name
    #[arg(long)]
    pub comm: Vec<String>,
    /// Only messages sent or received by a process of this container (its id or a prefix)
    #[arg(long, value_name = "ID")]
    pub container: Vec<String>,
    /// Only messages sent or received by a process of this cgroup or one below it
    /// (its path below the cgroup2 root, as /proc/PID/cgroup shows it)
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Only this session
    #[arg(long)]
    pub session: Vec<u64>,
    /// Only messages at or after this time (see TIMES below)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only messages at or before this time (see TIMES below)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only error responses (and tool failures), and the requests that got one
    #[arg(long)]
    pub errors: bool,
    /// Only responses at least this slow (250ms, 2s), and their requests
    #[arg(long, value_name = "DURATION")]
    pub min_latency: Option<String>,
    /// Only this transport
    #[arg(long, value_enum)]
    pub transport: Option<TransportChoice>,
    /// Stop after this many messages
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportChoice {
    Stdio,
    Http,
}

/// How the console shows times.
#[derive(Args, Debug, Default, Clone)]
pub struct TimeArgs {
    /// Times as: a (local time of day; with the date when the capture spans
    /// midnight), ad (local date and time), u (UTC time of day), ud (UTC
    /// date and time), r (seconds since the recording started), e (epoch
    /// seconds)
    #[arg(short = 't', long = "time", value_enum, value_name = "FORMAT")]
    pub time: Option<TimeChoice>,
    /// Times in UTC (short for -t u)
    #[arg(long, conflicts_with = "time")]
    pub utc: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimeChoice {
    A,
    Ad,
    U,
    Ud,
    R,
    E,
}

/// Parses sizes such as 4096, 64K, 16M, 1G.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 4096, 64K, 16M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// A duration with its unit: 800us, 250ms, 1.5s, 2m, 1h. A bare number is
/// refused: it could be read as seconds or as milliseconds.
pub fn parse_duration(flag: &str, s: &str) -> Result<u64, Failure> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = |why: &str| {
        Failure::input(format!(
            "{flag}: `{s}` {why} (examples: 250ms, 2s, 1.5m, 1h; also ns, us)"
        ))
    };
    let scale = match unit.trim() {
        "" if !num.is_empty() => return Err(bad("needs a unit")),
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(bad("is not a duration")),
    };
    let ns = num.parse::<f64>().map(|v| v * scale).unwrap_or(f64::NAN);
    if ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64 {
        Ok(ns.round() as u64)
    } else {
        Err(bad("is not a duration"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_their_unit() {
        let d = |s| parse_duration("--x", s).map_err(|f| f.message);
        assert_eq!(d("250ms"), Ok(250_000_000));
        assert_eq!(d("1.5s"), Ok(1_500_000_000));
        assert_eq!(d("800us"), Ok(800_000));
        assert_eq!(d("1m"), Ok(60_000_000_000));
        assert_eq!(d("2h"), Ok(7_200_000_000_000));
        let bare = d("7").unwrap_err();
        assert!(bare.contains("needs a unit"), "{bare}");
        for bad in ["fast", "-1s", "1.2.3s", "5 parsecs", "", "s"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert!(parse_size("lots").is_err());
    }
}
