//! Framing lost (a loss outside a DATA payload, bytes that are not the
//! preface) and found again: the next run of plausible frame headers. What
//! the lost bytes held is unknown, so from then on header blocks are not
//! decoded; bodies still are.

use super::*;

/// Bytes held after a loss, and how far they were searched for a frame.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub(super) held: Vec<Held>,
    /// The held bytes, joined.
    pub(super) all: Vec<u8>,
    /// Offsets in `all` before this were tried.
    pub(super) scanned: usize,
    /// Offsets of plausible headers whose next frame is not yet held.
    pub(super) unsure: Vec<usize>,
}

/// Plausible headers kept waiting for their next frame.
pub(super) const MAX_UNSURE: usize = 8;

impl H2 {
    /// Framing is lost: look for the next frame.
    pub(super) fn enter_resync<F: FnMut(Frame)>(&mut self, emit: &mut Emit<'_, F>) {
        // What the lost bytes held is unknown: every open body has a gap.
        let cut = Cut::Loss(Loss::Missing);
        for o in self.open.values_mut() {
            with_emit(emit, o.hide_meta, |e| o.msg.content_lost(cut, e));
        }
        self.block = None;
        self.hpack_lost = true;
        self.read = Read::Resync(Box::default());
    }

    /// Looks for a frame header in the bytes held; resumes framing there.
    /// `last`: no more bytes come, so a header whose frame runs past them will do.
    pub(super) fn try_resync<F: FnMut(Frame)>(
        &mut self,
        last: bool,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let Read::Resync(scan) = &mut self.read else {
            return;
        };
        let all = &scan.all;
        let full = all.len() >= MAX_RESYNC;
        // A run of two frames wins; else the first header whose frame runs
        // past the bytes held (once no more can come to check it). Each
        // offset is tried once, but for the few still unsure.
        let mut found = None;
        scan.unsure
            .retain(|&p| match wire::frames_start(&all[p..]) {
                Some(true) => {
                    found = found.or(Some(p));
                    false
                }
                Some(false) => false,
                None => true,
            });
        let end = all.len().saturating_sub(HEADER_LEN - 1);
        while found.is_none() && scan.scanned < end {
            let p = scan.scanned;
            scan.scanned += 1;
            match wire::frames_start(&all[p..]) {
                Some(true) => found = Some(p),
                Some(false) => {}
                None if scan.unsure.len() < MAX_UNSURE => scan.unsure.push(p),
                None => {}
            }
        }
        if found.is_none() && (full || last) {
            found = scan.unsure.first().copied();
        }
        let all_len = all.len();
        let skip_to = match found {
            Some(p) => p,
            // Nothing here starts a frame: past the limit, all but the last
            // bytes (which may start one) are given up.
            None if full && !last => all_len - (HEADER_LEN - 1).min(all_len),
            None => return,
        };
        let held = std::mem::take(&mut scan.held);
        let Some((first_off, first_ts)) = held.first().map(|h| (h.off, h.ts)) else {
            return;
        };
        let from = first_off + skip_to as u64;
        if skip_to > 0 {
            let mut acc = Acc::new(first_off, first_ts);
            let end = from;
            for h in held.iter().take_while(|h| h.off < end) {
                acc.note(end.min(h.off + h.bytes.len() as u64), h.ts, &[h.seq]);
            }
            let why = format!(
                "{skip_to} bytes of HTTP/2 frames skipped while looking for the next frame \
                 after lost bytes (or at a connection picked up mid-way); headers are not \
                 decoded from here on, bodies still are"
            );
            emit.notice_at(FlagReason::HeadersUnknown, why, Vec::new(), acc, None);
        }
        if found.is_none() {
            // Keep looking in the tail.
            let held = keep_from(held, from);
            let all = held.iter().flat_map(|h| h.bytes.iter().copied()).collect();
            self.read = Read::Resync(Box::new(Scan {
                held,
                all,
                ..Scan::default()
            }));
            return;
        }
        self.read = Read::Head {
            buf: [0; HEADER_LEN],
            have: 0,
            acc: Acc::default(),
        };
        for h in keep_from(held, from) {
            self.data(h.off, &h.bytes, h.ts, h.seq, sock, emit);
        }
    }

    /// `len` bytes at `off` were never captured.
    pub(super) fn lost<F: FnMut(Frame)>(
        &mut self,
        piece: Piece<'_>,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let Piece::Lost {
            off,
            len,
            why,
            ts,
            seq,
        } = piece
        else {
            return;
        };
        let lost = lost_frame(off, len, why, ts, seq);
        let cut = Cut::Loss(why);
        if let Read::Payload(p) = &mut self.read {
            let left = u64::from(p.head.len - p.at);
            if len <= left {
                // Inside this frame: step over it exactly.
                p.at += len as u32;
                p.damaged = true;
                p.acc
                    .note(off + len, ts, &seq.into_iter().collect::<Vec<_>>());
                if p.head.kind == wire::DATA {
                    if let Some(o) = self.open.get_mut(&p.head.stream) {
                        with_emit(emit, o.hide_meta, |e| o.msg.content_lost(cut, e));
                    }
                    // The rest of the payload is still body.
                    p.damaged = false;
                    p.pad = p.pad.or(Some(0));
                }
                emit.frame(lost);
                if p.at == p.head.len {
                    self.frame_done(sock, emit);
                }
                return;
            }
        }
        let resyncing = matches!(self.read, Read::Resync { .. });
        if !resyncing {
            self.enter_resync(emit);
        }
        emit.frame(lost);
        if let Read::Resync(scan) = &mut self.read {
            // What was held before the loss cannot be followed across it.
            **scan = Scan::default();
        }
    }
}

/// The held pieces from stream offset `from` on.
pub(super) fn keep_from(held: Vec<Held>, from: u64) -> Vec<Held> {
    held.into_iter()
        .filter_map(|mut h| {
            let end = h.off + h.bytes.len() as u64;
            if end <= from {
                return None;
            }
            if h.off < from {
                h.bytes.drain(..(from - h.off) as usize);
                h.off = from;
            }
            Some(h)
        })
        .collect()
}
