//! The index's session records: a stored mirror of [`SessionSummary`],
//! its processes numbered as in item records.

use super::codec::{corrupt, encode, Peers};
use super::IndexError;
use crate::query::{HttpSession, Implementation, Peer, SessionSummary, Transport};
use serde::{Deserialize, Serialize};

type R<T> = Result<T, IndexError>;

/// A session, as stored.
#[derive(Serialize, Deserialize)]
struct StoredSession<'a> {
    id: u64,
    transport: Option<Transport>,
    client: Option<u32>,
    server: Option<u32>,
    ends: [Option<u32>; 2],
    protocol_version: Option<&'a str>,
    handshake: Option<&'a str>,
    client_info: Option<Implementation>,
    server_info: Option<Implementation>,
    client_capabilities: Option<&'a str>,
    server_capabilities: Option<&'a str>,
    messages: u64,
    flagged: u64,
    requests: u64,
    unanswered: u64,
    first_ts: u64,
    last_ts: u64,
    http: Option<HttpSession>,
}

pub(super) fn put_session(s: &SessionSummary, peers: &mut Peers, out: &mut Vec<u8>) -> R<()> {
    let SessionSummary {
        id,
        transport,
        client,
        server,
        ends,
        protocol_version,
        handshake,
        client_info,
        server_info,
        client_capabilities,
        server_capabilities,
        messages,
        flagged,
        requests,
        unanswered,
        first_ts,
        last_ts,
        http,
    } = s;
    let stored = StoredSession {
        id: *id,
        transport: *transport,
        client: peers.id(*client),
        server: peers.id(*server),
        ends: [peers.id(ends[0]), peers.id(ends[1])],
        protocol_version: protocol_version.as_deref(),
        handshake: *handshake,
        client_info: client_info.clone(),
        server_info: server_info.clone(),
        client_capabilities: client_capabilities.as_deref(),
        server_capabilities: server_capabilities.as_deref(),
        messages: *messages,
        flagged: *flagged,
        requests: *requests,
        unanswered: *unanswered,
        first_ts: *first_ts,
        last_ts: *last_ts,
        http: http.clone(),
    };
    encode(&stored, out)
}

pub(super) fn get_session(rec: &[u8], peers: &[Peer]) -> R<SessionSummary> {
    let s: StoredSession<'_> = postcard::from_bytes(rec).map_err(|_| corrupt())?;
    let peer = |id: Option<u32>| -> R<Option<Peer>> {
        id.map(|i| peers.get(i as usize).copied().ok_or_else(corrupt))
            .transpose()
    };
    Ok(SessionSummary {
        id: s.id,
        transport: s.transport,
        client: peer(s.client)?,
        server: peer(s.server)?,
        ends: [peer(s.ends[0])?, peer(s.ends[1])?],
        protocol_version: s.protocol_version.map(str::to_string),
        handshake: s.handshake.map(handshake_name),
        client_info: s.client_info,
        server_info: s.server_info,
        client_capabilities: s.client_capabilities.map(str::to_string),
        server_capabilities: s.server_capabilities.map(str::to_string),
        messages: s.messages,
        flagged: s.flagged,
        requests: s.requests,
        unanswered: s.unanswered,
        first_ts: s.first_ts,
        last_ts: s.last_ts,
        http: s.http,
    })
}

/// The decoder names handshakes with string constants.
fn handshake_name(s: &str) -> &'static str {
    match s {
        "initialize" => "initialize",
        "server/discover" => "server/discover",
        // A name this build does not know: kept (sessions are few).
        other => Box::leak(other.to_string().into_boxed_str()),
    }
}

/// Everything of a session but its counters and times.
pub(super) fn same_identity(a: &SessionSummary, b: &SessionSummary) -> bool {
    // Destructured whole: a field added to SessionSummary is compared here too.
    let SessionSummary {
        id,
        transport,
        client,
        server,
        ends,
        protocol_version,
        handshake,
        client_info,
        server_info,
        client_capabilities,
        server_capabilities,
        messages: _,
        flagged: _,
        requests: _,
        unanswered: _,
        first_ts: _,
        last_ts: _,
        http,
    } = a;
    *id == b.id
        && *transport == b.transport
        && *client == b.client
        && *server == b.server
        && *ends == b.ends
        && *protocol_version == b.protocol_version
        && *handshake == b.handshake
        && *client_info == b.client_info
        && *server_info == b.server_info
        && *client_capabilities == b.client_capabilities
        && *server_capabilities == b.server_capabilities
        && *http == b.http
}
