//! One session's state: its roles, what its handshake said, and the
//! requests each end is waiting on.

use super::{implementation, Route};
use crate::decode::item::{Direction, RequestRef, Round, SessionSummary};
use crate::decode::mcp::{self, Sender};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet, VecDeque};

pub(super) struct Pending {
    pub(super) request: RequestRef,
    pub(super) token: Option<Box<str>>,
    /// HTTP: the connection and stream it travelled on (HTTP/1.1: 0).
    pub(super) stream: Option<(u64, u32)>,
}

pub(super) struct Session {
    pub(super) summary: SessionSummary,
    pub(super) client_end: Option<usize>,
    /// The roles came from a handshake, not from a guess.
    pub(super) roles_certain: bool,
    pub(super) initialized: bool,
    /// Requests sent by each end, by id text.
    pub(super) pending: [HashMap<Box<str>, VecDeque<Pending>>; 2],
    /// Progress tokens of the pending requests sent by each end.
    pub(super) tokens: [HashMap<Box<str>, RequestRef>; 2],
    /// HTTP: the connections that carried it.
    pub(super) connections: HashSet<u64>,
    /// The rounds of multi-round calls that asked for input, by the
    /// SHA-256 of the state their retry is to echo.
    rounds: HashMap<[u8; 32], Round>,
    /// HTTP: the waiting requests by connection and stream (the end that
    /// sent each and its id), so that a reset or a close finds its own in
    /// one step.
    streams: HashMap<(u64, u32), (usize, Box<str>)>,
}

/// Multi-round calls a session remembers at once: a retry may come any
/// time later, and a hostile capture may hold any number of states.
const MAX_ROUNDS: usize = 1 << 16;

/// A request state as a key: the string it holds (peers may escape it
/// differently), hashed, so that long states cost 32 bytes each.
fn state_key(state: &RawValue) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    match serde_json::from_str::<std::borrow::Cow<'_, str>>(state.get()) {
        Ok(s) => Sha256::digest(s.as_bytes()).into(),
        Err(_) => Sha256::digest(state.get().as_bytes()).into(),
    }
}

impl Session {
    pub(super) fn new(id: u64, route: &Route<'_>) -> Self {
        Session {
            summary: SessionSummary {
                id,
                transport: route.transport,
                client: None,
                server: None,
                ends: [None; 2],
                protocol_version: None,
                handshake: None,
                client_info: None,
                server_info: None,
                client_capabilities: None,
                server_capabilities: None,
                messages: 0,
                flagged: 0,
                requests: 0,
                unanswered: 0,
                first_ts: route.ts_ns,
                last_ts: route.ts_ns,
                http: None,
            },
            client_end: None,
            roles_certain: false,
            initialized: false,
            pending: Default::default(),
            tokens: Default::default(),
            connections: HashSet::new(),
            rounds: HashMap::new(),
            streams: HashMap::new(),
        }
    }

    /// The round a request is, when it echoes the state of an earlier one.
    pub(super) fn retry_of(&self, state: Option<&RawValue>) -> Option<Round> {
        let earlier = self.rounds.get(&state_key(state?))?;
        Some(Round {
            call: earlier.call,
            round: earlier.round.saturating_add(1),
        })
    }

    /// A response to `request` that asks for input: the call has rounds,
    /// and the retry that echoes `state` is the next. Returns the round
    /// the response answers.
    pub(super) fn asked_input(&mut self, request: &RequestRef, state: Option<&RawValue>) -> Round {
        let round = request.round.unwrap_or(Round {
            call: request.n,
            round: 1,
        });
        if let Some(state) = state {
            if self.rounds.len() < MAX_ROUNDS {
                self.rounds.insert(state_key(state), round);
            }
        }
        round
    }

    pub(super) fn direction(&self, from_end: usize) -> Option<Direction> {
        self.client_end.map(|c| {
            if c == from_end {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            }
        })
    }

    /// `from_end`: the sender's end in this session's numbering.
    pub(super) fn note_ends(&mut self, route: &Route<'_>, from_end: usize) {
        let s = &mut self.summary;
        s.first_ts = s.first_ts.min(route.ts_ns);
        s.last_ts = s.last_ts.max(route.ts_ns);
        if route.from.is_some() {
            s.ends[from_end] = route.from;
        }
        if route.to.is_some() {
            s.ends[1 - from_end] = route.to;
        }
        if let Some(c) = self.client_end {
            s.client = s.ends[c];
            s.server = s.ends[1 - c];
        }
    }

    /// Roles: certain from a handshake request, guessed from the methods
    /// each side sends until then.
    pub(super) fn learn_roles(&mut self, from_end: usize, method: &str, request: bool) {
        let handshake = request && matches!(method, "initialize" | "server/discover");
        if self.roles_certain || (self.client_end.is_some() && !handshake) {
            return;
        }
        let client = if handshake {
            self.roles_certain = true;
            Some(from_end)
        } else {
            match mcp::lookup(method).map(|m| m.sender) {
                Some(Sender::Client) => Some(from_end),
                Some(Sender::Server) => Some(1 - from_end),
                _ => None,
            }
        };
        if let Some(c) = client {
            self.client_end = Some(c);
            self.summary.client = self.summary.ends[c];
            self.summary.server = self.summary.ends[1 - c];
        }
    }

    pub(super) fn learn_from_request(&mut self, method: &str, p: &mcp::Params<'_>) {
        let s = &mut self.summary;
        match method {
            "initialize" => {
                self.initialized = true;
                s.handshake = Some("initialize");
                s.protocol_version = p.protocol_version.as_deref().map(str::to_string);
                s.client_info = p.client_info.as_ref().map(implementation);
                s.client_capabilities = p.capabilities.map(|c| c.get().to_string());
            }
            "server/discover" if s.handshake.is_none() => s.handshake = Some("server/discover"),
            _ => {}
        }
        // MCP 2026-07-28: every request carries the version and the client.
        if let Some(meta) = &p.meta {
            if s.handshake != Some("initialize") {
                if let Some(v) = &meta.protocol_version {
                    s.protocol_version = Some(v.to_string());
                }
            }
            if s.client_info.is_none() {
                s.client_info = meta.client_info.as_ref().map(implementation);
            }
            if s.client_capabilities.is_none() {
                s.client_capabilities = meta.client_capabilities.map(|c| c.get().to_string());
            }
        }
    }

    pub(super) fn learn_from_result(&mut self, method: &str, result: Option<&RawValue>) {
        if !matches!(method, "initialize" | "server/discover") {
            return;
        }
        let Some(r) = result.map(mcp::handshake_result) else {
            return;
        };
        let s = &mut self.summary;
        if let Some(v) = r.protocol_version {
            s.protocol_version = Some(v.into_owned());
        } else if s.protocol_version.is_none() {
            s.protocol_version = r
                .supported_versions
                .as_ref()
                .and_then(|v| v.first())
                .map(|v| v.to_string());
        }
        let server = r
            .server_info
            .as_ref()
            .or(r.meta.as_ref().and_then(|m| m.server_info.as_ref()));
        if let Some(i) = server {
            s.server_info = Some(implementation(i));
        }
        if let Some(c) = r.capabilities {
            s.server_capabilities = Some(c.get().to_string());
        }
    }

    pub(super) fn take_pending(
        &mut self,
        requester: usize,
        id: Option<&RawValue>,
    ) -> Option<Pending> {
        self.take(requester, id?.get(), 0)
    }

    /// A request from `end` now waits for its response.
    pub(super) fn wait(&mut self, end: usize, id: Box<str>, p: Pending) {
        if let Some(stream) = p.stream {
            self.streams.insert(stream, (end, id.clone()));
        }
        self.pending[end].entry(id).or_default().push_back(p);
    }

    /// The request still waiting that travelled on an HTTP stream (a
    /// reset's, a closed connection's). Among requests that share its id, it is looked for in the
    /// first `MAX_SAME_ID` only: a capture cannot make each reset a search.
    pub(super) fn take_pending_stream(&mut self, stream: (u64, u32)) -> Option<Pending> {
        const MAX_SAME_ID: usize = 64;
        let (requester, key) = self.streams.get(&stream)?.clone();
        let queue = self.pending[requester].get(&key)?;
        let at = queue
            .iter()
            .take(MAX_SAME_ID)
            .position(|p| p.stream == Some(stream))?;
        self.take(requester, &key, at)
    }

    /// The request waiting on an HTTP stream can no longer be cancelled
    /// on it (the server closed the connection first); it stays waiting.
    pub(super) fn forget_stream(&mut self, stream: (u64, u32)) {
        self.streams.remove(&stream);
    }

    /// Request `at` of those waiting under the id whose JSON text is `key`.
    fn take(&mut self, requester: usize, key: &str, at: usize) -> Option<Pending> {
        let queue = self.pending[requester].get_mut(key)?;
        let p = queue.remove(at)?;
        if queue.is_empty() {
            self.pending[requester].remove(key);
        }
        // Only its own entry: over HTTP/1.1 a later request (of a batch) may
        // have taken the connection's.
        if let Some(stream) = p.stream {
            if self
                .streams
                .get(&stream)
                .is_some_and(|(e, k)| *e == requester && **k == *key)
            {
                self.streams.remove(&stream);
            }
        }
        if let Some(t) = &p.token {
            self.tokens[requester].remove(t);
        }
        self.summary.unanswered -= 1;
        Some(p)
    }
}
