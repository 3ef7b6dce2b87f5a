//! `mcpspy check`'s findings: text for people (grouped by severity, 80
//! columns), JSON lines, SARIF 2.1.0 ([`sarif`]) and JUnit XML ([`junit`]);
//! and the tools inventory of `query --tools`. Captured text (tool names,
//! details) is escaped for the terminal here; values of secrets never
//! reach a finding.

pub mod junit;
pub mod sarif;

use super::{clean, plural};
use crate::query::check::{Finding, Inventory, Place, Report, Severity};
use std::fmt::Write as _;

const WIDTH: usize = 80;

/// Where a finding is, in words: `session 2, item 14, field params.x, records 40-41`.
pub fn place(p: &Place) -> String {
    let mut parts = Vec::new();
    if let Some(s) = p.session {
        parts.push(format!("session {s}"));
    }
    if let Some(s) = &p.server {
        parts.push(format!("server {:?}", clean(s)));
    }
    if let Some(t) = &p.tool {
        parts.push(format!("{:?}", clean(t)));
    }
    if let Some(n) = p.item {
        parts.push(format!("item {n}"));
    }
    if let Some(pid) = p.pid {
        parts.push(format!("pid {pid}"));
    }
    if let Some(f) = &p.field {
        parts.push(format!("field {}", clean(f)));
    }
    if !p.records.is_empty() {
        parts.push(format!(
            "{} {}",
            if p.records.len() == 1 {
                "record"
            } else {
                "records"
            },
            ranges(&p.records)
        ));
    }
    if parts.is_empty() {
        parts.push("the capture file".into());
    }
    parts.join(", ")
}

/// Sorted numbers as ranges: `3-5,9`.
pub fn ranges(ns: &[u64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ns.len() {
        let mut j = i;
        while j + 1 < ns.len() && ns[j + 1] == ns[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        let _ = match j - i {
            0 => write!(out, "{}", ns[i]),
            _ => write!(out, "{}-{}", ns[i], ns[j]),
        };
        i = j + 1;
    }
    out
}

/// `text` wrapped at word boundaries to `WIDTH`, each line after `indent`.
fn wrap(out: &mut String, indent: &str, text: &str) {
    let mut line = String::from(indent);
    for word in text.split(' ') {
        let fits = line.chars().count() + 1 + word.chars().count() <= WIDTH;
        if line.len() > indent.len() && !fits {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// Counts per severity: `2 errors, 1 warning, 0 notes`.
pub fn counts(findings: &[Finding]) -> String {
    [Severity::Error, Severity::Warning, Severity::Note]
        .iter()
        .map(|s| {
            let n = findings.iter().filter(|f| f.severity == *s).count();
            plural(n as u64, s.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The findings for people: a summary line, then each severity's findings
/// (errors first), each with its rule, place and message.
pub fn text(name: &str, r: &Report) -> String {
    let mut out = String::new();
    wrap(
        &mut out,
        "",
        &format!(
            "{}: {} ({} checked, {})",
            clean(name),
            counts(&r.findings),
            plural(r.items, "message"),
            plural(r.rules.len() as u64, "rule")
        ),
    );
    for sev in [Severity::Error, Severity::Warning, Severity::Note] {
        let of: Vec<&Finding> = r.findings.iter().filter(|f| f.severity == sev).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} ({})", sev.name().to_uppercase(), of.len());
        for f in of {
            wrap(&mut out, "  ", &format!("{}: {}", f.rule, place(&f.at)));
            wrap(&mut out, "      ", &clean(&f.message));
        }
    }
    out
}

/// One JSON object per finding, one per line.
pub fn json_lines(r: &Report) -> String {
    let mut out = String::new();
    for f in &r.findings {
        out.push_str(&serde_json::to_string(f).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The inventory as a table: server, kind, name, digest.
pub fn inventory_text(inv: &Inventory) -> String {
    let mut out = String::new();
    if inv.servers.is_empty() {
        out.push_str("no tools/list, prompts/list or resources/list result in the capture\n");
    }
    for s in &inv.servers {
        let mut head = format!("server {:?}", clean(&s.key.name));
        if let Some(cmd) = &s.key.command {
            let _ = write!(head, " ({})", clean(&cmd.join(" ")));
        }
        if !s.sessions.is_empty() {
            let _ = write!(head, ", sessions {}", ranges(&s.sessions));
        }
        wrap(&mut out, "", &head);
        for (kind, defs) in &s.lists {
            for (name, p) in defs {
                let digest = p.digest.strip_prefix("sha256:").unwrap_or(&p.digest);
                let _ = writeln!(
                    out,
                    "  {:<8} {:<40} {}",
                    kind.name(),
                    clean(name),
                    &digest[..digest.len().min(16)]
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_wrapping() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        let mut out = String::new();
        wrap(&mut out, "  ", &"word ".repeat(40));
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH));
        assert!(out.lines().count() > 2);
    }
}
