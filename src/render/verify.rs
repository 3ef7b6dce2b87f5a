//! `mcpspy verify`'s report, for people (text) and for tools (JSON).

use super::clean;
use crate::query::{Report, Verdict};
use std::fmt::Write as _;

/// The report as text: the verdict first, then what failed first, who
/// signed, what the seal vouches for, what was checked, and the losses.
pub fn text(name: &str, r: &Report) -> String {
    let mut s = String::new();
    let verdict = match &r.verdict {
        Verdict::Intact { lossy: false } => "intact".to_string(),
        Verdict::Intact { lossy: true } => {
            "intact, lossy (the losses are listed below)".to_string()
        }
        Verdict::NotFinished { commit, at } => format!(
            "intact up to commit {commit} at {at}, not finished (the recording was cut short)"
        ),
        Verdict::Altered => "ALTERED OR INCOMPLETE".to_string(),
        Verdict::Unsealed => "NOT SEALED".to_string(),
    };
    let _ = writeln!(s, "{}: {verdict}", clean(name));
    if let Some((first, rest)) = r.failures.split_first() {
        let _ = writeln!(s, "  first failure: {}", clean(first));
        for f in rest {
            let _ = writeln!(s, "  also:          {}", clean(f));
        }
    }
    match &r.signed_by {
        Some(fp) => {
            let _ = writeln!(s, "  signed by     {fp}");
        }
        None if r.failures.is_empty() => {
            let _ = writeln!(
                s,
                "  signed by     nobody (the capture is sealed, not signed)"
            );
        }
        None => {}
    }
    if !r.vouched.is_empty() {
        s.push_str("  vouched for\n");
        for (k, v) in &r.vouched {
            let _ = writeln!(s, "    {k:<16} {}", clean(v));
        }
    }
    if !r.checks.is_empty() {
        s.push_str("  checked\n");
        for c in &r.checks {
            let _ = writeln!(s, "    ok  {}", clean(c));
        }
    }
    if !r.losses.is_empty() {
        s.push_str("  losses\n");
        for l in &r.losses {
            let _ = writeln!(s, "    {}", clean(l));
        }
    }
    s
}

/// The report as one JSON object.
pub fn json(name: &str, r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("file".into(), name.into());
    }
    format!("{v}\n")
}
