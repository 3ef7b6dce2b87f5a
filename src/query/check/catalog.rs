//! The rules of `mcpspy check`: a stable id, a default severity, and why
//! each exists (docs/check.md says the same at more length). A finding
//! names its rule by id; outputs (SARIF rules, JUnit testcases) list them.

use serde::{Deserialize, Serialize};

/// How much a finding matters, in SARIF's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One rule: its id (`family.name`), default severity, a one-line title
/// and the rationale (help text).
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub help: &'static str,
}

impl Rule {
    /// The family: the part of the id before the dot.
    pub fn family(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

const fn rule(
    id: &'static str,
    severity: Severity,
    title: &'static str,
    help: &'static str,
) -> Rule {
    Rule {
        id,
        severity,
        title,
        help,
    }
}

use Severity::{Error, Note, Warning};

/// Every rule, health first: a finding about traffic is only as good as
/// the capture it came from.
pub const RULES: &[Rule] = &[
    rule(
        "health.seal-broken",
        Error,
        "The capture's seal does not hold",
        "Some block, table row or signature does not match the seal written with it: the file was \
         changed after it was recorded, and no finding below can be trusted (mcpspy verify names \
         what failed).",
    ),
    rule(
        "health.unfinished",
        Warning,
        "The recording did not end cleanly",
        "The recorder was killed: the capture holds what was committed up to its last commit, and \
         messages after it are missing, so pending requests may have had answers.",
    ),
    rule(
        "health.unsealed",
        Note,
        "The capture has no seal",
        "A capture made without a seal cannot show that it is unaltered; its findings are only as \
         good as the file's custody.",
    ),
    rule(
        "health.loss",
        Warning,
        "Records were lost while recording",
        "The kernel or the recorder dropped records, or a stream's bytes were never captured: \
         messages may be missing or cut, so absent findings prove less.",
    ),
    rule(
        "health.damage",
        Error,
        "Part of the file cannot be read",
        "A block or record of the file does not read back (the file was damaged after it was \
         written): what it held is not checked.",
    ),
    rule(
        "drift.session",
        Warning,
        "A tool, prompt or resource changed during a session",
        "The server's list changed after the client first read it (usually after \
         notifications/tools/list_changed): the client may approve a tool by one definition and \
         then run it under another. Added, removed and changed definitions are reported, naming \
         what changed: description, input schema, output schema, annotations.",
    ),
    rule(
        "drift.rerun",
        Warning,
        "A tool, prompt or resource differs from an earlier session of the same server",
        "The same server (same name and command line) offered another definition in an earlier \
         session of the capture: an update, or a server that changes its tools behind the user's \
         back.",
    ),
    rule(
        "drift.baseline",
        Error,
        "A tool, prompt or resource differs from the baseline",
        "The definition is not the one pinned in the baseline (a tools lock file, or an earlier \
         capture): review the change, then write a new baseline.",
    ),
    rule(
        "drift.after-use",
        Error,
        "A tool's description changed after the tool was called",
        "The client called the tool under one description and the server changed it afterwards: \
         the pattern of a 'rug pull', where a tool is approved while harmless and altered later.",
    ),
    rule(
        "poison.hidden-chars",
        Error,
        "Invisible characters in tool text",
        "Unicode tag characters (U+E0000-E007F), bidirectional controls and zero-width characters \
         are not shown to the user but are read by the model: text the user never saw can steer \
         it.",
    ),
    rule(
        "poison.ansi",
        Error,
        "Terminal escape sequences in tool text",
        "ANSI escapes can hide or rewrite text on a terminal, so what the user sees is not what \
         the model reads.",
    ),
    rule(
        "poison.directive",
        Error,
        "Tool text that addresses the model",
        "Blocks such as <IMPORTANT> or <SYSTEM>, 'ignore previous instructions', or asking the \
         model to keep something from the user: instructions for the model hidden in a tool's \
         description, schema or result (tool poisoning, prompt injection).",
    ),
    rule(
        "poison.sensitive-file",
        Error,
        "Tool text that names credential or configuration files",
        "Descriptions or results that mention SSH keys, cloud credentials, .env files or MCP \
         client configurations ask the model to read what a tool should not need.",
    ),
    rule(
        "poison.exfiltration",
        Warning,
        "Tool text that asks to send data to an address",
        "Text that tells the model to send, post or upload something to a URL is the second half \
         of an exfiltration.",
    ),
    rule(
        "poison.confusable-name",
        Warning,
        "A tool name with characters outside ASCII",
        "Tool names are identifiers (letters, digits, _ - .); a name with other characters can \
         imitate another tool's name with look-alike letters.",
    ),
    rule(
        "poison.shadowing",
        Warning,
        "Two servers of one client offer a tool of the same name",
        "When one client talks to several servers, a tool whose name another server also offers \
         can capture calls meant for the other (tool shadowing).",
    ),
    rule(
        "secret.message",
        Warning,
        "A secret or personal data in a message",
        "A value matched a redaction rule (the rules of mcpspy redact) in a message's arguments \
         or results: it left the process that held it. The value is never shown; the rule, the \
         message and the field are.",
    ),
    rule(
        "secret.header",
        Note,
        "Credentials in HTTP headers",
        "HTTP headers carried a credential (Authorization, cookies, API keys): expected for \
         authenticated servers, but the capture now holds it; redact before sharing.",
    ),
    rule(
        "secret.command-line",
        Warning,
        "A secret on a command line",
        "A process of the capture was started with a secret in its arguments, where every user \
         of the machine can read it.",
    ),
    rule(
        "protocol.pending",
        Warning,
        "A request with no response",
        "The request had no response by the end of the capture and was not cancelled: a server \
         that hung, or a capture that ended too early.",
    ),
    rule(
        "protocol.late",
        Warning,
        "A response slower than --slow",
        "The response came later than the threshold given with --slow.",
    ),
    rule(
        "protocol.mismatch",
        Warning,
        "A response to an id that was never requested",
        "JSON-RPC responses answer requests; a response whose id no request of the session \
         carried is a confused or spoofing peer, or a request the capture lost.",
    ),
    rule(
        "protocol.invalid",
        Error,
        "A message that is not valid JSON-RPC",
        "Text that is not JSON, not UTF-8, not JSON-RPC 2.0, or HTTP that does not parse, where \
         MCP messages travel.",
    ),
    rule(
        "protocol.unsupported",
        Note,
        "Traffic the decoder does not read",
        "A protocol was recognised but is not decoded (HTTP/2): its messages are not checked.",
    ),
    rule(
        "protocol.schema",
        Error,
        "Arguments or a result that break the tool's schema",
        "tools/call arguments must validate against the tool's inputSchema and a structured \
         result against its outputSchema (JSON Schema).",
    ),
    rule(
        "protocol.tool-error",
        Note,
        "JSON-RPC errors and failed tool calls, per tool",
        "Errors and results with isError, counted per session and method or tool.",
    ),
    rule(
        "protocol.version",
        Warning,
        "The two sides disagree on the protocol version",
        "The server answered initialize with another version than the client asked for, or an \
         HTTP request's MCP-Protocol-Version header differs from the version of its session.",
    ),
    rule(
        "protocol.deprecated-transport",
        Warning,
        "The deprecated HTTP+SSE transport",
        "The session uses the HTTP+SSE transport of protocol version 2024-11-05, which Streamable \
         HTTP replaced.",
    ),
];

/// The rule with this id.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_health_comes_first() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(RULES[..i].iter().all(|o| o.id != r.id), "{} twice", r.id);
            assert!(r.id.contains('.') && !r.help.is_empty());
        }
        let last_health = RULES.iter().rposition(|r| r.family() == "health");
        let first_other = RULES.iter().position(|r| r.family() != "health");
        assert!(last_health < first_other);
    }
}
