//! What MCP defines on top of JSON-RPC: its methods, who sends them, and the
//! few parameters the correlator reads (tool names, progress tokens, the
//! handshake). Everything else stays raw.

use memchr::memmem::Finder;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::LazyLock;

/// Which side of a session sends a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
    Either,
}

/// A method the MCP specification defines.
#[derive(Debug)]
pub struct MethodInfo {
    pub name: &'static str,
    pub sender: Sender,
    /// One line on what the method is for.
    pub about: &'static str,
}

const fn method(name: &'static str, sender: Sender, about: &'static str) -> MethodInfo {
    MethodInfo {
        name,
        sender,
        about,
    }
}

use Sender::{Client, Either, Server};

/// The methods of MCP revisions 2024-11-05 to 2026-07-28.
pub const METHODS: &[MethodInfo] = &[
    method(
        "initialize",
        Client,
        "Open a session: versions, identities, capabilities",
    ),
    method(
        "server/discover",
        Client,
        "Ask which versions and features the server offers",
    ),
    method("ping", Either, "Check that the other side still answers"),
    method("tools/list", Client, "List the tools the server offers"),
    method("tools/call", Client, "Run one of the server's tools"),
    method(
        "resources/list",
        Client,
        "List the resources the server exposes",
    ),
    method(
        "resources/templates/list",
        Client,
        "List the server's resource URI patterns",
    ),
    method("resources/read", Client, "Fetch the contents of a resource"),
    method(
        "resources/subscribe",
        Client,
        "Ask to hear when a resource changes",
    ),
    method(
        "resources/unsubscribe",
        Client,
        "Stop hearing about a resource's changes",
    ),
    method("prompts/list", Client, "List the server's prompt templates"),
    method(
        "prompts/get",
        Client,
        "Fetch a prompt, filled in with arguments",
    ),
    method(
        "completion/complete",
        Client,
        "Ask for suggested values of an argument",
    ),
    method(
        "logging/setLevel",
        Client,
        "Choose the least severe log level to receive",
    ),
    method(
        "roots/list",
        Server,
        "Ask which filesystem roots the client shares",
    ),
    method(
        "sampling/createMessage",
        Server,
        "Ask the client's language model for a reply",
    ),
    method(
        "elicitation/create",
        Server,
        "Ask the user, through the client, for input",
    ),
    method(
        "tasks/get",
        Either,
        "Ask for the state of a long-running task",
    ),
    method("tasks/list", Either, "List long-running tasks"),
    method(
        "tasks/result",
        Either,
        "Collect the outcome of a finished task",
    ),
    method("tasks/cancel", Either, "Stop a long-running task"),
    method(
        "notifications/initialized",
        Client,
        "The client is ready for normal traffic",
    ),
    method(
        "notifications/cancelled",
        Either,
        "The sender gives up on an earlier request",
    ),
    method(
        "notifications/progress",
        Either,
        "How far a running request has got",
    ),
    method(
        "notifications/message",
        Server,
        "A log entry from the server",
    ),
    method(
        "notifications/roots/list_changed",
        Client,
        "The client's roots changed",
    ),
    method(
        "notifications/tools/list_changed",
        Server,
        "The server's tools changed",
    ),
    method(
        "notifications/resources/list_changed",
        Server,
        "The server's resources changed",
    ),
    method(
        "notifications/resources/updated",
        Server,
        "A subscribed resource changed",
    ),
    method(
        "notifications/prompts/list_changed",
        Server,
        "The server's prompts changed",
    ),
    method(
        "notifications/elicitation/complete",
        Server,
        "An elicitation the server started is over",
    ),
    method(
        "notifications/tasks/status",
        Either,
        "A long-running task changed state",
    ),
];

/// The MCP definition of a method, if MCP defines it.
pub fn lookup(method: &str) -> Option<&'static MethodInfo> {
    METHODS.iter().find(|m| m.name == method)
}

/// One line on what an MCP method is for, if MCP defines it.
pub fn about(method: &str) -> Option<&'static str> {
    lookup(method).map(|m| m.about)
}

/// The name of an error code that MCP 2026-07-28 added (the older JSON-RPC
/// codes are shown by their messages alone, which say the same).
pub fn error_name(code: i64) -> Option<&'static str> {
    Some(match code {
        -32020 => "HEADER_MISMATCH: the Mcp-* HTTP headers do not match the body",
        -32021 => "MISSING_REQUIRED_CLIENT_CAPABILITY",
        -32022 => "UNSUPPORTED_PROTOCOL_VERSION",
        _ => return None,
    })
}

/// The `_meta` keys of MCP 2026-07-28, which replace the handshake.
#[derive(Deserialize, Default)]
pub struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    pub progress_token: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    pub client_info: Option<Implementation<'a>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    pub client_capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/serverInfo", borrow, default)]
    pub server_info: Option<Implementation<'a>>,
}

/// `clientInfo` / `serverInfo`.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct Implementation<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub version: Option<Cow<'a, str>>,
}

/// The parameters the correlator reads, from any request or notification.
#[derive(Deserialize, Default)]
pub struct Params<'a> {
    #[serde(rename = "_meta", borrow, default)]
    pub meta: Option<Meta<'a>>,
    /// tools/call, prompts/get
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// resources/*
    #[serde(borrow, default)]
    pub uri: Option<Cow<'a, str>>,
    /// initialize
    #[serde(rename = "protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "clientInfo", borrow, default)]
    pub client_info: Option<Implementation<'a>>,
    #[serde(borrow, default)]
    pub capabilities: Option<&'a RawValue>,
    /// notifications/progress
    #[serde(rename = "progressToken", borrow, default)]
    pub progress_token: Option<&'a RawValue>,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub total: Option<f64>,
    /// notifications/cancelled
    #[serde(rename = "requestId", borrow, default)]
    pub request_id: Option<&'a RawValue>,
    /// notifications/message
    #[serde(borrow, default)]
    pub level: Option<Cow<'a, str>>,
    /// A retry of a multi-round call (2026-07-28): the state it echoes.
    #[serde(rename = "requestState", borrow, default)]
    pub request_state: Option<&'a RawValue>,
}

/// Searchers built once: building one costs about as much as a search.
static META_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"_meta\""));
static IS_ERROR_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"isError\""));
static STATE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"requestState\""));
static INPUT_REQUIRED: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"input_required\""));

/// The methods a multi-round call (2026-07-28) can be made with.
pub fn multi_round(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// Reads the parameters the correlator uses from a request or notification.
/// Parameters that are not an object, or do not have the expected types,
/// give none (the raw text is still shown).
///
/// A second scan of every message's parameters would be the decoder's
/// largest cost after the first, so it is skipped where nothing would be
/// read, and a tool call without `_meta` stops at the tool's name.
pub fn params<'a>(method: &str, raw: Option<&'a RawValue>) -> Params<'a> {
    let Some(raw) = raw else {
        return Params::default();
    };
    let text = raw.get();
    let has_meta = META_KEY.find(text.as_bytes()).is_some();
    // Only a tool call or a prompt without `_meta` asks whether a retry's
    // state is there: every other message's parameters skip that search.
    let has_state = || STATE_KEY.find(text.as_bytes()).is_some();
    match method {
        "tools/call" | "prompts/get" if !has_meta && !has_state() => Params {
            name: name_only(text),
            ..Params::default()
        },
        "initialize"
        | "tools/call"
        | "prompts/get"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "notifications/progress"
        | "notifications/cancelled"
        | "notifications/message"
        | "notifications/resources/updated" => full_params(text),
        _ if has_meta => full_params(text),
        _ => Params::default(),
    }
}

fn full_params(text: &str) -> Params<'_> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The top-level `name` member, read without scanning what follows it.
fn name_only(text: &str) -> Option<Cow<'_, str>> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    struct Seed<'s, 'a>(&'s mut Option<Cow<'a, str>>);
    impl<'de> DeserializeSeed<'de> for Seed<'_, 'de> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Seed<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "name" {
                    *self.0 = map.next_value::<Option<Cow<'de, str>>>()?;
                    // Found: stop. serde_json then reports the rest of the
                    // object as unread; that error is expected and ignored.
                    return Ok(());
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut name = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Seed(&mut name).deserialize(&mut de);
    name
}

/// A tool call's result says the tool failed (`"isError": true`). The
/// substring test keeps the common case to one fast search.
pub fn is_tool_error(result: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Outcome {
        #[serde(rename = "isError", default)]
        is_error: Option<bool>,
    }
    IS_ERROR_KEY.find(result.get().as_bytes()).is_some()
        && serde_json::from_str::<Outcome>(result.get())
            .ok()
            .and_then(|o| o.is_error)
            .unwrap_or(false)
}

/// A result that asks for input before the call can finish (2026-07-28:
/// `resultType: "input_required"`): Some, with the state the retry is to
/// echo (None: the result carries none).
pub fn input_required(result: &RawValue) -> Option<Option<&RawValue>> {
    #[derive(Deserialize)]
    struct Outcome<'a> {
        #[serde(rename = "resultType", borrow, default)]
        result_type: Option<Cow<'a, str>>,
        #[serde(rename = "requestState", borrow, default)]
        request_state: Option<&'a RawValue>,
    }
    INPUT_REQUIRED.find(result.get().as_bytes())?;
    let o: Outcome = serde_json::from_str(result.get()).ok()?;
    (o.result_type.as_deref() == Some("input_required")).then_some(o.request_state)
}

/// The result members of `initialize` and `server/discover` that describe the server.
#[derive(Deserialize, Default)]
pub struct HandshakeResult<'a> {
    #[serde(rename = "protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "supportedVersions", borrow, default)]
    pub supported_versions: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "serverInfo", borrow, default)]
    pub server_info: Option<Implementation<'a>>,
    #[serde(borrow, default)]
    pub capabilities: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow, default)]
    pub meta: Option<Meta<'a>>,
}

pub fn handshake_result(raw: &RawValue) -> HandshakeResult<'_> {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(
                METHODS[i + 1..].iter().all(|o| o.name != m.name),
                "{} listed twice",
                m.name
            );
        }
        assert_eq!(lookup("tools/call").map(|m| m.sender), Some(Client));
        assert!(lookup("tools/frobnicate").is_none());
    }

    #[test]
    fn params_are_read_without_a_tree() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"name":"get_weather","arguments":{"deep":[[[1]]]},"_meta":{"progressToken":"t-1"}}"#,
        )
        .unwrap();
        let p = params("tools/call", Some(raw));
        assert_eq!(p.name.as_deref(), Some("get_weather"));
        assert_eq!(p.meta.unwrap().progress_token.unwrap().get(), "\"t-1\"");
        let not_object: &RawValue = serde_json::from_str("[1,2]").unwrap();
        assert!(params("tools/call", Some(not_object)).name.is_none());
        let wrong_type: &RawValue = serde_json::from_str(r#"{"name":5}"#).unwrap();
        assert!(params("tools/call", Some(wrong_type)).name.is_none());
        // Without _meta, the name alone is read, wherever it is.
        for text in [
            r#"{"name":"a\u00e9","arguments":{"x":[1,2]}}"#,
            r#"{"arguments":{"name":"inner"},"name":"a\u00e9"}"#,
        ] {
            let raw: &RawValue = serde_json::from_str(text).unwrap();
            assert_eq!(params("tools/call", Some(raw)).name.as_deref(), Some("aé"));
        }
        // Methods that need nothing are not read, unless they carry _meta.
        assert!(params("tools/list", Some(raw)).meta.is_some());
        let plain: &RawValue = serde_json::from_str(r#"{"name":"n"}"#).unwrap();
        assert!(params("tools/list", Some(plain)).name.is_none());
    }
}
