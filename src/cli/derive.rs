//! `mcpspy slice` and `mcpspy redact`: derived captures.

use super::read::{selection, Bar, Opened};
use super::{print_lines, Done, Failure, RedactArgs, SliceArgs};
use crate::capture::SigningIdentity;
use crate::query::derive::redact::Redaction;
use crate::query::derive::rules::Rules;
use crate::query::derive::slice::Slice;
use crate::query::derive::{derive, Derived, Target};
use crate::render::plural;
use crate::render::size::human_bytes;
use std::path::{Path, PathBuf};

pub fn slice(a: SliceArgs) -> Result<Done, Failure> {
    if a.filter.count.is_some() {
        return Err(Failure::input(
            "slice: -c/--count is not a selection; narrow it with the filters",
        ));
    }
    let signer = a.sign.as_deref().map(SigningIdentity::load).transpose()?;
    let opened = Opened::new(&a.input)?;
    let sel = selection(&a.filter, &opened.span)?;
    let mut plan = Slice::plan(&opened.reader, &sel, &mut Bar::default())
        .map_err(|e| Failure::other(e.to_string()))?;
    if plan.messages() == 0 {
        return Ok(Done::NothingMatched(
            "no message matched: no slice was written".into(),
        ));
    }
    let messages = plan.messages() as u64;
    let done = derive(&opened.reader, target(a.output, a.force, signer), &mut plan)
        .map_err(|e| Failure::other(e.to_string()))?;
    eprintln!(
        "mcpspy: slice: {} selected; {}",
        plural(messages, "message"),
        kept(&done)
    );
    Ok(Done::Ok)
}

pub fn redact(a: RedactArgs) -> Result<Done, Failure> {
    let signer = a.sign.as_deref().map(SigningIdentity::load).transpose()?;
    let extra: Vec<&Path> = a.rules.iter().map(PathBuf::as_path).collect();
    let rules = Rules::load(&extra).map_err(|e| Failure::input(format!("--rules: {e}")))?;
    let key = match &a.key_file {
        Some(path) => read_key(path)?,
        None => {
            let mut k = vec![0u8; 32];
            getrandom::fill(&mut k).map_err(|e| Failure::other(format!("a random key: {e}")))?;
            k
        }
    };
    let opened = Opened::new(&a.input)?;
    let mut plan = Redaction::plan(
        &opened.reader,
        rules,
        key,
        a.keep_non_mcp,
        a.dry_run,
        &mut Bar::default(),
    )
    .map_err(|e| Failure::other(e.to_string()))?;
    let (streams_out, blanked) = plan.left_out();
    if a.dry_run {
        plan.preview_tables(&opened.reader)
            .map_err(|e| Failure::other(e.to_string()))?;
        let tail = if !a.keep_non_mcp {
            vec![
                format!("non-MCP\tstreams left out\t{streams_out}"),
                format!("non-MCP\tlines blanked\t{blanked}"),
            ]
        } else if blanked > 0 {
            vec![format!("mixed by two writers\tlines blanked\t{blanked}")]
        } else {
            Vec::new()
        };
        let report = plan.report();
        let found = (report.iter()).map(|(rule, loc, n)| format!("{rule}\t{loc}\t{n}"));
        print_lines(
            std::iter::once("rule\twhere\tcount".to_string())
                .chain(found)
                .chain(tail),
        )?;
        return Ok(Done::Ok);
    }
    if let Some(n) = plan.unlocated() {
        return Err(Failure::other(format!(
            "redact: {} could not be located in the raw records (framed across records in a way \
             this mcpspy cannot line up); nothing was written",
            plural(n, "secret")
        )));
    }
    let output = a.output.expect("clap requires --output without --dry-run");
    let done = derive(&opened.reader, target(output, a.force, signer), &mut plan)
        .map_err(|e| Failure::other(e.to_string()))?;
    let found = plan.replaced();
    eprintln!(
        "mcpspy: redact: {} replaced; {}{}",
        plural(found, "secret"),
        kept(&done),
        if a.keep_non_mcp && blanked > 0 {
            format!("; blanked {} two writers mixed", plural(blanked, "line"))
        } else if a.keep_non_mcp {
            String::new()
        } else {
            format!(
                "; left out {}, blanked {}",
                plural(streams_out as u64, "non-MCP stream"),
                plural(blanked, "non-MCP line")
            )
        }
    );
    Ok(Done::Ok)
}

fn target(path: PathBuf, force: bool, signer: Option<SigningIdentity>) -> Target {
    Target {
        path,
        force,
        owner: None,
        signer,
    }
}

fn kept(d: &Derived) -> String {
    format!(
        "kept {} of {} ({})",
        d.records_kept,
        plural(d.records_kept + d.records_left_out, "record"),
        human_bytes(d.file_bytes)
    )
}

/// A key file: its bytes are the key (at least 16 of them).
fn read_key(path: &Path) -> Result<Vec<u8>, Failure> {
    let key = crate::capture::read_small(path).map_err(|e| {
        Failure::input(format!(
            "--key-file {}: {e} (make one: head -c 32 /dev/urandom > {})",
            path.display(),
            path.display()
        ))
    })?;
    if key.len() < 16 {
        return Err(Failure::input(format!(
            "--key-file {}: {} bytes; a key needs at least 16",
            path.display(),
            key.len()
        )));
    }
    Ok(key)
}
