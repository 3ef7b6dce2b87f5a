//! `mcpspy redact`: the same capture with its secrets replaced in the raw
//! records, so that nothing of them is left in any block or table.
//!
//! A secret becomes a keyed pseudonym of the same length (HMAC-SHA-256 of
//! the secret under the run's key, written in [0-9a-z]): framing (NDJSON
//! lines, Content-Length, chunk sizes, SSE) stays valid without reframing,
//! so every message keeps its size, place and timing, and the same secret
//! always becomes the same token. Where secrets are is found from what the
//! decoder makes of the capture ([`super::find`]); records of streams that
//! carry no MCP message are left out, and non-MCP lines inside MCP stdio
//! streams are blanked, unless the user keeps them.

use super::find::{self, Found, Span, Tally};
use super::rules::{merge, Rules};
use super::whole::Seen;
use super::Plan;
use crate::event::{kind, RawEvent};
use crate::query::{CaptureReader, ProcessRow, Progress, QueryError, Streams, ViewKey};
use hmac::{KeyInit, Mac};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where something redacted was (kept small: a capture may hold millions).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// The item numbered so.
    Message(u64),
    /// Messages, not itemised (a redaction that lists nothing).
    Messages,
    /// HTTP header lines a process wrote or read.
    Headers {
        written: bool,
        pid: u32,
    },
    /// An exec record's arguments.
    Exec(u32),
    /// A `processes` row.
    CommandLine(u32),
    Executable(u32),
    /// A `meta` value.
    Meta(Box<str>),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Message(n) => write!(f, "message {n}"),
            Place::Messages => f.write_str("messages"),
            Place::Headers { written, pid } => write!(
                f,
                "HTTP headers {} pid {pid}",
                if *written { "written by" } else { "read by" }
            ),
            Place::Exec(pid) => write!(f, "exec of pid {pid}"),
            Place::CommandLine(pid) => write!(f, "command line of pid {pid}"),
            Place::Executable(pid) => write!(f, "executable of pid {pid}"),
            Place::Meta(key) => write!(f, "meta {key}"),
        }
    }
}

pub struct Redaction {
    rules: Rules,
    key: Vec<u8>,
    keep_non_mcp: bool,
    found: Found,
    /// Tokens of what is replaced outside the records, counted there too.
    counts: BTreeMap<String, u64>,
    /// Rule (number) and place; one entry a message with a secret, so
    /// kept as found, and sorted only to be shown.
    by_place: Tally,
    view: Option<HashSet<ViewKey>>,
    keylog_left_out: u64,
}

/// A keyed pseudonym of `secret`: as long as it, in [0-9a-z].
pub fn token(key: &[u8], secret: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(secret.len());
    let mut block = 0u32;
    while out.len() < secret.len() {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&block.to_be_bytes());
        mac.update(secret);
        let digest = mac.finalize().into_bytes();
        out.extend(
            digest
                .iter()
                .take(secret.len() - out.len())
                .map(|b| ALPHABET[(*b % 36) as usize]),
        );
        block += 1;
    }
    out
}

impl Redaction {
    /// Finds what `rules` redact in `parent` ([`find::find`]); `itemised`:
    /// counted by message (for a listing), else by rule.
    pub fn plan(
        parent: &CaptureReader,
        rules: Rules,
        key: Vec<u8>,
        keep_non_mcp: bool,
        itemised: bool,
        progress: &mut dyn Progress,
    ) -> Result<Redaction, QueryError> {
        let asked = find::Asked {
            keep_non_mcp,
            itemised,
        };
        let mut found = find::find(parent, &rules, &key, asked, progress)?;
        let by_place = found.take_tally();
        let mut counts = BTreeMap::new();
        for ((rule, _), n) in &by_place {
            *counts.entry(rules.name(*rule).to_string()).or_default() += n;
        }
        Ok(Redaction {
            rules,
            key,
            keep_non_mcp,
            counts,
            by_place,
            view: parent.view()?,
            keylog_left_out: 0,
            found,
        })
    }

    fn note(&mut self, rule: usize, place: Place) {
        *self
            .counts
            .entry(self.rules.name(rule).to_string())
            .or_default() += 1;
        *self.by_place.entry((rule, place)).or_default() += 1;
    }

    /// Replaces what the rules find in `text`, in place; notes it at `loc`.
    fn redact_in(&mut self, text: &mut [u8], spans: Vec<super::rules::Found>, loc: &Place) {
        for f in merge(spans) {
            let tok = token(&self.key, &text[f.start..f.end]);
            text[f.start..f.end].copy_from_slice(&tok);
            self.note(f.rule, loc.clone());
        }
    }

    fn redact_args(&mut self, args: &mut [String], loc: &Place) {
        let spans = self.rules.in_args(args);
        for (i, f) in spans {
            let mut bytes = std::mem::take(&mut args[i]).into_bytes();
            self.redact_in(&mut bytes, vec![f], loc);
            // Tokens are ASCII: the argument stays UTF-8.
            args[i] = String::from_utf8(bytes).unwrap_or_default();
        }
    }

    /// Counts what the tables would have redacted, without writing (for
    /// --dry-run: the records' part is counted by the plan already).
    pub fn preview_tables(&mut self, parent: &CaptureReader) -> Result<(), QueryError> {
        for mut p in parent.processes()? {
            if self.found.keeps_pid(p.pid) {
                self.process(&mut p);
            }
        }
        for (k, mut v) in parent.meta()? {
            self.meta(&k, &mut v);
        }
        Ok(())
    }

    /// What would be (or was) redacted: rule, place, count.
    pub fn report(&self) -> Vec<(&str, &Place, u64)> {
        let mut all: Vec<_> = (self.by_place.iter())
            .map(|((rule, place), n)| (self.rules.name(*rule), place, *n))
            .collect();
        all.sort_unstable();
        all
    }

    /// How many secrets were (or would be) replaced.
    pub fn replaced(&self) -> u64 {
        self.by_place.values().sum()
    }

    /// Secrets whose bytes could not be located in the records, if any.
    pub fn unlocated(&self) -> Option<u64> {
        Some(self.found.unlocated).filter(|&n| n > 0)
    }

    /// Streams left out, and non-MCP lines blanked.
    pub fn left_out(&self) -> (usize, u64) {
        (self.found.streams_left_out(), self.found.blanked)
    }
}

impl Plan for Redaction {
    fn op(&self) -> &'static str {
        "redact"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "rules_version": self.rules.version,
            "rules_digest": self.rules.digest,
            "rules": self.rules.names().collect::<Vec<_>>(),
            "counts": self.counts,
            "non_mcp": if self.keep_non_mcp { "kept" } else { "left out" },
            "non_mcp_lines_blanked": self.found.blanked,
            "non_mcp_streams_left_out": self.found.streams_left_out(),
            "secrets_not_located": self.found.unlocated,
            "tls_keylog_lines_left_out": self.keylog_left_out,
        })
    }

    /// Key log lines would let anyone decrypt what redaction cannot reach
    /// (ciphertext): they never go into a redacted capture.
    fn keeps_keylog(&mut self) -> bool {
        self.keylog_left_out += 1;
        false
    }

    fn streams(&mut self) -> Option<Streams> {
        self.found.take_streams()
    }

    fn whole_block(&self, id: i64, stored: &[u8]) -> Result<Option<&Seen>, String> {
        self.found.whole().get(id, stored)
    }

    fn keeps(&mut self, _seq: u64, ev: &RawEvent<'_>) -> bool {
        match ev.hdr.kind {
            kind::DATA => self.found.keeps_stream(&ev.stream_id()),
            _ => self.found.keeps_pid(ev.hdr.tgid),
        }
    }

    fn rewrite(&mut self, seq: u64, ev: &RawEvent<'_>, payload: &mut [u8]) {
        if ev.hdr.kind == kind::DATA {
            let off = ev.hdr.stream_off;
            let at = self.found.incarnation(seq, ev);
            for s in self.found.spans_over(&at, off, payload.len() as u64) {
                apply(s, off, payload);
            }
        } else {
            for s in self.found.record_spans(seq) {
                apply(s, 0, payload);
            }
        }
    }

    fn process(&mut self, row: &mut ProcessRow) {
        let loc = Place::CommandLine(row.pid);
        if let Some(cmd) = row.cmdline.take() {
            row.cmdline = Some(match serde_json::from_str::<Vec<String>>(&cmd) {
                Ok(mut args) => {
                    self.redact_args(&mut args, &loc);
                    serde_json::to_string(&args).unwrap_or_default()
                }
                Err(_) => {
                    let mut bytes = cmd.into_bytes();
                    let mut spans = Vec::new();
                    self.rules.in_text(&bytes, &mut spans);
                    self.redact_in(&mut bytes, spans, &loc);
                    String::from_utf8(bytes).unwrap_or_default()
                }
            });
        }
        if let Some(exe) = row.exe.take() {
            let mut bytes = exe.into_bytes();
            let mut spans = Vec::new();
            self.rules.in_text(&bytes, &mut spans);
            self.redact_in(&mut bytes, spans, &Place::Executable(row.pid));
            row.exe = Some(String::from_utf8(bytes).unwrap_or_default());
        }
    }

    fn meta(&mut self, key: &str, value: &mut String) {
        let loc = Place::Meta(key.into());
        if key == "command_line" {
            if let Ok(mut args) = serde_json::from_str::<Vec<String>>(value) {
                self.redact_args(&mut args, &loc);
                *value = serde_json::to_string(&args).unwrap_or_default();
                return;
            }
        }
        let mut bytes = std::mem::take(value).into_bytes();
        let mut spans = Vec::new();
        self.rules.in_text(&bytes, &mut spans);
        self.redact_in(&mut bytes, spans, &loc);
        *value = String::from_utf8(bytes).unwrap_or_default();
    }

    fn view(&self) -> Option<&HashSet<ViewKey>> {
        self.view.as_ref()
    }
}

/// Writes the part of `span` that falls in a payload starting at `off`.
fn apply(span: &Span, off: u64, payload: &mut [u8]) {
    let end = off + payload.len() as u64;
    let (from, to) = (span.start.max(off), span.end.min(end));
    if from >= to {
        return;
    }
    let src = (from - span.start) as usize..(to - span.start) as usize;
    let dst = (from - off) as usize..(to - off) as usize;
    payload[dst].copy_from_slice(&span.with[src]);
}

#[cfg(test)]
mod tests {
    use super::token;

    #[test]
    fn tokens_keep_the_length_and_depend_on_the_key() {
        for len in [1, 5, 31, 32, 33, 100] {
            let secret = vec![b's'; len];
            let t = token(b"k1", &secret);
            assert_eq!(t.len(), len);
            assert!(t.iter().all(u8::is_ascii_alphanumeric));
            assert_eq!(t, token(b"k1", &secret), "the same secret, the same token");
        }
        assert_ne!(
            token(b"k1", b"hunter2hunter2"),
            token(b"k2", b"hunter2hunter2")
        );
        assert_ne!(
            token(b"k1", b"hunter2hunter2"),
            token(b"k1", b"hunter3hunter3")
        );
    }
}
