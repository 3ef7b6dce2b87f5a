//! After a loss in a head or in chunk framing: the bytes up to the next
//! line that starts an HTTP message (or, in a chunked body, the next chunk
//! size line) are reported as a fragment, and framing resumes there.

use super::body::Message;
use super::head::{chunk_size, is_start_line};
use super::{Emit, Input, MAX_RESYNC_LINE};
use crate::decode::frame::{Cut, Frame};
use crate::decode::item::HttpMeta;
use crate::decode::reassembly::Loss;
use crate::decode::sse::Acc;
use std::sync::Arc;

/// Looking for where HTTP framing can resume: the next line that starts an
/// HTTP message, or (in a chunked body) a chunk-size line.
#[derive(Debug)]
pub(super) struct Resync {
    /// A chunked body whose framing was lost.
    pub(super) body: Option<Box<Message>>,
    /// The line in progress, and its stream bytes.
    pub(super) line: Vec<u8>,
    pub(super) line_acc: Option<Acc>,
    /// Captured bytes passed over.
    pub(super) skipped: Skipped,
}

#[derive(Debug, Default)]
pub(super) struct Skipped {
    pub(super) text: Vec<u8>,
    pub(super) acc: Option<Acc>,
    pub(super) meta: Option<Arc<HttpMeta>>,
}

impl Skipped {
    pub(super) fn add(&mut self, text: &[u8], acc: Acc, max_line: usize) {
        let room = max_line.saturating_sub(self.text.len()).min(text.len());
        self.text.extend_from_slice(&text[..room]);
        match &mut self.acc {
            Some(a) => a.join(&acc),
            None => self.acc = Some(acc),
        }
    }

    /// Reports the bytes passed over, unless they are only line ends and
    /// blanks (chunk framing): those say nothing.
    pub(super) fn emit<F: FnMut(Frame)>(self, cut_end: Option<Cut>, emit: &mut Emit<'_, F>) {
        if self.text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if let Some(acc) = self.acc {
            let cut = Some(Cut::Loss(Loss::Missing));
            emit.fragment(self.text, acc, cut, cut_end, self.meta.as_ref());
        }
    }
}

pub(super) enum Found {
    Nothing,
    /// An HTTP start line (without its LF) and its stream bytes.
    StartLine(Vec<u8>, Acc),
    /// A chunk-size line of the body being resumed.
    ChunkSize(u64),
}

impl Resync {
    pub(super) fn new(body: Option<Box<Message>>) -> Self {
        let meta = body.as_ref().map(|m| m.meta.clone());
        Resync {
            body,
            line: Vec::new(),
            line_acc: None,
            skipped: Skipped {
                meta,
                ..Skipped::default()
            },
        }
    }

    /// Another loss while resynchronising: what was passed over so far is
    /// reported, and the line in progress is broken.
    pub(super) fn lost<F: FnMut(Frame)>(&mut self, max_line: usize, emit: &mut Emit<'_, F>) {
        if let Some(acc) = self.line_acc.take() {
            let line = std::mem::take(&mut self.line);
            self.skipped.add(&line, acc, max_line);
        }
        let meta = self.skipped.meta.clone();
        std::mem::take(&mut self.skipped).emit(None, emit);
        self.skipped.meta = meta;
    }

    pub(super) fn step(&mut self, at: &Input<'_>, max_line: usize) -> (usize, Found) {
        let bytes = at.bytes;
        let (n, complete) = match memchr::memchr(b'\n', bytes) {
            Some(k) => (k + 1, true),
            None => (bytes.len(), false),
        };
        self.line_acc
            .get_or_insert_with(|| Acc::new(at.off, at.ts))
            .note(at.off + n as u64, at.ts, &[at.seq]);
        let room = MAX_RESYNC_LINE.saturating_sub(self.line.len()).min(n);
        self.line.extend_from_slice(&bytes[..room]);
        if !complete {
            return (n, Found::Nothing);
        }
        let line = std::mem::take(&mut self.line);
        let acc = self.line_acc.take().unwrap_or_default();
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        if is_start_line(content) {
            return (n, Found::StartLine(content.to_vec(), acc));
        }
        if self.body.is_some() {
            if let Some(size) = chunk_size(content) {
                return (n, Found::ChunkSize(size));
            }
        }
        self.skipped.add(&line, acc, max_line);
        (n, Found::Nothing)
    }
}
