//! JUnit XML, for CI test reports: one testcase per rule that ran; a rule
//! fails when it has findings at or above the failing severity (the
//! findings are the failure's text), and lists lesser findings as output.

use super::{place, ranges};
use crate::query::check::{Finding, Report, Severity};
use crate::render::plural;
use std::fmt::Write as _;

/// The report as a JUnit `<testsuites>` document; `fail_at`: the least
/// severity that fails a testcase (None: none does).
pub fn xml(name: &str, r: &Report, fail_at: Option<Severity>) -> String {
    let fails = |f: &Finding| fail_at.is_some_and(|s| f.severity >= s);
    let failed = r
        .rules
        .iter()
        .filter(|(rule, _)| r.findings.iter().any(|f| f.rule == rule.id && fails(f)))
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"mcpspy check\" tests=\"{}\" failures=\"{failed}\">",
        r.rules.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\">",
        escape(name),
        r.rules.len()
    );
    for (rule, _) in &r.rules {
        let of: Vec<&Finding> = r.findings.iter().filter(|f| f.rule == rule.id).collect();
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"mcpspy.check.{}\"",
            rule.id,
            rule.family()
        );
        if of.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        let (failing, other): (Vec<&Finding>, Vec<&Finding>) = of.iter().partition(|f| fails(f));
        if let Some(first) = failing.first() {
            let _ = writeln!(
                out,
                "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                first.severity.name(),
                escape(&format!(
                    "{} ({})",
                    rule.title,
                    plural(failing.len() as u64, "finding")
                )),
                escape(&lines(&failing))
            );
        }
        if !other.is_empty() {
            let _ = writeln!(
                out,
                "      <system-out>{}</system-out>",
                escape(&lines(&other))
            );
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn lines(findings: &[&Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(s, "{}: {}: {}", f.severity.name(), place(&f.at), f.message);
        if f.at.items.len() > 1 {
            let _ = writeln!(s, "  items {}", ranges(&f.at.items));
        }
    }
    s
}

/// Text for XML content and attributes: the five markup characters as
/// entities, and characters XML 1.0 cannot carry at all (most C0 controls,
/// U+FFFE/U+FFFF) written as `\u{..}`, since not even an entity may name them.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_keeps_xml_well_formed() {
        assert_eq!(
            super::escape("a<b & \"c\" \u{1b}[0m"),
            "a&lt;b &amp; &quot;c&quot; \\u{1b}[0m"
        );
    }
}
