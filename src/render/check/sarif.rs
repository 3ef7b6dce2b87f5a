//! SARIF 2.1.0 (OASIS), for code-scanning UIs: one run, the rules that ran
//! with their help text, and one result per finding, located in the capture
//! file and logically by session, server, tool and item.

use super::place;
use crate::query::check::{Finding, Report, Severity};
use serde_json::{json, Value};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The SARIF log of a report on the capture at `uri`.
pub fn log(uri: &str, r: &Report) -> Value {
    let rules: Vec<Value> = r
        .rules
        .iter()
        .map(|(rule, sev)| {
            json!({
                "id": rule.id,
                "name": rule.id.replace(['.', '-'], "_"),
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.help},
                "help": {"text": rule.help, "markdown": format!("**{}**\n\n{}", rule.title, rule.help)},
                "defaultConfiguration": {"level": level(*sev)},
                "properties": {"tags": [rule.family()]},
            })
        })
        .collect();
    let results: Vec<Value> = r.findings.iter().map(|f| result(uri, r, f)).collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mcpspy",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://modelcontextprotocol.io",
                "rules": rules,
            }},
            "artifacts": [{"location": {"uri": uri}, "roles": ["analysisTarget"]}],
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {"messagesChecked": r.items},
        }],
    })
}

fn level(s: Severity) -> &'static str {
    s.name()
}

fn result(uri: &str, r: &Report, f: &Finding) -> Value {
    let index = r.rules.iter().position(|(rule, _)| rule.id == f.rule);
    let p = &f.at;
    // The logical path, outermost first: session, server, tool, item.
    let mut logical = Vec::new();
    let mut path = String::new();
    let mut push = |kind: &str, name: String| {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&name);
        logical.push(json!({"name": name, "fullyQualifiedName": path.clone(), "kind": kind}));
    };
    if let Some(s) = p.session {
        push("namespace", format!("session {s}"));
    }
    if let Some(s) = &p.server {
        push("module", format!("server {s}"));
    }
    if let Some(t) = &p.tool {
        push("function", t.clone());
    }
    if let Some(n) = p.item {
        push("object", format!("item {n}"));
    }
    if let Some(pid) = p.pid {
        push("object", format!("process {pid}"));
    }
    if let Some(field) = &p.field {
        push("member", field.clone());
    }
    let mut location = json!({
        "physicalLocation": {"artifactLocation": {"uri": uri, "index": 0}},
        "message": {"text": place(p)},
    });
    if !logical.is_empty() {
        location["logicalLocations"] = Value::Array(logical);
    }
    let mut out = json!({
        "ruleId": f.rule,
        "level": level(f.severity),
        "message": {"text": f.message},
        "locations": [location],
        "properties": serde_json::to_value(p).unwrap_or(Value::Null),
    });
    if let Some(i) = index {
        out["ruleIndex"] = json!(i);
    }
    out
}
