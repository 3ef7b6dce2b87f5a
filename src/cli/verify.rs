//! `mcpspy verify` and `mcpspy keygen`.

use super::read::Opened;
use super::{Done, Failure, VerifyArgs};
use crate::capture::{generate_key, load_public_key};
use crate::query::{CaptureError, Verdict, VerifyOptions};
use crate::render::verify;
use std::path::PathBuf;

pub fn run(a: VerifyArgs) -> Result<Done, Failure> {
    let key = a.key.as_deref().map(load_public_key).transpose()?;
    let name = a.input.path().display().to_string();
    // A file SQLite cannot read through is damaged evidence, not a foreign file.
    let opened = Opened::open(&a.input, |e| match e {
        e @ CaptureError::Damaged { .. } => damaged(&name, &e),
        e => e.into(),
    })?;
    let opts = VerifyOptions {
        data: true,
        deep: a.deep,
        key,
    };
    let report = match opened.reader.verify(&opts) {
        Ok(r) => r,
        Err(e @ CaptureError::Damaged { .. }) => return Err(damaged(&name, &e)),
        Err(e) => return Err(e.into()),
    };
    let text = if a.json {
        verify::json(&name, &report)
    } else {
        verify::text(&name, &report)
    };
    print!("{text}");
    match report.verdict {
        Verdict::Intact { lossy } if !(lossy && a.fail_on_loss) => Ok(Done::Ok),
        _ => Err(Failure {
            code: 1,
            message: String::new(),
        }),
    }
}

/// A damaged capture: altered or incomplete (exit 1), said as a report.
fn damaged(name: &str, e: &CaptureError) -> Failure {
    let said = format!("{name}: ALTERED OR INCOMPLETE\n  first failure: the file is damaged: {e}");
    if let Err(f) = super::print_lines([said]) {
        return f;
    }
    Failure {
        code: 1,
        message: String::new(),
    }
}

pub fn keygen(output: Option<PathBuf>) -> Result<Done, Failure> {
    let path = match output {
        Some(p) => p,
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| Failure::input("keygen: no $HOME; give -o FILE"))?;
            PathBuf::from(home).join(".config/mcpspy/signing.key")
        }
    };
    let (public, fp) = generate_key(&path)?;
    eprintln!(
        "mcpspy: key pair written: {} (private, mode 0600) and {} (public, {fp})",
        path.display(),
        public.display()
    );
    Ok(Done::Ok)
}
