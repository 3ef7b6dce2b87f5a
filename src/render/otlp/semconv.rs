//! The OpenTelemetry semantic conventions for MCP (docs/otlp.md names the
//! text implemented): the attribute names, and what each says about one of
//! mcpspy's items. The names live here only, so that a newer text of the
//! conventions is one file's change.

use super::attributes::List;
use crate::query::{Item, Kind, Transport};
use crate::render::CaptureId;
use memchr::memmem;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::LazyLock;

pub const METHOD: &str = "mcp.method.name";
pub const PROTOCOL_VERSION: &str = "mcp.protocol.version";
pub const SESSION_ID: &str = "mcp.session.id";
pub const RESOURCE_URI: &str = "mcp.resource.uri";
pub const TOOL_NAME: &str = "gen_ai.tool.name";
pub const PROMPT_NAME: &str = "gen_ai.prompt.name";
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
pub const TOOL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
pub const TOOL_RESULT: &str = "gen_ai.tool.call.result";
pub const REQUEST_ID: &str = "jsonrpc.request.id";
pub const JSONRPC_VERSION: &str = "jsonrpc.protocol.version";
pub const STATUS_CODE: &str = "rpc.response.status_code";
pub const ERROR_TYPE: &str = "error.type";
pub const NETWORK_TRANSPORT: &str = "network.transport";
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const CLIENT_ADDRESS: &str = "client.address";
pub const CLIENT_PORT: &str = "client.port";
pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
/// mcpspy's own: where a span comes from in the capture.
pub const ITEM_N: &str = "mcpspy.item.n";
pub const RESPONSE_N: &str = "mcpspy.response.n";
pub const MCPSPY_SESSION: &str = "mcpspy.session";
pub const UNANSWERED: &str = "mcpspy.unanswered";

/// The attributes the operation-duration metrics keep (the conventions'
/// list; `mcp.resource.uri` is opt-in there and left out). A server-side
/// span has client.* instead of server.*, so one list serves both.
pub const OPERATION_METRIC_KEYS: &[&str] = &[
    METHOD,
    ERROR_TYPE,
    PROMPT_NAME,
    TOOL_NAME,
    STATUS_CODE,
    OPERATION_NAME,
    // From here on, those of the session-duration metrics too.
    JSONRPC_VERSION,
    PROTOCOL_VERSION,
    NETWORK_PROTOCOL_NAME,
    NETWORK_PROTOCOL_VERSION,
    NETWORK_TRANSPORT,
    SERVER_ADDRESS,
    SERVER_PORT,
];
/// The attributes of the session-duration metrics.
pub const SESSION_METRIC_KEYS: &[&str] = OPERATION_METRIC_KEYS.split_at(6).1;

/// The first MCP revision without protocol-level sessions: `mcp.session.id`
/// MUST NOT be set from it on. Versions are dates, so text order is time order.
const SESSIONLESS_FROM: &str = "2026-07-28";

/// The attributes that name the operation, and the span's name, written
/// into `name`: `{mcp.method.name} {target}`, the target being the tool or
/// prompt (the resource URI is never a target: the conventions keep it out
/// by default).
pub fn operation(method: &str, subject: Option<&str>, out: &mut List, name: &mut String) {
    out.string(METHOD, method);
    let target = match (method, subject) {
        ("tools/call", Some(tool)) => {
            out.string(TOOL_NAME, tool);
            out.string(OPERATION_NAME, "execute_tool");
            Some(tool)
        }
        ("prompts/get", Some(prompt)) => {
            out.string(PROMPT_NAME, prompt);
            Some(prompt)
        }
        (
            "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "notifications/resources/updated",
            Some(uri),
        ) => {
            out.string(RESOURCE_URI, uri);
            None
        }
        _ => None,
    };
    name.clear();
    name.push_str(method);
    if let Some(t) = target {
        name.push(' ');
        name.push_str(t);
    }
}

/// `jsonrpc.request.id`: the id as text (a string id without its quotes);
/// none for a null id.
pub fn request_id(id: &RawValue, out: &mut List) {
    let text = id.get();
    let value = match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<Cow<str>>(text).ok(),
        _ if text == "null" => None,
        _ => Some(Cow::Borrowed(text)),
    };
    if let Some(v) = value {
        out.string(REQUEST_ID, &v);
    }
}

static JSONRPC_2: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(br#""jsonrpc":"2.0""#));
static TRACEPARENT: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(br#""traceparent""#));

/// `jsonrpc.protocol.version`, recommended only when it is not 2.0. The
/// compact member, the common case, is found without parsing; anything
/// else is read.
pub fn jsonrpc_version(text: &[u8], out: &mut List) {
    #[derive(Deserialize)]
    struct Envelope {
        jsonrpc: Option<String>,
    }
    if JSONRPC_2.find(text).is_some() {
        return;
    }
    if let Ok(Envelope { jsonrpc: Some(v) }) = serde_json::from_slice::<Envelope>(text) {
        if v != "2.0" {
            out.string(JSONRPC_VERSION, &v);
        }
    }
}

/// The protocol version and the session id, as the conventions want them:
/// `mcp.session.id` only from an `Mcp-Session-Id` header, and never for a
/// session of 2026-07-28 or later.
pub fn session(protocol: Option<&str>, session_id: Option<&str>, out: &mut List) {
    if let Some(p) = protocol {
        out.string(PROTOCOL_VERSION, p);
    }
    if let Some(id) = session_id {
        if protocol.is_none_or(|p| p < SESSIONLESS_FROM) {
            out.string(SESSION_ID, id);
        }
    }
}

/// How a message travelled, in the conventions' terms.
#[derive(Clone, Debug, Default)]
pub struct Network {
    pub transport: Option<&'static str>,
    pub http: bool,
    /// "1.1", from the message's start line.
    pub http_version: Option<String>,
    /// The server's address (its Host header's name, else the socket's
    /// address) and port; the client's address and port.
    pub server: Option<(String, u16)>,
    pub client: Option<SocketAddr>,
}

impl Network {
    /// Of a request or notification, whose sender is the client of the
    /// operation.
    pub fn of(item: &Item<'_>) -> Network {
        let meta = item.http.and_then(|h| h.meta);
        match item.transport {
            Some(Transport::Http { client, server, .. }) => Network {
                http: true,
                http_version: meta
                    .and_then(|m| m.head.as_deref())
                    .and_then(http_version)
                    .map(str::to_string),
                ..Network::tcp(client, server, meta.and_then(|m| m.host.as_deref()))
            },
            Some(Transport::Tcp { from, to, .. }) => Network::tcp(Some(from), Some(to), None),
            Some(t) => Network::of_transport(&t, None),
            None => Network::default(),
        }
    }

    /// Of a session: its transport, and the Host its first request named.
    pub fn of_transport(t: &Transport, host: Option<&str>) -> Network {
        match *t {
            Transport::Pipe { .. } | Transport::Unix { .. } => Network {
                transport: Some("pipe"),
                ..Network::default()
            },
            Transport::Http { client, server, .. } => Network {
                http: true,
                ..Network::tcp(client, server, host)
            },
            Transport::Tcp { from, to, .. } => Network::tcp(Some(from), Some(to), None),
            Transport::Other { .. } => Network::default(),
        }
    }

    fn tcp(client: Option<SocketAddr>, server: Option<SocketAddr>, host: Option<&str>) -> Network {
        let name = host
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
        Network {
            transport: Some("tcp"),
            server: server.map(|s| (name.unwrap_or_else(|| s.ip().to_string()), s.port())),
            client,
            ..Network::default()
        }
    }

    /// What both sides' spans carry.
    pub fn common(&self, out: &mut List) {
        if let Some(t) = self.transport {
            out.string(NETWORK_TRANSPORT, t);
        }
        if self.http {
            out.string(NETWORK_PROTOCOL_NAME, "http");
        }
        if let Some(v) = &self.http_version {
            out.string(NETWORK_PROTOCOL_VERSION, v);
        }
    }

    /// What the client's side sees: the server's address.
    pub fn client_side(&self, out: &mut List) {
        if let Some((address, port)) = &self.server {
            out.string(SERVER_ADDRESS, address);
            out.int(SERVER_PORT, i64::from(*port));
        }
    }

    /// What the server's side sees: the client's address.
    pub fn server_side(&self, out: &mut List) {
        if let Some(c) = self.client {
            out.display(CLIENT_ADDRESS, c.ip());
            out.int(CLIENT_PORT, i64::from(c.port()));
        }
    }
}

/// "1.1" of "POST /mcp HTTP/1.1" or "HTTP/1.1 200 OK".
fn http_version(head: &str) -> Option<&str> {
    let line = head.lines().next()?;
    line.split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("HTTP/"))
}

/// How an operation ended: `error.type` (the JSON-RPC code, `tool_error`
/// for a tool's failure, `_OTHER` for an error without a code),
/// `rpc.response.status_code`, and the error's message for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub error_type: Option<String>,
    pub status_code: Option<String>,
    pub message: Option<String>,
}

impl Outcome {
    pub fn of(kind: &Kind<'_>) -> Outcome {
        match kind {
            Kind::Error { code, message, .. } => Outcome {
                error_type: Some(code.map_or_else(|| "_OTHER".to_string(), |c| c.to_string())),
                status_code: code.map(|c| c.to_string()),
                message: message.as_deref().map(str::to_string),
            },
            Kind::Response {
                tool_error: true, ..
            } => Outcome {
                error_type: Some("tool_error".to_string()),
                ..Outcome::default()
            },
            _ => Outcome::default(),
        }
    }

    pub fn push(&self, out: &mut List) {
        if let Some(e) = &self.error_type {
            out.string(ERROR_TYPE, e);
        }
        if let Some(c) = &self.status_code {
            out.string(STATUS_CODE, c);
        }
    }
}

/// A W3C trace context a message carries in `params._meta`, where
/// instrumented peers put it: the sender's span, remote to mcpspy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
    pub state: String,
}

/// The trace context of `params._meta`, if it holds a valid `traceparent`.
pub fn remote_parent(params: Option<&RawValue>) -> Option<Remote> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct Meta {
        traceparent: Option<String>,
        tracestate: Option<String>,
    }
    let text = params?.get();
    TRACEPARENT.find(text.as_bytes())?;
    let meta = serde_json::from_str::<Params>(text).ok()?.meta?;
    let (trace_id, span_id, flags) = traceparent(meta.traceparent.as_deref()?)?;
    Some(Remote {
        trace_id,
        span_id,
        flags,
        state: meta.tracestate.unwrap_or_default(),
    })
}

/// `version-traceid-parentid-flags` (W3C Trace Context, level 1): a newer
/// version may append fields after a dash; version ff and zero ids are invalid.
fn traceparent(s: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let b = s.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex_byte(&b[0..2])?;
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    for (i, t) in trace.iter_mut().enumerate() {
        *t = hex_byte(&b[3 + 2 * i..5 + 2 * i])?;
    }
    for (i, t) in span.iter_mut().enumerate() {
        *t = hex_byte(&b[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&b[53..55])?;
    (trace != [0; 16] && span != [0; 8]).then_some((trace, span, flags))
}

/// Two lowercase hex digits, as the W3C format requires.
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

/// A member of a captured object (`arguments` of a tool call's params) as
/// a structured attribute value, as the conventions prefer for content.
pub fn member(raw: &RawValue, name: &str) -> Option<AnyValue> {
    match serde_json::from_str::<serde_json::Value>(raw.get()).ok()? {
        serde_json::Value::Object(mut m) => m.remove(name).map(|v| structured(&v)),
        _ => None,
    }
}

/// A captured JSON value as a structured attribute value.
pub fn structured(v: &serde_json::Value) -> AnyValue {
    use serde_json::Value as J;
    let value = match v {
        J::Null => None,
        J::Bool(b) => Some(Value::BoolValue(*b)),
        J::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        J::String(s) => Some(Value::StringValue(s.clone())),
        J::Array(a) => Some(Value::ArrayValue(ArrayValue {
            values: a.iter().map(structured).collect(),
        })),
        J::Object(m) => Some(Value::KvlistValue(KeyValueList {
            values: m
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(structured(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// What a request's or notification's spans carry on either side: the
/// span's name, the attributes, and how the message travelled.
pub fn message_attributes(
    item: &Item<'_>,
    (method, subject, id): (&str, Option<&str>, Option<&RawValue>),
    out: &mut List,
    name: &mut String,
) -> Network {
    out.clear();
    operation(method, subject, out, name);
    if let Some(id) = id {
        request_id(id, out);
    }
    jsonrpc_version(item.text, out);
    let network = Network::of(item);
    network.common(out);
    out.int(ITEM_N, item.n as i64);
    if let Some(s) = item.session {
        out.int(MCPSPY_SESSION, s.id as i64);
    }
    network
}

/// The protocol version and the `Mcp-Session-Id` an item's session and
/// HTTP headers give.
pub fn session_facts<'a>(item: &Item<'a>) -> (Option<&'a str>, Option<&'a str>) {
    let meta = item.http.and_then(|h| h.meta);
    let protocol = item
        .session
        .and_then(|s| s.protocol_version.as_deref())
        .or_else(|| meta.and_then(|m| m.protocol_version.as_deref()));
    let session_id = meta.and_then(|m| m.session_id.as_deref());
    (protocol, session_id)
}

/// mcpspy, as the instrumentation scope of its spans and metrics.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "mcpspy".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

/// The host and the capture the spans came from.
pub fn resource(meta: &BTreeMap<String, String>, capture: &CaptureId) -> Resource {
    let mut attributes = List::default();
    attributes.string("service.name", "mcpspy");
    let fact = |k: &str| meta.get(k).map(String::as_str);
    if let Some(h) = fact("hostname") {
        attributes.string("host.name", h);
    }
    if let Some(m) = fact("machine") {
        // The conventions' names for the two common ones; others as uname says.
        let arch = match m {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        attributes.string("host.arch", arch);
    }
    attributes.string("os.type", "linux");
    if let Some(k) = fact("kernel_release") {
        attributes.string("os.version", k);
    }
    attributes.string("mcpspy.capture.id", &capture.id);
    attributes.boolean("mcpspy.capture.id_derived", capture.derived);
    if let Some(d) = fact("manifest_digest") {
        attributes.string("mcpspy.capture.manifest_digest", d);
    }
    Resource {
        attributes: attributes.into_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_as_w3c_defines_it() {
        let ok = traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(ok.0[0], 0x4b);
        assert_eq!(ok.1, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(ok.2, 1);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(traceparent(bad), None, "{bad}");
        }
        // A later version may add fields.
        assert!(
            traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some()
        );
    }

    #[test]
    fn session_id_only_before_2026_07_28() {
        let keys = |p: Option<&str>| {
            let mut v = List::default();
            session(p, Some("abc"), &mut v);
            v.into_vec()
                .into_iter()
                .map(|kv| kv.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(Some("2025-06-18")), [PROTOCOL_VERSION, SESSION_ID]);
        assert_eq!(keys(Some("2026-07-28")), [PROTOCOL_VERSION]);
        assert_eq!(keys(None), [SESSION_ID]);
    }

    #[test]
    fn versions_and_ids() {
        let mut v = List::default();
        jsonrpc_version(br#"{"jsonrpc":"2.0","id":1}"#, &mut v);
        jsonrpc_version(br#"{"id":1, "jsonrpc": "2.0"}"#, &mut v);
        assert!(v.as_slice().is_empty());
        jsonrpc_version(br#"{"jsonrpc":"1.0","id":1}"#, &mut v);
        let id: &RawValue = serde_json::from_str(r#""req-7""#).unwrap();
        request_id(id, &mut v);
        let null: &RawValue = serde_json::from_str("null").unwrap();
        request_id(null, &mut v);
        let shown: Vec<_> = v
            .as_slice()
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|a| a.value)))
            .collect();
        assert_eq!(
            shown,
            [
                (JSONRPC_VERSION, Some(Value::StringValue("1.0".into()))),
                (REQUEST_ID, Some(Value::StringValue("req-7".into())))
            ]
        );
        assert_eq!(http_version("POST /mcp HTTP/1.1\r\nHost: x"), Some("1.1"));
        assert_eq!(http_version("HTTP/1.0 200 OK"), Some("1.0"));
    }
}
