//! Protocol faults: requests left pending or answered late, responses to
//! ids never requested, invalid or undecoded messages, arguments and
//! results that break the tool's schema, errors per tool, a protocol
//! version the two sides disagree on, and the deprecated HTTP+SSE transport.

use super::super::{Flag, FlagReason, Item, Kind};
use super::inventory::Defs;
use super::{Finding, Place};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A tool's compiled schemas (or why one does not compile).
struct Schemas {
    input: Option<Result<jsonschema::Validator, String>>,
    output: Option<Result<jsonschema::Validator, String>>,
}

struct Pending {
    place: Place,
    method: String,
}

#[derive(Default)]
pub struct Protocol {
    slow_ns: Option<u64>,
    pending: BTreeMap<u64, Pending>,
    /// Failures per session and method (tools/call: per tool): the items.
    failures: BTreeMap<(u64, String), Vec<u64>>,
    /// The version each session's client asked for in initialize.
    asked: HashMap<u64, String>,
    /// Sessions already reported for a version header or the old transport.
    header_reported: HashSet<u64>,
    legacy_reported: HashSet<u64>,
    schemas: HashMap<(u64, String), Schemas>,
}

fn compile(schema: Option<&Value>) -> Option<Result<jsonschema::Validator, String>> {
    let schema = schema?;
    Some(jsonschema::validator_for(schema).map_err(|e| e.to_string()))
}

impl Protocol {
    pub fn new(slow_ns: Option<u64>) -> Protocol {
        Protocol {
            slow_ns,
            ..Protocol::default()
        }
    }

    /// A session's tools list: the schemas its calls are checked against.
    pub fn tools(&mut self, session: u64, defs: &Defs) {
        self.schemas.retain(|(s, _), _| *s != session);
        for (name, def) in defs {
            let schemas = Schemas {
                input: compile(def.get("inputSchema")),
                output: compile(def.get("outputSchema")),
            };
            self.schemas.insert((session, name.clone()), schemas);
        }
    }

    pub fn item(&mut self, item: &Item<'_>, place: &Place, out: &mut Vec<Finding>) {
        let session = item.session.map(|s| s.id);
        match &item.kind {
            Kind::Request {
                method,
                params,
                subject,
                ..
            } => {
                self.pending.insert(
                    item.n,
                    Pending {
                        place: place.clone(),
                        method: method.to_string(),
                    },
                );
                let params = params.map(|p| p.get());
                if *method == "initialize" {
                    if let (Some(s), Some(v)) = (session, params.and_then(version_in)) {
                        self.asked.insert(s, v);
                    }
                }
                if let (Some(s), "tools/call", Some(tool)) = (session, *method, subject.as_deref())
                {
                    self.arguments(s, tool, params, place, out);
                }
                self.version_header(item, place, out);
                self.legacy(item, place, out);
            }
            Kind::Notification {
                method, refers_to, ..
            } => {
                if let (&"notifications/cancelled", Some(r)) = (method, refers_to) {
                    self.pending.remove(&r.n);
                }
                self.version_header(item, place, out);
                self.legacy(item, place, out);
            }
            Kind::Response {
                id,
                result,
                answers,
                latency_ns,
                tool_error,
            } => {
                self.answered(item, id.get(), *answers, *latency_ns, place, out);
                let Some(req) = answers else { return };
                if *tool_error {
                    self.failed(session, &req.method, req.subject.as_deref(), item.n);
                }
                if let (Some(s), "initialize") = (session, &*req.method) {
                    self.initialized(s, result.get(), place, out);
                }
                if let (Some(s), "tools/call", Some(tool), false) =
                    (session, &*req.method, req.subject.as_deref(), *tool_error)
                {
                    self.structured(s, tool, result.get(), place, out);
                }
            }
            Kind::Error {
                id,
                answers,
                latency_ns,
                ..
            } => {
                let id = id.map_or("null", |i| i.get());
                self.answered(item, id, *answers, *latency_ns, place, out);
                let method = answers.map_or("(unanswered)", |a| &*a.method);
                let subject = answers.and_then(|a| a.subject.as_deref());
                self.failed(session, method, subject, item.n);
            }
            // Text outside every MCP session (another program's pipe that
            // began like JSON) is not MCP traffic.
            // A reset or close that cancels a request (MCP 2026-07-28) answers it.
            Kind::Flagged(Flag {
                cancels: Some(r), ..
            }) => {
                self.pending.remove(&r.n);
            }
            Kind::Flagged(flag) if session.is_some() => {
                let rule = match flag.reason {
                    FlagReason::InvalidUtf8
                    | FlagReason::InvalidJson
                    | FlagReason::TooDeep
                    | FlagReason::NotJsonRpc
                    | FlagReason::BadHttp
                    | FlagReason::BadEncoding
                    | FlagReason::HttpError => "protocol.invalid",
                    FlagReason::Unsupported => "protocol.unsupported",
                    // Losses and damage are the capture's health (health.rs).
                    _ => return,
                };
                out.push(Finding::new(
                    rule,
                    format!("{}: {}", flag.reason.code(), flag.detail),
                    place.clone(),
                ));
            }
            Kind::Flagged(_) => {}
        }
    }

    fn answered(
        &mut self,
        item: &Item<'_>,
        id: &str,
        answers: Option<&super::super::RequestRef>,
        latency_ns: Option<u64>,
        place: &Place,
        out: &mut Vec<Finding>,
    ) {
        match answers {
            Some(req) => {
                self.pending.remove(&req.n);
                if let (Some(slow), Some(took)) = (self.slow_ns, latency_ns) {
                    if took > slow {
                        out.push(Finding::new(
                            "protocol.late",
                            format!(
                                "{} answered after {:.3}s (request: item {})",
                                req.method,
                                took as f64 / 1e9,
                                req.n
                            ),
                            place.clone(),
                        ));
                    }
                }
            }
            None if id != "null" => out.push(Finding::new(
                "protocol.mismatch",
                format!(
                    "a response to id {} that no request of the session carried{}",
                    super::short(id),
                    if item.session.is_some_and(|s| s.flagged > 0) {
                        " (the session lost or flagged messages: the request may be among them)"
                    } else {
                        ""
                    }
                ),
                place.clone(),
            )),
            None => {}
        }
    }

    fn failed(&mut self, session: Option<u64>, method: &str, subject: Option<&str>, n: u64) {
        let what = match subject {
            Some(t) if method == "tools/call" => format!("tools/call {t:?}"),
            _ => method.to_string(),
        };
        self.failures
            .entry((session.unwrap_or(0), what))
            .or_default()
            .push(n);
    }

    fn arguments(
        &mut self,
        session: u64,
        tool: &str,
        params: Option<&str>,
        place: &Place,
        out: &mut Vec<Finding>,
    ) {
        let Some(schemas) = self.schemas.get(&(session, tool.to_string())) else {
            return;
        };
        let Some(input) = &schemas.input else { return };
        let args = params
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|mut v| v.get_mut("arguments").map(Value::take))
            .unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(why) = violations(input, &args) {
            let mut at = place.clone();
            at.field = Some("params.arguments".into());
            out.push(Finding::new(
                "protocol.schema",
                format!("tools/call {tool:?}: the arguments do not validate against the tool's inputSchema: {why}"),
                at,
            ));
        }
    }

    fn structured(
        &mut self,
        session: u64,
        tool: &str,
        result: &str,
        place: &Place,
        out: &mut Vec<Finding>,
    ) {
        let Some(schemas) = self.schemas.get(&(session, tool.to_string())) else {
            return;
        };
        let Some(output) = &schemas.output else {
            return;
        };
        let mut at = place.clone();
        at.field = Some("result.structuredContent".into());
        let content = serde_json::from_str::<Value>(result)
            .ok()
            .and_then(|mut v| v.get_mut("structuredContent").map(Value::take));
        let why = match content {
            None => Some(
                "the result has no structuredContent, which a tool with an outputSchema must give"
                    .to_string(),
            ),
            Some(c) => violations(output, &c).map(|w| {
                format!(
                    "the structuredContent does not validate against the tool's outputSchema: {w}"
                )
            }),
        };
        if let Some(why) = why {
            out.push(Finding::new(
                "protocol.schema",
                format!("tools/call {tool:?}: {why}"),
                at,
            ));
        }
    }

    fn initialized(&mut self, session: u64, result: &str, place: &Place, out: &mut Vec<Finding>) {
        let (Some(asked), Some(answered)) = (self.asked.get(&session), version_in(result)) else {
            return;
        };
        if *asked != answered {
            out.push(Finding::new(
                "protocol.version",
                format!(
                    "the client asked for protocol version {asked:?}, the server answered {answered:?}"
                ),
                place.clone(),
            ));
        }
    }

    /// An HTTP request whose MCP-Protocol-Version is not its session's.
    fn version_header(&mut self, item: &Item<'_>, place: &Place, out: &mut Vec<Finding>) {
        let (Some(session), Some(meta)) = (item.session, item.http.and_then(|h| h.meta)) else {
            return;
        };
        let (Some(header), Some(agreed)) = (&meta.protocol_version, &session.protocol_version)
        else {
            return;
        };
        if meta.is_request && **header != **agreed && self.header_reported.insert(session.id) {
            out.push(Finding::new(
                "protocol.version",
                format!(
                    "the request's MCP-Protocol-Version is {:?}, its session's version {agreed:?}",
                    super::short(header)
                ),
                place.clone(),
            ));
        }
    }

    /// A request posted to the endpoint an HTTP+SSE stream announced.
    fn legacy(&mut self, item: &Item<'_>, place: &Place, out: &mut Vec<Finding>) {
        let (Some(session), Some(meta)) = (item.session, item.http.and_then(|h| h.meta)) else {
            return;
        };
        let endpoint = session.http.as_ref().and_then(|h| h.session_id.as_deref());
        if meta.is_request
            && endpoint.is_some()
            && meta.path.as_deref() == endpoint
            && self.legacy_reported.insert(session.id)
        {
            out.push(Finding::new(
                "protocol.deprecated-transport",
                "HTTP+SSE: requests are posted to the endpoint an event stream announced"
                    .to_string(),
                place.clone(),
            ));
        }
    }

    /// What is left at the end: pending requests, and failures per tool.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        for (n, p) in std::mem::take(&mut self.pending) {
            out.push(Finding::new(
                "protocol.pending",
                format!(
                    "{} (item {n}) had no response by the end of the capture",
                    p.method
                ),
                p.place,
            ));
        }
        for ((session, what), items) in std::mem::take(&mut self.failures) {
            let shown: Vec<String> = items.iter().map(u64::to_string).collect();
            out.push(Finding::new(
                "protocol.tool-error",
                format!(
                    "{what} failed {} (items {})",
                    super::times(items.len()),
                    shown.join(", ")
                ),
                Place {
                    session: (session > 0).then_some(session),
                    item: items.first().copied(),
                    items,
                    ..Place::default()
                },
            ));
        }
    }
}

/// `protocolVersion` of initialize's params or result.
fn version_in(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    Some(v.get("protocolVersion")?.as_str()?.to_string())
}

/// Where `value` breaks `schema`, said without the value itself (arguments
/// may hold secrets): the instance paths and the schema's keywords.
fn violations(schema: &Result<jsonschema::Validator, String>, value: &Value) -> Option<String> {
    let validator = match schema {
        Ok(v) => v,
        Err(e) => return Some(format!("the schema does not compile ({e})")),
    };
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().as_str();
            let at = if at.is_empty() { "/" } else { at };
            format!("{at} fails {}", e.schema_path().as_str())
        })
        .collect();
    if errors.is_empty() {
        return None;
    }
    let more = errors.len().saturating_sub(5);
    let mut why = errors[..errors.len() - more].join("; ");
    if more > 0 {
        why.push_str(&format!("; and {more} more"));
    }
    Some(why)
}
