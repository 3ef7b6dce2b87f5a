//! How HTTP messages find their session: by `Mcp-Session-Id` (or the legacy
//! transport's endpoint), by the connection that carries them, or by the
//! client and server processes (MCP 2026-07-28 has no session id).

use super::state::Session;
use super::{ConnKey, HttpRoute, Route, Sessions};
use crate::decode::frame::HttpEvent;
use crate::decode::item::{Flag, FlagReason, HttpSession, Item, Transport};
use crate::decode::jsonrpc::{Message, MessageKind};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// One end of an HTTP session without a session id: its process, else
/// what is known of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum EndKey {
    Pid(u32),
    Ip(IpAddr),
    Addr(std::net::SocketAddr),
    Host(Box<str>),
    Unknown,
}

/// How HTTP messages find their session.
#[derive(Default)]
pub(super) struct HttpSessions {
    /// Connection numbers, in order of first appearance.
    pub(super) connections: HashMap<ConnKey, u64>,
    /// `mcp:<Mcp-Session-Id>` or `ep:<endpoint>` → session.
    by_id: HashMap<Box<str>, usize>,
    /// The session each connection carried last.
    pub(super) by_conn: HashMap<u64, usize>,
    /// The session between a client and a server, last.
    by_pair: HashMap<(EndKey, EndKey), usize>,
    /// Endpoints the legacy transport announced.
    endpoints: HashSet<Box<str>>,
}

impl Sessions {
    /// A request posted to an endpoint the legacy transport announced: its
    /// response comes on the event stream, not on its own connection.
    pub(super) fn posted_to_legacy(&self, route: &Route<'_>) -> bool {
        !self.http.endpoints.is_empty()
            && route
                .http
                .and_then(|h| h.meta)
                .and_then(|m| m.path.as_deref())
                .is_some_and(|p| self.http.endpoints.contains(&*format!("ep:{p}")))
    }

    /// One end of an HTTP/1.1 connection closed (`route` names the
    /// connection; `read_end`: the other end saw it). When the client
    /// closed, the request still waiting on it is cancelled: over HTTP, MCP
    /// 2026-07-28 cancels a request by closing its response stream, and
    /// HTTP/1.1 can only close the connection. When the server closed first,
    /// the request stays unanswered, and the client's close that follows
    /// cancels nothing. Nothing waiting, nothing shown.
    pub fn closed(
        &mut self,
        route: &Route<'_>,
        read_end: bool,
        by_client: bool,
        sink: &mut impl FnMut(&Item<'_>),
    ) {
        // Looked up, not numbered: a connection no message used has
        // nothing waiting, and takes no number.
        let Some(&c) = route.http.and_then(|h| self.http.connections.get(&h.conn)) else {
            return;
        };
        let Some(&i) = self.http.by_conn.get(&c) else {
            return;
        };
        if !by_client {
            self.sessions[i].forget_stream((c, 0));
            return;
        }
        let Some(p) = self.sessions[i].take_pending_stream((c, 0)) else {
            return;
        };
        let seen = if read_end {
            " (the server read its end)"
        } else {
            ""
        };
        let mut flag = Flag::new(
            FlagReason::Closed,
            format!(
                "the HTTP/1.1 client closed the connection{seen}: {}",
                super::cancels_text(&p.request)
            ),
            0,
        );
        flag.cancels = Some(p.request);
        self.flag(route, flag, b"", None, false, sink);
    }

    /// The number of an HTTP message's connection (numbered on first sight).
    pub(super) fn connection(&mut self, route: &Route<'_>) -> Option<u64> {
        let h = route.http?;
        let next = self.http.connections.len() as u64 + 1;
        Some(*self.http.connections.entry(h.conn).or_insert(next))
    }

    /// HTTP bookkeeping: an endpoint announced, a session deleted.
    pub(super) fn http_event(&mut self, route: &Route<'_>, event: &HttpEvent) {
        let conn = self.connection(route);
        match event {
            HttpEvent::Endpoint(path) => {
                let key: Box<str> = format!("ep:{path}").into();
                self.http.endpoints.insert(key.clone());
                if let Some(&i) = conn.and_then(|c| self.http.by_conn.get(&c)) {
                    self.http.by_id.entry(key).or_insert(i);
                }
            }
            HttpEvent::Delete => {
                let id = route
                    .http
                    .and_then(|h| h.meta)
                    .and_then(|m| m.session_id.as_deref());
                let found = match id {
                    Some(id) => self.http.by_id.get(&*format!("mcp:{id}")).copied(),
                    None => conn.and_then(|c| self.http.by_conn.get(&c).copied()),
                };
                if let Some(i) = found {
                    if let Some(h) = &mut self.sessions[i].summary.http {
                        h.deleted = true;
                    }
                }
            }
        }
    }

    /// The session of an HTTP message (opening one if needed).
    pub(super) fn http_session(&mut self, route: &Route<'_>, msg: &Message<'_>) -> Option<usize> {
        let h = route.http?;
        let conn = self.connection(route)?;
        let reopens =
            msg.kind == MessageKind::Request && msg.method.as_deref() == Some("initialize");
        let sessions = &self.sessions;
        let usable = |i: &usize| !(reopens && sessions[*i].initialized);
        let meta = h.meta;
        let id_key: Option<Box<str>> = meta.and_then(|m| {
            if let Some(id) = &m.session_id {
                return Some(format!("mcp:{id}").into());
            }
            if let Some(e) = &m.endpoint {
                return Some(format!("ep:{e}").into());
            }
            let posted = m
                .path
                .as_ref()
                .map(|p| format!("ep:{p}").into_boxed_str())?;
            (m.is_request && self.http.endpoints.contains(&posted)).then_some(posted)
        });
        let pair = self.pair_key(route, h);
        let by_conn = self.http.by_conn.get(&conn).copied().filter(usable);
        let found = match &id_key {
            Some(k) => self
                .http
                .by_id
                .get(k)
                .copied()
                .filter(usable)
                .or(by_conn.filter(|&i| {
                    // The connection's session takes the id it has just been given.
                    sessions[i]
                        .summary
                        .http
                        .as_ref()
                        .is_some_and(|x| x.session_id.is_none())
                })),
            None => by_conn.or(self.http.by_pair.get(&pair).copied().filter(usable)),
        };
        let i = match found {
            Some(i) => i,
            None => {
                let i = self.sessions.len();
                let mut session = Session::new(i as u64 + 1, route);
                session.client_end = Some(0);
                session.roles_certain = true;
                session.summary.http = Some(HttpSession {
                    host: meta.and_then(|m| m.host.as_deref()).map(str::to_string),
                    ..HttpSession::default()
                });
                self.sessions.push(session);
                i
            }
        };
        let s = &mut self.sessions[i];
        if let (Some(k), Some(info)) = (&id_key, &mut s.summary.http) {
            if info.session_id.is_none() {
                info.session_id = k.split_once(':').map(|(_, id)| id.to_string());
            }
            self.http.by_id.insert(k.clone(), i);
        }
        if s.connections.insert(conn) {
            if let Some(info) = &mut s.summary.http {
                info.connections += 1;
            }
        }
        if s.summary.protocol_version.is_none() {
            s.summary.protocol_version = meta
                .and_then(|m| m.protocol_version.as_deref())
                .map(str::to_string);
        }
        self.http.by_conn.insert(conn, i);
        self.http.by_pair.insert(pair, i);
        Some(i)
    }

    /// The client and the server of an HTTP message: their processes when
    /// seen, else their addresses.
    fn pair_key(&self, route: &Route<'_>, h: HttpRoute<'_>) -> (EndKey, EndKey) {
        let (client, server) = if h.from_client == Some(false) {
            (route.to, route.from)
        } else {
            (route.from, route.to)
        };
        let (client_addr, server_addr) = match route.transport {
            Some(Transport::Http { client, server, .. }) => (client, server),
            _ => (None, None),
        };
        let client = match (client, client_addr) {
            (Some(p), _) => EndKey::Pid(p.pid),
            (None, Some(a)) => EndKey::Ip(a.ip()),
            (None, None) => EndKey::Unknown,
        };
        let host = h.meta.and_then(|m| m.host.clone());
        let server = match (server, server_addr, host) {
            (Some(p), ..) => EndKey::Pid(p.pid),
            (None, Some(a), _) => EndKey::Addr(a),
            (None, None, Some(host)) => EndKey::Host(host),
            (None, None, None) => EndKey::Unknown,
        };
        (client, server)
    }
}
