//! The secrets of a capture's TLS key log lines, by connection.

use crate::event::keylog::{parse_line, Label, Line};
use std::collections::HashMap;

/// The secrets of the capture's key log lines, by client random.
#[derive(Debug, Default)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], HashMap<Label, Vec<u8>>>,
    /// Lines may come (the capture follows key logs): TLS waits for them.
    expected: bool,
    /// Counts the secrets added: what waits on them tries again only
    /// when it moved.
    generation: u64,
}

/// Connections remembered at most (some 500 bytes each): a hostile file
/// cannot grow the decoder past this. A real capture has one entry per TLS
/// connection; the lines of connections past it are ignored, and those
/// connections are flagged "TLS, no keys" like any other without secrets.
const MAX_CONNECTIONS: usize = 1 << 18;

impl KeyLog {
    /// `expected`: the capture may hold key log lines (feature `tls_keylog`).
    pub fn new(expected: bool) -> KeyLog {
        KeyLog {
            expected,
            ..KeyLog::default()
        }
    }

    pub fn expected(&self) -> bool {
        self.expected
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds a line of the capture; lines that are not secrets are ignored
    /// here (the file keeps them).
    pub fn add(&mut self, line: &[u8]) {
        let Ok(Line::Secret {
            label,
            random,
            secret,
        }) = parse_line(line)
        else {
            return;
        };
        if self.by_random.len() >= MAX_CONNECTIONS && !self.by_random.contains_key(&random) {
            return;
        }
        self.by_random
            .entry(random)
            .or_default()
            .insert(label, secret);
        self.generation += 1;
    }

    pub fn secret(&self, random: &[u8; 32], label: Label) -> Option<&[u8]> {
        self.by_random.get(random)?.get(&label).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_by_random_and_label() {
        let line = format!(
            "CLIENT_TRAFFIC_SECRET_0 {} {}",
            "ab".repeat(32),
            "01".repeat(32)
        );
        let mut keys = KeyLog::new(true);
        keys.add(line.as_bytes());
        keys.add(b"not a key log line");
        let random = [0xab; 32];
        assert_eq!(
            keys.secret(&random, Label::ClientTraffic),
            Some(&[1u8; 32][..])
        );
        assert!(keys.secret(&random, Label::ServerTraffic).is_none());
        assert!(keys.secret(&[0; 32], Label::ClientTraffic).is_none());
    }
}
