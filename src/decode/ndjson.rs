//! Newline-delimited JSON, the framing of stdio and of JSON-RPC over a raw
//! socket: each line is one message.

use super::frame::{lost_frame, Cut, Frame, FrameBody};
use super::reassembly::Piece;

/// Newline-delimited JSON: each line is one message.
#[derive(Debug)]
pub struct Ndjson {
    open: Option<Open>,
    /// The next line starts right after lost bytes.
    pub(super) after_loss: Option<Cut>,
    max_line: usize,
}

/// A line begun but not yet ended.
#[derive(Debug)]
struct Open {
    start: u64,
    text: Vec<u8>,
    dropped: u64,
    first_ts: u64,
    last_ts: u64,
    seqs: Vec<u64>,
    cut_start: Option<Cut>,
}

impl Ndjson {
    pub fn new(max_line: usize) -> Self {
        Ndjson {
            open: None,
            after_loss: None,
            max_line,
        }
    }

    /// Bytes of the line not yet ended.
    pub fn held(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.text.len())
    }

    pub fn feed(&mut self, piece: Piece<'_>, out: &mut impl FnMut(Frame)) {
        match piece {
            Piece::Data {
                off,
                bytes,
                ts,
                seq,
            } => self.data(off, bytes, ts, seq, out),
            Piece::Lost {
                off,
                len,
                why,
                ts,
                seq,
            } => {
                if let Some(frame) = self
                    .open
                    .take()
                    .and_then(|o| o.close(off, Some(Cut::Loss(why))))
                {
                    out(frame);
                }
                out(lost_frame(off, len, why, ts, seq));
                self.after_loss = Some(Cut::Loss(why));
            }
            Piece::Late { .. } => {}
        }
    }

    fn data(&mut self, off: u64, bytes: &[u8], ts: u64, seq: u64, out: &mut impl FnMut(Frame)) {
        let mut pos = 0;
        for nl in memchr::memchr_iter(b'\n', bytes) {
            let line = &bytes[pos..nl];
            let end = off + nl as u64;
            let mut open = match self.open.take() {
                Some(open) => open,
                None => Open::new(off + pos as u64, ts, self.after_loss.take()),
            };
            open.append(line, ts, seq, self.max_line);
            if let Some(frame) = open.close(end, None) {
                out(frame);
            }
            self.after_loss = None;
            pos = nl + 1;
        }
        if pos < bytes.len() {
            let rest = &bytes[pos..];
            let open = match &mut self.open {
                Some(open) => open,
                None => {
                    let cut_start = self.after_loss.take();
                    self.open.insert(Open::new(off + pos as u64, ts, cut_start))
                }
            };
            open.append(rest, ts, seq, self.max_line);
        }
    }

    pub fn finish(&mut self, out: &mut impl FnMut(Frame)) {
        if let Some(open) = self.open.take() {
            let end = open.start + open.text.len() as u64 + open.dropped;
            if let Some(frame) = open.close(end, Some(Cut::CaptureEnd)) {
                out(frame);
            }
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

impl Open {
    fn new(start: u64, ts: u64, cut_start: Option<Cut>) -> Self {
        Open {
            start,
            text: Vec::new(),
            dropped: 0,
            first_ts: ts,
            last_ts: ts,
            seqs: Vec::with_capacity(2),
            cut_start,
        }
    }

    fn append(&mut self, bytes: &[u8], ts: u64, seq: u64, max_line: usize) {
        let room = max_line.saturating_sub(self.text.len()).min(bytes.len());
        self.text.extend_from_slice(&bytes[..room]);
        self.dropped += (bytes.len() - room) as u64;
        self.last_ts = self.last_ts.max(ts);
        if self.seqs.last() != Some(&seq) {
            self.seqs.push(seq);
        }
    }

    /// The frame, or None for a line of only blanks (it says nothing).
    fn close(mut self, end: u64, cut: Option<Cut>) -> Option<Frame> {
        if self.dropped == 0 && is_blank(&self.text) {
            return None;
        }
        if self.text.last() == Some(&b'\r') && self.dropped == 0 {
            self.text.pop();
        }
        let cut_end = match (cut, self.dropped) {
            (Some(c), _) => Some(c),
            (None, 0) => None,
            (None, dropped) => Some(Cut::TooLong { dropped }),
        };
        Some(Frame::plain(
            self.start,
            end,
            self.first_ts,
            self.last_ts,
            self.seqs,
            FrameBody::Text {
                text: self.text,
                cut_start: self.cut_start,
                cut_end,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::reassembly::Loss;

    fn data(off: u64, bytes: &[u8], seq: u64) -> Piece<'_> {
        Piece::Data {
            off,
            bytes,
            ts: seq * 10,
            seq,
        }
    }

    fn frames(pieces: Vec<Piece<'_>>, finish: bool) -> Vec<Frame> {
        let mut f = Ndjson::new(1 << 20);
        let mut v = Vec::new();
        for p in pieces {
            f.feed(p, &mut |fr| v.push(fr));
        }
        if finish {
            f.finish(&mut |fr| v.push(fr));
        }
        v
    }

    fn text(f: &Frame) -> &str {
        std::str::from_utf8(f.text().unwrap()).unwrap()
    }

    #[test]
    fn lines_across_reads_and_several_per_read() {
        let v = frames(
            vec![
                data(0, b"{\"a\":1}\n{\"b\"", 1),
                data(12, b":2}\r\n\n  \n{\"c\":3}\n{\"d", 2),
            ],
            true,
        );
        assert_eq!(v.len(), 4);
        assert_eq!((text(&v[0]), v[0].start, v[0].end), ("{\"a\":1}", 0, 7));
        assert_eq!((text(&v[1]), v[1].start, v[1].end), ("{\"b\":2}", 8, 16));
        assert_eq!(v[1].seqs, vec![1, 2]);
        assert_eq!((v[1].first_ts, v[1].last_ts), (10, 20));
        assert!(v[1].ends_cleanly());
        assert_eq!(text(&v[2]), "{\"c\":3}");
        assert_eq!(text(&v[3]), "{\"d");
        assert!(matches!(
            v[3].body,
            FrameBody::Text {
                cut_end: Some(Cut::CaptureEnd),
                ..
            }
        ));
    }

    #[test]
    fn a_loss_cuts_the_open_line_and_marks_the_next() {
        let v = frames(
            vec![
                data(0, b"{\"a\":1}\n{\"b\":", 1),
                Piece::Lost {
                    off: 13,
                    len: 5,
                    why: Loss::Missing,
                    ts: 20,
                    seq: None,
                },
                data(18, b"9}\n{\"c\":3}\n", 3),
            ],
            false,
        );
        assert_eq!(v.len(), 5);
        assert!(v[0].ends_cleanly());
        assert!(matches!(
            v[1].body,
            FrameBody::Text {
                cut_end: Some(Cut::Loss(Loss::Missing)),
                cut_start: None,
                ..
            }
        ));
        assert!(matches!(v[2].body, FrameBody::Lost { .. }));
        assert_eq!((v[2].start, v[2].end), (13, 18));
        assert!(matches!(
            v[3].body,
            FrameBody::Text {
                cut_start: Some(Cut::Loss(Loss::Missing)),
                cut_end: None,
                ..
            }
        ));
        assert_eq!(text(&v[3]), "9}");
        // The next newline resynchronises.
        assert!(matches!(
            v[4].body,
            FrameBody::Text {
                cut_start: None,
                cut_end: None,
                ..
            }
        ));
    }

    #[test]
    fn overlong_lines_are_cut_not_kept() {
        let mut f = Ndjson::new(4);
        let mut v = Vec::new();
        f.feed(data(0, b"0123456789\nok\n", 1), &mut |fr| v.push(fr));
        assert_eq!(v.len(), 2);
        assert_eq!(text(&v[0]), "0123");
        assert_eq!(v[0].end, 10);
        assert!(matches!(
            v[0].body,
            FrameBody::Text {
                cut_end: Some(Cut::TooLong { dropped: 6 }),
                ..
            }
        ));
        assert_eq!(text(&v[1]), "ok");
    }
}
