//! What a whole frame does: DATA ends a message, a header block opens one
//! (decoded with the direction's HPACK table), RST_STREAM cuts one, GOAWAY
//! with an error is said.

use super::*;

impl H2 {
    /// A whole frame has been read.
    pub(super) fn frame_done<F: FnMut(Frame)>(
        &mut self,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let Read::Payload(p) = std::mem::replace(
            &mut self.read,
            Read::Head {
                buf: [0; HEADER_LEN],
                have: 0,
                acc: Acc::default(),
            },
        ) else {
            return;
        };
        let Payload {
            head,
            acc,
            kept,
            damaged,
            ..
        } = *p;
        match head.kind {
            wire::DATA => {
                if damaged {
                    let why = "DATA frame whose padding is longer than the frame".into();
                    emit.notice_at(FlagReason::BadHttp, why, Vec::new(), acc, None);
                }
                if head.has(wire::END_STREAM) {
                    self.end_stream(head.stream, None, emit);
                }
            }
            wire::HEADERS | wire::PUSH_PROMISE => {
                if let Some(b) = self.block.take() {
                    self.bad_block(b, "a header block without its CONTINUATION", sock, emit);
                }
                let fragment = fragment(&head, &kept);
                self.block = Some(Block {
                    stream: head.stream,
                    end_stream: head.kind == wire::HEADERS && head.has(wire::END_STREAM),
                    promise: head.kind == wire::PUSH_PROMISE,
                    damaged: damaged || fragment.is_none(),
                    bytes: fragment.unwrap_or_default().to_vec(),
                    acc,
                });
                if head.has(wire::END_HEADERS) {
                    self.block_done(sock, emit);
                }
            }
            wire::CONTINUATION => match &mut self.block {
                Some(b) if b.stream == head.stream => {
                    b.acc.join(&acc);
                    b.damaged |= damaged || b.bytes.len() + kept.len() > MAX_BLOCK;
                    if !b.damaged {
                        b.bytes.extend_from_slice(&kept);
                    }
                    if head.has(wire::END_HEADERS) {
                        self.block_done(sock, emit);
                    }
                }
                _ => {
                    let why = "CONTINUATION frame without a HEADERS frame before it".into();
                    emit.notice_at(FlagReason::BadHttp, why, Vec::new(), acc, None);
                }
            },
            wire::RST_STREAM if !damaged && kept.len() == 4 => {
                let code = be32(&kept, 0);
                let request = sock.requests.get(&head.stream);
                let what = match (self.requests, request) {
                    (Some(true), Some(r)) => format!(" of {} {:.120}", r.method, r.path),
                    _ => String::new(),
                };
                let who = match self.requests {
                    Some(true) => "the client",
                    Some(false) => "the server",
                    None => "its sender",
                };
                let cut = self.open.contains_key(&head.stream);
                if cut || code != 0 {
                    let why = format!(
                        "HTTP/2 stream {}{what} reset by {who} ({}){}",
                        head.stream,
                        wire::error_name(code),
                        if cut { ": its message ends here" } else { "" },
                    );
                    // Named by its stream: a client's reset cancels the
                    // request that stream carried (MCP 2026-07-28).
                    let meta = HttpMeta {
                        is_request: self.requests == Some(true),
                        stream: Some(head.stream),
                        ..HttpMeta::default()
                    };
                    emit.notice_at(FlagReason::Reset, why, Vec::new(), acc, Some(&meta));
                }
                self.end_stream(head.stream, Some(Cut::Reset), emit);
            }
            wire::GOAWAY if !damaged && kept.len() >= 8 => {
                let last = be32(&kept, 0) & !(1 << 31);
                let code = be32(&kept, 4);
                if code != 0 {
                    let debug = String::from_utf8_lossy(&kept[8..kept.len().min(128)]);
                    let why = format!(
                        "HTTP/2 connection closed by GOAWAY ({}) after stream {last}{}",
                        wire::error_name(code),
                        if debug.is_empty() {
                            String::new()
                        } else {
                            format!(": {debug}")
                        },
                    );
                    emit.notice_at(FlagReason::Reset, why, Vec::new(), acc, None);
                }
            }
            // SETTINGS, PING, PRIORITY, WINDOW_UPDATE and unknown types
            // carry no message (table sizes come in the blocks themselves).
            _ => {}
        }
    }

    /// A header block is complete: decode it and open (or end) its message.
    pub(super) fn block_done<F: FnMut(Frame)>(
        &mut self,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let Some(b) = self.block.take() else { return };
        if b.damaged {
            return self.bad_block(b, "a header block that was not captured whole", sock, emit);
        }
        if self.hpack_lost {
            return self.headerless_block(b, sock, emit);
        }
        let decoded = match headers::decode(&mut self.hpack, &b.bytes) {
            Ok(d) => d,
            Err(why) => return self.bad_block(b, &why, sock, emit),
        };
        if b.promise {
            // Server push: decoded only to keep the table in step.
            return;
        }
        let Decoded {
            kind,
            headers: h,
            head,
        } = decoded;
        let (meta, requests) = match kind {
            BlockKind::Request {
                method,
                path,
                authority: _,
            } => {
                let request = Request {
                    method: method.into(),
                    path: path.into(),
                    host: h.host.clone(),
                    session_id: h.session_id.clone(),
                    protocol_version: h.protocol_version.clone(),
                };
                if sock.requests.len() >= MAX_PENDING_REQUESTS {
                    let oldest = sock.requests.keys().min().copied();
                    oldest.map(|k| sock.requests.remove(&k));
                }
                sock.requests.insert(b.stream, request.clone());
                let meta = request.into_meta();
                (meta, true)
            }
            BlockKind::Response { status } if status < 200 => {
                // Interim: the final response follows on the same stream.
                self.requests = Some(false);
                return;
            }
            BlockKind::Response { status } => {
                let request = sock.requests.remove(&b.stream);
                (response_meta(request, Some((status, &h))), false)
            }
            BlockKind::Trailers => {
                if b.end_stream {
                    self.end_stream(b.stream, None, emit);
                }
                return;
            }
        };
        self.requests = Some(requests);
        let meta = HttpMeta {
            stream: Some(b.stream),
            ..meta
        };
        let msg = open_message(
            meta,
            Framing::UntilClose,
            h,
            &head,
            b.acc,
            self.max_line,
            emit,
        );
        self.insert(b.stream, msg, false, emit);
        if b.end_stream {
            self.end_stream(b.stream, None, emit);
        }
    }

    /// A block that cannot be decoded: the table is lost from here on.
    pub(super) fn bad_block<F: FnMut(Frame)>(
        &mut self,
        b: Block,
        why: &str,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        if !self.hpack_lost {
            self.hpack_lost = true;
            let why = format!(
                "HTTP/2 {why}: the header compression state is lost, so headers are \
                 not decoded from here on (bodies still are)"
            );
            emit.notice_at(
                FlagReason::HeadersUnknown,
                why,
                Vec::new(),
                b.acc.clone(),
                None,
            );
        }
        self.headerless_block(b, sock, emit);
    }

    /// A block that is not decoded still opens or ends its stream's message.
    pub(super) fn headerless_block<F: FnMut(Frame)>(
        &mut self,
        b: Block,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        if b.promise {
            return;
        }
        if !self.open.contains_key(&b.stream) {
            self.open_headerless(b.stream, b.acc, sock, emit);
        }
        if b.end_stream {
            self.end_stream(b.stream, None, emit);
        }
    }
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload (without
/// pad length, priority, promised id and padding); None if malformed.
pub(super) fn fragment<'a>(head: &FrameHead, payload: &'a [u8]) -> Option<&'a [u8]> {
    let prefix = head.prefix_len() as usize;
    let pad = if head.has(wire::PADDED) {
        usize::from(*payload.first()?)
    } else {
        0
    };
    payload.get(prefix..payload.len().checked_sub(pad)?)
}

/// The meta of a response, from its request (if seen) and its headers.
pub(super) fn response_meta(
    request: Option<Request>,
    head: Option<(u16, &super::super::head::Headers)>,
) -> HttpMeta {
    request.unwrap_or_default().response_meta(
        head.map(|(s, _)| s),
        head.and_then(|(_, h)| h.session_id.clone()),
    )
}

/// The big-endian u32 at `at` (0 past the end).
pub(super) fn be32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}
