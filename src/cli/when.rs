//! `--since` and `--until`: times as a user types them, placed on the
//! capture's own clock, and refused when they could mean two moments.

use super::args::parse_duration;
use super::Failure;
use crate::render::WallClock;
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// What a capture says about its time: the clock anchor and the kernel
/// times of its first and last records.
pub struct Span {
    pub clock: WallClock,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
}

pub const TIMES_HELP: &str = "\
TIMES (--since, --until):
  12:05, 12:05:30.250      local time of day, on the capture's date; refused when
                           the capture spans midnight and the time falls on two dates
  2026-11-30 12:05[:30]    local date and time (or 2026-11-30T12:05)
  2026-11-30T12:05:00Z     RFC 3339, with its zone
  1764504300[.5]           epoch seconds
  +30s, +2m                after the capture's first record
  -5m, -1h                 before the capture's last record";

/// The kernel time of `s`, for `flag`.
pub fn instant(flag: &str, s: &str, span: &Span) -> Result<u64, Failure> {
    let t = s.trim();
    let unplaced = || {
        Failure::input(format!(
            "{flag}: `{s}` cannot be placed on the capture's clock (it records no start time); \
             use +DURATION or -DURATION"
        ))
    };
    if let Some(rest) = t.strip_prefix('+') {
        let first = span.first_ns.ok_or_else(|| empty(flag))?;
        return first
            .checked_add(parse_duration(flag, rest)?)
            .ok_or_else(|| Failure::input(format!("{flag}: `{s}` is too far")));
    }
    if let Some(rest) = t.strip_prefix('-') {
        let last = span.last_ns.ok_or_else(|| empty(flag))?;
        return Ok(last.saturating_sub(parse_duration(flag, rest)?));
    }
    let wall = wall_time(flag, t, span)?;
    span.clock.ktime(wall).ok_or_else(unplaced)
}

fn empty(flag: &str) -> Failure {
    Failure::input(format!(
        "{flag}: the capture holds no records to count from"
    ))
}

fn wall_time(flag: &str, t: &str, span: &Span) -> Result<DateTime<Utc>, Failure> {
    let bad = || {
        Failure::input(format!(
            "{flag}: `{t}` is not a time (HH:MM[:SS[.fff]], YYYY-MM-DD HH:MM[:SS], RFC 3339, \
             epoch seconds, +DURATION or -DURATION)"
        ))
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| bad())?;
        let ns = (secs * 1e9).round();
        if !(0.0..9.2e18).contains(&ns) {
            return Err(bad());
        }
        return Ok(DateTime::from_timestamp_nanos(ns as i64));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return local(flag, t, dt);
        }
    }
    let time = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(t, f).ok())
        .ok_or_else(bad)?;
    time_of_day(flag, t, time, span)
}

fn local(flag: &str, t: &str, dt: NaiveDateTime) -> Result<DateTime<Utc>, Failure> {
    Local
        .from_local_datetime(&dt)
        .earliest()
        .map(|l| l.with_timezone(&Utc))
        .ok_or_else(|| Failure::input(format!("{flag}: `{t}` does not exist in local time")))
}

/// A time of day on the capture's dates: the one date on which it falls
/// inside the capture, or the capture's only date.
fn time_of_day(
    flag: &str,
    t: &str,
    time: NaiveTime,
    span: &Span,
) -> Result<DateTime<Utc>, Failure> {
    let date_of = |ns: Option<u64>| {
        ns.and_then(|n| span.clock.utc(n))
            .map(|u| u.with_timezone(&Local).date_naive())
    };
    let (Some(first), Some(last)) = (date_of(span.first_ns), date_of(span.last_ns)) else {
        return Err(Failure::input(format!(
            "{flag}: the capture records no start time (or no records), so `{t}` has no date; \
             use RFC 3339, epoch seconds or +DURATION"
        )));
    };
    let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    if let [only] = dates[..] {
        return local(flag, t, only.and_time(time));
    }
    let inside: Vec<DateTime<Utc>> = dates
        .iter()
        .filter_map(|d| local(flag, t, d.and_time(time)).ok())
        .filter(|w| {
            let k = span.clock.ktime(*w);
            k.zip(span.first_ns).is_some_and(|(k, f)| k >= f)
                && k.zip(span.last_ns).is_some_and(|(k, l)| k <= l)
        })
        .collect();
    match inside[..] {
        [one] => Ok(one),
        _ => Err(Failure::input(format!(
            "{flag}: `{t}` is ambiguous: the capture runs from {} to {} (local time), across \
             midnight; give the date, as in `{} {t}`",
            first, last, dates[0]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: &str, secs: u64) -> Span {
        let at = DateTime::parse_from_rfc3339(start)
            .unwrap()
            .with_timezone(&Utc);
        Span {
            clock: WallClock::new(at, 1_000_000_000),
            first_ns: Some(1_000_000_000),
            last_ns: Some(1_000_000_000 + secs * 1_000_000_000),
        }
    }

    #[test]
    fn every_form_lands_on_the_capture_clock() {
        let s = span("2026-03-01T12:00:00Z", 600);
        let at = |t: &str| instant("--since", t, &s).map_err(|f| f.message);
        assert_eq!(at("2026-03-01T12:00:01.5Z"), Ok(2_500_000_000));
        assert_eq!(at("+30s"), Ok(31_000_000_000));
        assert_eq!(at("-1m"), Ok(541_000_000_000));
        let epoch = DateTime::parse_from_rfc3339("2026-03-01T12:00:02Z")
            .unwrap()
            .timestamp();
        assert_eq!(at(&epoch.to_string()), Ok(3_000_000_000));
        assert!(at("+5").unwrap_err().contains("needs a unit"));
        assert!(at("25:00").is_err());
        assert!(at("noon").is_err());
    }

    #[test]
    fn a_time_of_day_across_midnight_must_be_unambiguous() {
        // 23:00 local on 1 March to 01:00 local on 3 March (no DST change
        // near those dates): 00:30 and 23:30 fall on two dates, 12:00 on one.
        let local = |t: &str| {
            let dt = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M").unwrap();
            Local.from_local_datetime(&dt).unwrap().with_timezone(&Utc)
        };
        let start = local("2026-03-01 23:00");
        const K: u64 = 100_000 * 1_000_000_000;
        let s = Span {
            clock: WallClock::new(start, K),
            first_ns: Some(K),
            last_ns: Some(K + 26 * 3600 * 1_000_000_000),
        };
        let at = |t: &str| instant("--since", t, &s).map_err(|f| f.message);
        assert!(at("00:30").unwrap_err().contains("ambiguous"));
        assert!(at("23:30").unwrap_err().contains("ambiguous"));
        assert_eq!(
            at("12:00"),
            Ok(s.clock.ktime(local("2026-03-02 12:00")).unwrap())
        );
        assert_eq!(
            at("2026-03-02 00:30"),
            Ok(s.clock.ktime(local("2026-03-02 00:30")).unwrap())
        );
        // A capture within one day takes its date, even outside its span.
        let one_day = Span {
            last_ns: Some(K + 1_000_000_000),
            ..s
        };
        let before = instant("--since", "22:00", &one_day).map_err(|f| f.message);
        assert_eq!(
            before,
            Ok(s.clock.ktime(local("2026-03-01 22:00")).unwrap())
        );
    }
}
