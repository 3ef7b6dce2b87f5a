//! `mcpspy check`: build the configuration from the arguments, run the
//! check, and hand the report to its output format; `query --tools`.

use super::args::parse_duration;
use super::read::{Bar, Opened, Output};
use super::{print_lines, CheckArgs, CheckFormat, Done, FailOn, Failure, Input};
use crate::query::check::{self, Config, Inventory, Severity, RULES};
use crate::query::derive::rules::Rules;
use crate::query::CaptureReader;
use crate::render::check::{counts, inventory_text, json_lines, junit, sarif, text};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn run(a: CheckArgs) -> Result<Done, Failure> {
    if a.list_rules {
        let rules = RULES.iter();
        print_lines(rules.map(|r| format!("{:<30} {:<8} {}", r.id, r.severity.name(), r.title)))?;
        return Ok(Done::Ok);
    }
    let config = config(&a)?;
    let output = Output::choose(a.output.as_deref(), a.force, &a.input)?;
    let lock = a
        .write_baseline
        .as_deref()
        .map(|p| Output::choose(Some(p), a.force, &a.input))
        .transpose()?;
    let opened = Opened::new(&a.input)?;
    let report = check::check(&opened.reader, &config, &mut Bar::default())
        .map_err(|e| Failure::other(e.to_string()))?;
    let name = opened.reader.name().display().to_string();
    let fail_at = match a.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    };
    let body = match a.format {
        CheckFormat::Text => text(&name, &report),
        CheckFormat::Json => json_lines(&report),
        CheckFormat::Sarif => {
            let mut s = serde_json::to_string_pretty(&sarif::log(&name, &report))
                .map_err(|e| Failure::other(e.to_string()))?;
            s.push('\n');
            s
        }
        CheckFormat::Junit => junit::xml(&name, &report, fail_at),
    };
    output.write(|out| {
        out.write_all(body.as_bytes())?;
        out.flush()?;
        Ok(Done::Ok)
    })?;
    if let Some(lock) = lock {
        let mut json = serde_json::to_string_pretty(&report.inventory)
            .map_err(|e| Failure::other(e.to_string()))?;
        json.push('\n');
        lock.write(|out| {
            out.write_all(json.as_bytes())?;
            Ok(Done::Ok)
        })?;
    }
    let failing = report
        .findings
        .iter()
        .filter(|f| fail_at.is_some_and(|s| f.severity >= s))
        .count();
    Ok(if failing > 0 {
        Done::Failed(format!(
            "check: {} ({} at or above --fail-on)",
            counts(&report.findings),
            failing
        ))
    } else {
        Done::Ok
    })
}

fn config(a: &CheckArgs) -> Result<Config, Failure> {
    let extra: Vec<&Path> = a.secret_rules.iter().map(PathBuf::as_path).collect();
    let rules = Rules::load(&extra).map_err(|e| Failure::input(format!("--secret-rules: {e}")))?;
    let mut config = Config::new(rules);
    if let Some(path) = &a.rules {
        let text = crate::capture::read_small_text(path)
            .map_err(|e| Failure::input(format!("--rules {}: {e}", path.display())))?;
        config
            .apply_file(&text)
            .map_err(|e| Failure::input(format!("--rules {}: {e}", path.display())))?;
    }
    config
        .select(&a.rule, &a.skip_rule)
        .map_err(Failure::input)?;
    config.slow_ns = a
        .slow
        .as_deref()
        .map(|s| parse_duration("--slow", s))
        .transpose()?;
    if let Some(path) = &a.baseline {
        config.baseline = Some(baseline(path)?);
    }
    Ok(config)
}

/// A baseline: a capture's inventory, or a tools lock file.
fn baseline(path: &Path) -> Result<Inventory, Failure> {
    let bad = |e: String| Failure::input(format!("--baseline {}: {e}", path.display()));
    let mut magic = [0u8; 16];
    let n = crate::capture::open_regular(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .map_err(|e| bad(e.to_string()))?;
    if magic[..n] == *crate::capture::SQLITE_HEADER {
        let opened = Opened::open(
            &Input {
                file: Some(path.to_path_buf()),
                read: None,
            },
            |e| bad(e.to_string()),
        )?;
        return check::inventory(&opened.reader, &mut Bar::default())
            .map_err(|e| bad(e.to_string()));
    }
    let text = crate::capture::read_small_text(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => bad("neither a capture nor a tools lock (JSON)".into()),
        _ => bad(e.to_string()),
    })?;
    Inventory::parse(&text).map_err(bad)
}

/// `query --tools`: the capture's inventory as text.
pub fn tools(reader: &CaptureReader) -> Result<Done, Failure> {
    let inv =
        check::inventory(reader, &mut Bar::default()).map_err(|e| Failure::other(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(inventory_text(&inv).as_bytes())?;
    Ok(if inv.servers.is_empty() {
        Done::NothingMatched("no server listed its tools".into())
    } else {
        Done::Ok
    })
}
