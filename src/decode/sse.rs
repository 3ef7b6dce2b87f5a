//! Server-sent events (`text/event-stream`, as the WHATWG HTML standard
//! defines them): a response body becomes events, and each event's data is
//! one message's text.
//!
//! Lines end in CRLF, LF or CR; `data:` lines accumulate (joined by LF);
//! `event:` names the event (`endpoint` is the legacy HTTP+SSE transport's
//! announcement of where to POST); `id:`, `retry:`, unknown fields and
//! comments (`:` lines) carry no message; a blank line ends the event. An
//! event whose data is empty (a resumability priming event) is not a
//! message. Every event's position is a function of the bytes alone, never
//! of how reads split them: a CR that ends a piece waits to see whether an
//! LF follows.

use super::frame::Cut;

/// Where decoded body bytes sit in the stream.
#[derive(Clone, Copy, Debug)]
pub enum RawPos {
    /// Byte i is at stream offset `off + i` (an uncompressed body).
    Exact(u64),
    /// Every byte came out of the stream bytes [start, end) (compressed).
    Span(u64, u64),
}

impl RawPos {
    /// Stream offset of byte i.
    pub fn at(self, i: usize) -> u64 {
        match self {
            RawPos::Exact(off) => off + i as u64,
            RawPos::Span(start, _) => start,
        }
    }

    /// Stream offset just past byte i.
    pub fn after(self, i: usize) -> u64 {
        match self {
            RawPos::Exact(off) => off + i as u64 + 1,
            RawPos::Span(_, end) => end,
        }
    }
}

/// Stream bytes, times and records gathered for one piece of output.
#[derive(Clone, Debug, Default)]
pub struct Acc {
    pub start: u64,
    pub end: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    pub seqs: Vec<u64>,
}

impl Acc {
    pub fn new(start: u64, ts: u64) -> Self {
        Acc {
            start,
            end: start,
            first_ts: ts,
            last_ts: ts,
            seqs: Vec::with_capacity(2),
        }
    }

    /// The bytes up to `end` came from records `seqs`, the last at `ts`.
    pub fn note(&mut self, end: u64, ts: u64, seqs: &[u64]) {
        self.end = self.end.max(end);
        self.last_ts = self.last_ts.max(ts);
        for &seq in seqs {
            if self.seqs.last() != Some(&seq) {
                self.seqs.push(seq);
            }
        }
    }

    /// Both spans as one (`later` follows this one).
    pub fn join(&mut self, later: &Acc) {
        self.note(later.end, later.last_ts, &later.seqs);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseKind {
    /// A message's text (event type `message`, or any other but `endpoint`).
    Message,
    /// The legacy transport's `endpoint` event.
    Endpoint,
}

/// One event with data.
#[derive(Debug)]
pub struct SseEvent {
    pub kind: SseKind,
    pub data: Vec<u8>,
    /// Its stream bytes: from the end of the event before it to the end of
    /// the blank line that ends it.
    pub acc: Acc,
    pub cut_start: Option<Cut>,
    pub cut_end: Option<Cut>,
}

/// Longest event type kept (longer ones are not `endpoint` anyway).
const MAX_EVENT_TYPE: usize = 64;

#[derive(Debug)]
pub struct Sse {
    max: usize,
    line: Vec<u8>,
    line_dropped: u64,
    /// The line in progress follows lost bytes: where it starts is unknown.
    skip_line: bool,
    /// The line in progress is a `data:` line, its value going straight
    /// into `data` (a big message is not held twice); `Some(true)` while
    /// the one space that may follow the colon has not been seen.
    data_line: Option<bool>,
    /// A line ended in CR at the end of a piece: its end and origin.
    pending_cr: Option<(u64, u64, Vec<u64>)>,
    /// The data buffer is non-empty (in the standard's sense: a `data:`
    /// line was seen, even an empty one).
    has_data: bool,
    data: Vec<u8>,
    data_dropped: u64,
    event: Vec<u8>,
    block: Option<Acc>,
    cut_start: Option<Cut>,
    /// At the first byte of the body (a byte-order mark may come).
    at_start: bool,
}

impl Sse {
    /// Bytes held for the event in progress.
    pub fn held(&self) -> usize {
        self.line.len() + self.data.len() + self.event.len()
    }

    pub fn new(max: usize) -> Self {
        Sse {
            max,
            line: Vec::new(),
            line_dropped: 0,
            skip_line: false,
            data_line: None,
            pending_cr: None,
            has_data: false,
            data: Vec::new(),
            data_dropped: 0,
            event: Vec::new(),
            block: None,
            cut_start: None,
            at_start: true,
        }
    }

    /// Body bytes at `pos`, carried by records `seqs` (the last at `ts`).
    pub fn feed(
        &mut self,
        bytes: &[u8],
        pos: RawPos,
        ts: u64,
        seqs: &[u64],
        out: &mut impl FnMut(SseEvent),
    ) {
        let mut i = 0;
        if self.at_start && !bytes.is_empty() {
            self.at_start = false;
            if bytes.starts_with(b"\xef\xbb\xbf") {
                i = 3;
            }
        }
        if let Some((end, cr_ts, cr_seqs)) = self.pending_cr.take() {
            if bytes.get(i) == Some(&b'\n') {
                self.end_line(pos.after(i), ts, seqs, out);
                i += 1;
            } else {
                self.end_line(end, cr_ts, &cr_seqs, out);
            }
        }
        while i < bytes.len() {
            self.block
                .get_or_insert_with(|| Acc::new(pos.at(i), ts))
                .note(pos.at(i), ts, seqs);
            let Some(k) = memchr::memchr2(b'\n', b'\r', &bytes[i..]) else {
                self.push_line(&bytes[i..]);
                if let Some(b) = &mut self.block {
                    b.note(pos.after(bytes.len() - 1), ts, seqs);
                }
                return;
            };
            let t = i + k;
            self.push_line(&bytes[i..t]);
            if bytes[t] == b'\r' {
                match bytes.get(t + 1) {
                    None => {
                        self.pending_cr = Some((pos.after(t), ts, seqs.to_vec()));
                        return;
                    }
                    Some(b'\n') => {
                        self.end_line(pos.after(t + 1), ts, seqs, out);
                        i = t + 2;
                        continue;
                    }
                    Some(_) => {}
                }
            }
            self.end_line(pos.after(t), ts, seqs, out);
            i = t + 1;
        }
    }

    fn push_line(&mut self, mut bytes: &[u8]) {
        if self.skip_line {
            return;
        }
        if self.data_line.is_none() {
            let room = self.max.saturating_sub(self.line.len()).min(bytes.len());
            // Enough of the line to see a `data:` field, no more.
            let look = room.min(5usize.saturating_sub(self.line.len()));
            self.line.extend_from_slice(&bytes[..look]);
            bytes = &bytes[look..];
            if self.line != b"data:" {
                let room = self.max.saturating_sub(self.line.len()).min(bytes.len());
                self.line.extend_from_slice(&bytes[..room]);
                self.line_dropped += (bytes.len() - room) as u64;
                return;
            }
            self.line.clear();
            self.has_data = true;
            self.data_line = Some(true);
        }
        if self.data_line == Some(true) && !bytes.is_empty() {
            self.data_line = Some(false);
            bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
        }
        let room = self.max.saturating_sub(self.data.len()).min(bytes.len());
        self.data.extend_from_slice(&bytes[..room]);
        self.data_dropped += (bytes.len() - room) as u64;
    }

    fn end_line(&mut self, end: u64, ts: u64, seqs: &[u64], out: &mut impl FnMut(SseEvent)) {
        self.block
            .get_or_insert_with(|| Acc::new(end, ts))
            .note(end, ts, seqs);
        let line = std::mem::take(&mut self.line);
        let dropped = std::mem::replace(&mut self.line_dropped, 0);
        if std::mem::replace(&mut self.skip_line, false) {
            return;
        }
        if self.data_line.take().is_some() {
            self.end_data_line();
        } else if line.is_empty() && dropped == 0 {
            self.dispatch(out);
        } else {
            self.field(&line, dropped);
        }
        // The line's buffer is kept for the next one.
        self.line = line;
        self.line.clear();
    }

    fn field(&mut self, line: &[u8], dropped: u64) {
        let (name, value) = match memchr::memchr(b':', line) {
            Some(0) => return, // a comment
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                // `data` without a colon: an empty value.
                self.has_data = true;
                let room = self.max.saturating_sub(self.data.len());
                let kept = value.len().min(room);
                self.data.extend_from_slice(&value[..kept]);
                self.data_dropped += (value.len() - kept) as u64 + dropped;
                self.end_data_line();
            }
            b"event" => {
                self.event.clear();
                self.event
                    .extend_from_slice(&value[..value.len().min(MAX_EVENT_TYPE)]);
            }
            // `id` (the last event id), `retry` (a reconnection delay) and
            // unknown fields carry no message.
            _ => {}
        }
    }

    /// A data line ends: the next one's value follows a line feed.
    fn end_data_line(&mut self) {
        if self.data.len() < self.max {
            self.data.push(b'\n');
        } else {
            self.data_dropped += 1;
        }
    }

    /// A blank line: the event is complete.
    fn dispatch(&mut self, out: &mut impl FnMut(SseEvent)) {
        let acc = self.block.take().unwrap_or_default();
        let cut_start = self.cut_start.take();
        let event = std::mem::take(&mut self.event);
        if !std::mem::replace(&mut self.has_data, false) {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        let dropped = std::mem::replace(&mut self.data_dropped, 0);
        if dropped == 0 && data.last() == Some(&b'\n') {
            data.pop();
        }
        if data.is_empty() && dropped == 0 {
            return; // a priming event: no message
        }
        out(SseEvent {
            kind: if event == b"endpoint" {
                SseKind::Endpoint
            } else {
                SseKind::Message
            },
            data,
            acc,
            cut_start,
            cut_end: (dropped > 0).then_some(Cut::TooLong { dropped }),
        });
    }

    /// Bytes of the body were lost here: an event in progress is cut (what
    /// it has is given out), and the one after the loss may be a tail.
    pub fn lost(&mut self, cut: Cut, out: &mut impl FnMut(SseEvent)) {
        if let Some((end, ts, seqs)) = self.pending_cr.take() {
            self.end_line(end, ts, &seqs, out);
        }
        // A line cut short still says what it had (a data line: the
        // start of the message).
        let line = std::mem::take(&mut self.line);
        let dropped = std::mem::replace(&mut self.line_dropped, 0);
        if self.data_line.take().is_none() && !line.is_empty() && !self.skip_line {
            self.field(&line, dropped);
        }
        self.cut_event(cut, out);
        self.skip_line = true;
        self.cut_start = Some(cut);
    }

    /// Gives out the event in progress as cut by `cut`, if it has data.
    fn cut_event(&mut self, cut: Cut, out: &mut impl FnMut(SseEvent)) {
        let acc = self.block.take();
        let cut_start = self.cut_start.take();
        self.event.clear();
        let dropped = std::mem::replace(&mut self.data_dropped, 0);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::replace(&mut self.has_data, false) {
            return;
        }
        if data.last() == Some(&b'\n') {
            data.pop();
        }
        if let Some(acc) = acc.filter(|_| !data.is_empty() || dropped > 0) {
            out(SseEvent {
                kind: SseKind::Message,
                data,
                acc,
                cut_start,
                cut_end: Some(cut),
            });
        }
    }

    /// The body is over. An event still open is given out cut by `cut`
    /// (`None`: the body ended cleanly without the blank line that would
    /// have ended the event; clients drop such an event).
    pub fn finish(&mut self, cut: Option<Cut>, out: &mut impl FnMut(SseEvent)) {
        if let Some((end, ts, seqs)) = self.pending_cr.take() {
            self.end_line(end, ts, &seqs, out);
        }
        if self.data_line.take().is_none() && !self.line.is_empty() && !self.skip_line {
            let line = std::mem::take(&mut self.line);
            let dropped = std::mem::replace(&mut self.line_dropped, 0);
            self.field(&line, dropped);
        }
        self.cut_event(cut.unwrap_or(Cut::CaptureEnd), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(pieces: &[&[u8]]) -> Vec<(SseKind, String, u64, u64, bool)> {
        let mut p = Sse::new(1 << 20);
        let mut v = Vec::new();
        let mut off = 0;
        let mut sink = |e: SseEvent| {
            v.push((
                e.kind,
                String::from_utf8(e.data).unwrap(),
                e.acc.start,
                e.acc.end,
                e.cut_start.is_some() || e.cut_end.is_some(),
            ))
        };
        for (i, piece) in pieces.iter().enumerate() {
            p.feed(piece, RawPos::Exact(off), i as u64, &[i as u64], &mut sink);
            off += piece.len() as u64;
        }
        p.finish(None, &mut sink);
        v
    }

    #[test]
    fn fields_comments_and_line_endings() {
        let body: &[u8] = b": comment\r\nevent: message\r\nid: 7\r\nretry: 100\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata:\n\nevent: endpoint\rdata: /messages?s=1\r\r";
        let whole = events(&[body]);
        assert_eq!(
            whole,
            vec![
                (SseKind::Message, "{\"a\":\n1}".into(), 0, 71, false),
                (
                    SseKind::Endpoint,
                    "/messages?s=1".into(),
                    78,
                    body.len() as u64,
                    false
                ),
            ]
        );
        // Any split gives the same events at the same places.
        for cut in 1..body.len() {
            assert_eq!(
                events(&[&body[..cut], &body[cut..]]),
                whole,
                "split at {cut}"
            );
        }
    }

    #[test]
    fn a_loss_cuts_the_event_and_the_next_one_resumes() {
        let mut p = Sse::new(1 << 20);
        let mut v = Vec::new();
        let mut sink =
            |e: SseEvent| v.push((String::from_utf8(e.data).unwrap(), e.cut_start, e.cut_end));
        p.feed(b"data: {\"x\"", RawPos::Exact(0), 1, &[1], &mut sink);
        p.lost(Cut::CaptureEnd, &mut sink);
        p.feed(
            b"tail\n\ndata: {}\n\n",
            RawPos::Exact(20),
            2,
            &[2],
            &mut sink,
        );
        assert_eq!(
            v,
            vec![
                ("{\"x\"".into(), None, Some(Cut::CaptureEnd)),
                ("{}".into(), None, None),
            ]
        );
    }
}
