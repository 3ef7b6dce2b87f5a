//! The capture's health, which comes first: a broken or missing seal, an
//! unfinished recording, records lost while recording, and parts of the
//! file that do not read. A finding about traffic is only as good as the
//! capture it came from.

use super::super::{CaptureError, CaptureReader, FlagReason, Item, Kind, Verdict};
use super::{Finding, Place};

/// What the file itself says: its seal and its drop ledger.
pub fn of_file(reader: &CaptureReader) -> Result<Vec<Finding>, CaptureError> {
    let state = reader.seal_state()?;
    let mut out = Vec::new();
    let file = || Place::default();
    match &state.verdict {
        Verdict::Altered => out.push(Finding::new(
            "health.seal-broken",
            format!(
                "the seal is broken: {}",
                state.failures.first().map_or("?", String::as_str)
            ),
            file(),
        )),
        Verdict::NotFinished { commit, at } => out.push(Finding::new(
            "health.unfinished",
            format!("the recording did not end cleanly: intact up to commit {commit} ({at})"),
            file(),
        )),
        Verdict::Unsealed => out.push(Finding::new(
            "health.unsealed",
            "the capture has no seal: nothing shows that it is unaltered".to_string(),
            file(),
        )),
        Verdict::Intact { .. } => {}
    }
    for loss in &state.losses {
        out.push(Finding::new("health.loss", loss.clone(), file()));
    }
    Ok(out)
}

/// An item that stands for lost or unreadable bytes.
pub fn of_item(item: &Item<'_>, place: &Place, out: &mut Vec<Finding>) {
    let Kind::Flagged(flag) = &item.kind else {
        return;
    };
    let rule = match flag.reason {
        FlagReason::DamagedRecord | FlagReason::UnreadableBlock => "health.damage",
        FlagReason::Lost(_) | FlagReason::Truncated | FlagReason::TooLong | FlagReason::Late => {
            "health.loss"
        }
        _ => return,
    };
    out.push(Finding::new(
        rule,
        format!(
            "{} ({} bytes): {}",
            flag.reason.code(),
            flag.len,
            flag.detail
        ),
        place.clone(),
    ));
}
