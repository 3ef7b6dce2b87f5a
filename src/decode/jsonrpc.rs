//! JSON-RPC 2.0 parsing, in place: every field borrows from the captured
//! text (raw values and strings), so a message is scanned once and never
//! turned into a tree.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of arrays and objects accepted. serde_json skims raw
/// values without recursion, so this is a policy, not a stack guard: no MCP
/// message comes near it, and deeper text is reported as damage.
pub const MAX_DEPTH: usize = 128;

/// What one line of JSON text holds.
#[derive(Debug)]
pub enum Parsed<'a> {
    One(Message<'a>),
    /// A batch: one entry per element, in order.
    Batch(Vec<Element<'a>>),
    Invalid(Invalid),
}

/// One element of a batch: its exact text and what it is.
#[derive(Debug)]
pub struct Element<'a> {
    pub text: &'a str,
    pub parsed: Result<Message<'a>, Invalid>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    Response,
    Error,
}

/// A JSON-RPC message. Raw values are exact slices of the captured text.
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: MessageKind,
    pub id: Option<&'a RawValue>,
    pub method: Option<Cow<'a, str>>,
    pub params: Option<&'a RawValue>,
    pub result: Option<&'a RawValue>,
    pub error: Option<&'a RawValue>,
}

/// Why a text is not a JSON-RPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: InvalidReason,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidReason {
    Utf8,
    Json,
    TooDeep,
    NotJsonRpc,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Invalid {
    Invalid {
        reason,
        detail: detail.into(),
    }
}

/// Wraps a present member (even `null`) in Some: `"id": null` is not a missing id.
fn present<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Parses one framed text (a line, without its newline).
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let text = match utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Parsed::Invalid(invalid(
                InvalidReason::Utf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            ))
        }
    };
    if let Some(depth) = too_deep(bytes) {
        return Parsed::Invalid(invalid(
            InvalidReason::TooDeep,
            format!("nested deeper than {MAX_DEPTH} levels (reached {depth})"),
        ));
    }
    match first_byte(bytes) {
        Some(b'[') => parse_batch(text),
        _ => match parse_message(text) {
            Ok(m) => Parsed::One(m),
            Err(e) => Parsed::Invalid(e),
        },
    }
}

/// UTF-8 validation is the largest single cost of decoding text with
/// non-ASCII characters: the SIMD check first, and the standard library's
/// only on failure, for the position of the first bad byte.
pub fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(bytes),
    }
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn parse_batch(text: &str) -> Parsed<'_> {
    let elements: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Parsed::Invalid(json_error(&e)),
    };
    if elements.is_empty() {
        return Parsed::Invalid(invalid(InvalidReason::NotJsonRpc, "empty batch"));
    }
    Parsed::Batch(
        elements
            .into_iter()
            .map(|raw| Element {
                text: raw.get(),
                parsed: parse_message(raw.get()),
            })
            .collect(),
    )
}

fn json_error(e: &serde_json::Error) -> Invalid {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => invalid(InvalidReason::NotJsonRpc, e.to_string()),
        _ => invalid(InvalidReason::Json, format!("invalid JSON: {e}")),
    }
}

/// Parses one JSON-RPC object (a whole line, or one batch element).
fn parse_message(text: &str) -> Result<Message<'_>, Invalid> {
    if first_byte(text.as_bytes()) != Some(b'{') {
        // Valid JSON that is not an object, or not JSON at all.
        return match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => Err(invalid(
                InvalidReason::NotJsonRpc,
                format!("a JSON {}, not a JSON-RPC object", json_type(text)),
            )),
            Err(e) => Err(json_error(&e)),
        };
    }
    let env: Envelope = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    let kind = match (&env.method, env.id, env.result, env.error) {
        (Some(_), Some(_), _, _) => MessageKind::Request,
        (Some(_), None, _, _) => MessageKind::Notification,
        (None, _, Some(_), Some(_)) => {
            return Err(invalid(
                InvalidReason::NotJsonRpc,
                "response has both result and error",
            ))
        }
        (None, Some(_), Some(_), None) => MessageKind::Response,
        (None, _, None, Some(_)) => MessageKind::Error,
        (None, None, Some(_), None) => {
            return Err(invalid(InvalidReason::NotJsonRpc, "result without an id"))
        }
        (None, _, None, None) => {
            return Err(invalid(
                InvalidReason::NotJsonRpc,
                "object has no method, result or error",
            ))
        }
    };
    Ok(Message {
        kind,
        id: env.id,
        method: env.method,
        params: env.params,
        result: env.result,
        error: env.error,
    })
}

fn json_type(text: &str) -> &'static str {
    match first_byte(text.as_bytes()) {
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(b'[') => "array",
        _ => "number",
    }
}

/// Some(depth reached) when arrays and objects nest deeper than MAX_DEPTH.
fn too_deep(bytes: &[u8]) -> Option<usize> {
    // Fewer openers than the limit cannot nest deeper than it: the common case
    // costs one vectorised count.
    if memchr::memchr2_iter(b'{', b'[', bytes).count() <= MAX_DEPTH {
        return None;
    }
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max > MAX_DEPTH).then_some(max)
}

/// The error member of an error response, as far as it can be read.
#[derive(Debug, Default)]
pub struct ErrorInfo<'a> {
    pub code: Option<i64>,
    pub message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(default)]
    code: Option<serde_json::Number>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// Reads `code` and `message`; a malformed error object yields what it can.
pub fn error_info(raw: &RawValue) -> ErrorInfo<'_> {
    match serde_json::from_str::<ErrorObject>(raw.get()) {
        Ok(e) => ErrorInfo {
            code: e.code.and_then(|n| n.as_i64()),
            message: e.message,
        },
        Err(_) => ErrorInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Message<'_> {
        match parse(s.as_bytes()) {
            Parsed::One(m) => m,
            other => panic!("not one message: {other:?}"),
        }
    }

    fn bad(s: &[u8]) -> Invalid {
        match parse(s) {
            Parsed::Invalid(i) => i,
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn kinds() {
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#);
        assert_eq!(m.kind, MessageKind::Request);
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.params.unwrap().get(), r#"{"name":"x"}"#);
        let n = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(n.kind, MessageKind::Notification);
        let r = one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        assert_eq!(r.kind, MessageKind::Response);
        assert_eq!(r.id.unwrap().get(), "\"a\"");
        let e =
            one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#);
        assert_eq!(e.kind, MessageKind::Error);
        assert_eq!(e.id.unwrap().get(), "null");
        let info = error_info(e.error.unwrap());
        assert_eq!(info.code, Some(-32700));
        assert_eq!(info.message.as_deref(), Some("Parse error"));
        let escaped = one(r#"{"jsonrpc":"2.0","method":"a\/b"}"#);
        assert_eq!(escaped.method.as_deref(), Some("a/b"));
    }

    #[test]
    fn batches_keep_each_element() {
        let Parsed::Batch(els) = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5 ,{"jsonrpc":"2.0","method":"n"}]"#,
        ) else {
            panic!("not a batch")
        };
        assert_eq!(els.len(), 3);
        assert_eq!(els[0].text, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert_eq!(els[0].parsed.as_ref().unwrap().kind, MessageKind::Request);
        assert_eq!(els[1].text, "5");
        assert_eq!(
            els[1].parsed.as_ref().unwrap_err().reason,
            InvalidReason::NotJsonRpc
        );
        assert_eq!(
            els[2].parsed.as_ref().unwrap().kind,
            MessageKind::Notification
        );
        assert_eq!(bad(b"[]").reason, InvalidReason::NotJsonRpc);
    }

    #[test]
    fn damage_is_classified() {
        assert_eq!(bad(b"{\"id\":1,").reason, InvalidReason::Json);
        assert_eq!(bad(b"not json").reason, InvalidReason::Json);
        assert_eq!(bad(b"{\"a\":\"\xff\"}").reason, InvalidReason::Utf8);
        assert_eq!(bad(b"{\"foo\":1}").reason, InvalidReason::NotJsonRpc);
        assert_eq!(
            bad(b"{\"id\":1,\"id\":2,\"result\":1}").reason,
            InvalidReason::NotJsonRpc
        );
        assert_eq!(bad(b"{\"method\":5}").reason, InvalidReason::NotJsonRpc);
        assert_eq!(bad(b"\"just a string\"").reason, InvalidReason::NotJsonRpc);
        assert_eq!(
            bad(b"{\"id\":1,\"result\":1,\"error\":{}}").reason,
            InvalidReason::NotJsonRpc
        );
        assert_eq!(bad(b"{\"a\":1} {\"b\":2}").reason, InvalidReason::Json);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let n = 100_000;
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(bad(deep.as_bytes()).reason, InvalidReason::TooDeep);
        let inside = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{}{}}}"#,
            "{\"a\":".repeat(n),
            "}".repeat(n)
        );
        assert_eq!(bad(inside.as_bytes()).reason, InvalidReason::TooDeep);
        let unclosed = "[".repeat(n);
        assert_eq!(bad(unclosed.as_bytes()).reason, InvalidReason::TooDeep);
        // Brackets inside strings do not count, and the limit itself is fine.
        let quoted = format!(
            r#"{{"jsonrpc":"2.0","method":"m","params":"{}"}}"#,
            "[".repeat(n)
        );
        assert_eq!(one(&quoted).kind, MessageKind::Notification);
        let at_limit = format!(
            r#"{{"jsonrpc":"2.0","method":"m","params":{}{}}}"#,
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(one(&at_limit).kind, MessageKind::Notification);
    }
}
