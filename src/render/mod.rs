//! Output: console lines, JSONL and tables, from decoded items; each output
//! is one sink (query::Sink). Nothing here parses captured data; everything
//! here writes it carefully (captured text is attacker-controlled, so
//! terminal control characters are escaped).

pub mod check;
pub mod console;
pub mod detail;
pub mod info;
pub mod jsonl;
mod offload;
pub mod otlp;
pub mod parquet;
pub mod size;
pub mod summary;
pub mod verify;

use chrono::{DateTime, Duration, Local, Utc};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How the console shows a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// Local time of day, or date and time.
    Local { date: bool },
    /// UTC time of day, or date and time.
    Utc { date: bool },
    /// Seconds since the recording started.
    Relative,
    /// Seconds since 1970 (UTC).
    Epoch,
}

impl Default for TimeFormat {
    fn default() -> Self {
        TimeFormat::Local { date: false }
    }
}

/// A capture's identity in outputs that leave the machine (the OTLP
/// resource, each Parquet row), so that what many hosts send can be told
/// apart and traced back to its file: the `capture_id` the file records,
/// else one derived from the facts of its recording (`derived`), the
/// SHA-256 (hex) of `mcpspy capture id v1`, boot_id, started_at,
/// started_ktime_ns and hostname, each followed by a newline (a missing
/// fact is empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureId {
    pub id: String,
    pub derived: bool,
}

impl CaptureId {
    pub fn from_meta(meta: &BTreeMap<String, String>) -> Self {
        if let Some(id) = meta.get("capture_id") {
            return CaptureId {
                id: id.clone(),
                derived: false,
            };
        }
        let mut text = String::from("mcpspy capture id v1\n");
        for key in ["boot_id", "started_at", "started_ktime_ns", "hostname"] {
            text.push_str(meta.get(key).map_or("", String::as_str));
            text.push('\n');
        }
        CaptureId {
            id: hex(&sha256(text.as_bytes())),
            derived: true,
        }
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Converts kernel timestamps (CLOCK_MONOTONIC ns) to wall-clock time, from
/// the pair of clocks the recorder read at the start.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock {
    start: Option<(DateTime<Utc>, u64)>,
}

impl WallClock {
    pub fn new(started_at: DateTime<Utc>, started_ktime_ns: u64) -> Self {
        WallClock {
            start: Some((started_at, started_ktime_ns)),
        }
    }

    /// From a capture's meta table (`started_at`, `started_ktime_ns`);
    /// unknown when either is missing or unreadable.
    pub fn from_meta(meta: &BTreeMap<String, String>) -> Self {
        let at = meta
            .get("started_at")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        let kt = meta
            .get("started_ktime_ns")
            .and_then(|s| s.trim().parse::<u64>().ok());
        match (at, kt) {
            (Some(at), Some(kt)) => WallClock::new(at.with_timezone(&Utc), kt),
            _ => WallClock::default(),
        }
    }

    pub fn utc(&self, ts_ns: u64) -> Option<DateTime<Utc>> {
        let (at, kt) = self.start?;
        let delta = i64::try_from(ts_ns as i128 - kt as i128).ok()?;
        at.checked_add_signed(Duration::nanoseconds(delta))
    }

    /// The kernel timestamp of a wall-clock instant.
    pub fn ktime(&self, wall: DateTime<Utc>) -> Option<u64> {
        let (at, kt) = self.start?;
        let delta = (wall - at).num_nanoseconds()?;
        u64::try_from(kt as i128 + delta as i128).ok()
    }

    /// Appends `ts_ns` as `format` says (or monotonic seconds when the
    /// wall clock is unknown). `second` keeps the text of the last second
    /// formatted: consecutive lines mostly share it, and formatting it is
    /// the largest cost of a console line.
    pub fn push_time(
        &self,
        format: TimeFormat,
        ts_ns: u64,
        second: &mut Option<(i64, String)>,
        out: &mut String,
    ) {
        let pattern = match format {
            TimeFormat::Local { date: false } | TimeFormat::Utc { date: false } => "%H:%M:%S",
            TimeFormat::Local { date: true } | TimeFormat::Utc { date: true } => {
                "%Y-%m-%d %H:%M:%S"
            }
            TimeFormat::Epoch => "%s",
            TimeFormat::Relative => {
                let since = self.start.map_or(0, |(_, kt)| kt);
                let rel = ts_ns as i128 - since as i128;
                let (sign, abs) = if rel < 0 { ("-", -rel) } else { ("", rel) };
                let _ = write!(
                    out,
                    "{sign}{}.{:03}",
                    abs / 1_000_000_000,
                    abs / 1_000_000 % 1000
                );
                return;
            }
        };
        match self.utc(ts_ns) {
            Some(t) => {
                let secs = t.timestamp();
                if second.as_ref().is_none_or(|(s, _)| *s != secs) {
                    let text = match format {
                        TimeFormat::Local { .. } => {
                            t.with_timezone(&Local).format(pattern).to_string()
                        }
                        _ => t.format(pattern).to_string(),
                    };
                    *second = Some((secs, text));
                }
                if let Some((_, text)) = second {
                    out.push_str(text);
                }
                out.push('.');
                push_decimal(out, u64::from(t.timestamp_subsec_millis()), 3);
            }
            None => {
                let _ = write!(
                    out,
                    "{}.{:03}",
                    ts_ns / 1_000_000_000,
                    ts_ns / 1_000_000 % 1000
                );
            }
        }
    }

    /// Whether `first` and `last` fall on different local dates.
    pub fn spans_midnight(&self, first: u64, last: u64) -> bool {
        let date = |ts| self.utc(ts).map(|t| t.with_timezone(&Local).date_naive());
        date(first) != date(last)
    }

    /// Local date and time, for tables.
    pub fn local_datetime(&self, ts_ns: u64) -> String {
        match self.utc(ts_ns) {
            Some(t) => t
                .with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string(),
            None => format!("{}.{:03}", ts_ns / 1_000_000_000, ts_ns / 1_000_000 % 1000),
        }
    }
}

/// `v` in decimal, zero-padded to `min_digits`, as `{:0N}` writes it (the
/// formatting machinery costs more than the digits, line after line).
pub fn push_decimal(out: &mut String, mut v: u64, min_digits: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while v > 0 || start == digits.len() {
        start -= 1;
        digits[start] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    start = start.min(digits.len().saturating_sub(min_digits));
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Captured text made safe for a terminal: control characters (C0, DEL,
/// C1) and bidirectional overrides are written as `\u{..}` escapes, and
/// bytes that are not UTF-8 as `\x..`. Valid JSON text passes unchanged.
pub fn clean_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => clean(s),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 16);
            for chunk in bytes.utf8_chunks() {
                out.push_str(&clean(chunk.valid()));
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            Cow::Owned(out)
        }
    }
}

pub fn clean(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    // Printable ASCII, the common case, is safe without decoding chars.
    let printable = |b: &u8| matches!(b, b' '..=b'~' | b'\t');
    if s.as_bytes().iter().all(printable) || !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A count and its noun, in the plural unless it is one: "1 stream", "2
/// streams", "3 processes".
pub fn plural(n: u64, noun: &str) -> String {
    let ending = match (n, noun.ends_with('s')) {
        (1, _) => "",
        (_, true) => "es",
        (_, false) => "s",
    };
    format!("{n} {noun}{ending}")
}

/// A latency for people: 0.153ms, 12.4ms, 1.250s.
pub fn latency(ns: u64) -> String {
    let mut out = String::with_capacity(12);
    push_latency(&mut out, ns);
    out
}

/// [`latency`], appended to `out`.
pub fn push_latency(out: &mut String, ns: u64) {
    let ms = ns as f64 / 1e6;
    let _ = if ms < 1.0 {
        write!(out, "{ms:.3}ms")
    } else if ms < 1000.0 {
        write!(out, "{ms:.1}ms")
    } else {
        write!(out, "{:.3}s", ms / 1000.0)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_maps_both_ways() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = WallClock::new(at, 1_000_000_000);
        let t = c.utc(3_500_000_000).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T12:00:02.500+00:00");
        assert_eq!(c.ktime(t), Some(3_500_000_000));
        // Before the start is fine too.
        assert_eq!(c.utc(0).unwrap().to_rfc3339(), "2026-03-01T11:59:59+00:00");
        assert!(WallClock::default().utc(5).is_none());
        let meta = BTreeMap::from([
            (
                "started_at".to_string(),
                "2026-03-01T12:00:00.000000000Z".to_string(),
            ),
            ("started_ktime_ns".to_string(), "1000000000".to_string()),
        ]);
        assert!(WallClock::from_meta(&meta).utc(0).is_some());
    }

    #[test]
    fn capture_id_is_recorded_or_derived() {
        let mut meta = BTreeMap::from([
            ("boot_id".to_string(), "b".to_string()),
            ("started_at".to_string(), "2026-03-01T12:00:00Z".to_string()),
        ]);
        let derived = CaptureId::from_meta(&meta);
        assert!(derived.derived);
        assert_eq!(
            derived.id,
            hex(&sha256(
                b"mcpspy capture id v1\nb\n2026-03-01T12:00:00Z\n\n\n"
            ))
        );
        assert_eq!(hex(&sha256(b"abc"))[..8], *"ba7816bf");
        meta.insert("capture_id".to_string(), "sealed-1".to_string());
        assert_eq!(
            CaptureId::from_meta(&meta),
            CaptureId {
                id: "sealed-1".to_string(),
                derived: false
            }
        );
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(clean("plain {\"a\":\"é\"}\t"), "plain {\"a\":\"é\"}\t");
        assert_eq!(clean("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(clean("a\u{9b}b\u{202e}c\nd"), "a\\u{9b}b\\u{202e}c\\u{a}d");
        assert_eq!(clean_bytes(b"ok\xff\x1b"), "ok\\xff\\u{1b}");
        assert_eq!(latency(153_000), "0.153ms");
        assert_eq!(latency(12_400_000), "12.4ms");
        assert_eq!(latency(1_250_000_000), "1.250s");
    }

    #[test]
    fn decimals_as_format_writes_them() {
        for v in [0u64, 7, 42, 999, 1000, 65_535, 4_294_967_295, u64::MAX] {
            for width in [1usize, 3, 5] {
                let mut s = String::from("x");
                push_decimal(&mut s, v, width);
                assert_eq!(s, format!("x{v:0width$}"));
            }
        }
    }
}
