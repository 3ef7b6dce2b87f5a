//! `mcpspy check`: audit findings from a capture. One read of the capture
//! through the driver into a [`Checker`] (a sink) finds tool-definition
//! drift, poisoned tool text, secrets in traffic and protocol faults; the
//! file's own health (seal, losses, damage) comes first. Each finding has a
//! stable rule id ([`RULES`]) and points at its message: the session, the
//! item number (`n` of the JSONL export), the field and the raw records.
//! Output formats live in render::check.

mod catalog;
mod drift;
mod health;
mod inventory;
mod poison;
mod protocol;
mod secrets;

pub use catalog::{find as find_rule, Rule, Severity, RULES};
pub use inventory::{Inventory, ListKind, Pinned, ServerEntry, ServerKey};

use super::derive::rules::Rules;
use super::{
    run, CaptureReader, Flow, IndexUse, Item, Kind, ProcessRow, Progress, QueryError, Selection,
    SessionSummary, Sink,
};
use drift::Drift;
use inventory::{records, Lists};
use protocol::Protocol;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io;

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    #[serde(flatten)]
    pub at: Place,
}

impl Finding {
    /// A finding of `rule` at its default severity (the config may change it).
    fn new(rule: &'static str, message: String, at: Place) -> Finding {
        let severity = catalog::find(rule).map_or(Severity::Warning, |r| r.severity);
        Finding {
            rule,
            severity,
            message,
            at,
        }
    }
}

/// Where a finding is. What is unknown is left out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Place {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// The server's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The tool (prompt, resource) concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The item (`n`) of the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u64>,
    /// A JSON path in the message, an HTTP header, or a command-line argument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A process, for what is on a command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The raw records (ring-buffer sequence numbers) of the message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<u64>,
    /// Every item a counted finding covers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<u64>,
}

/// What to check, and how much each rule matters.
pub struct Config {
    pub secret_rules: Rules,
    /// protocol.late: responses slower than this.
    pub slow_ns: Option<u64>,
    pub baseline: Option<Inventory>,
    /// The severity of each rule; None: the rule is off.
    pub severities: BTreeMap<&'static str, Option<Severity>>,
}

impl Config {
    /// Every rule at its default severity.
    pub fn new(secret_rules: Rules) -> Config {
        Config {
            secret_rules,
            slow_ns: None,
            baseline: None,
            severities: RULES.iter().map(|r| (r.id, Some(r.severity))).collect(),
        }
    }

    /// The rules a name selects: an id, or a family (`drift`).
    pub fn named(name: &str) -> Result<Vec<&'static str>, String> {
        let ids: Vec<&'static str> = RULES
            .iter()
            .filter(|r| r.id == name || r.family() == name)
            .map(|r| r.id)
            .collect();
        if ids.is_empty() {
            return Err(format!(
                "no rule or family {name:?} (mcpspy check --list-rules names them)"
            ));
        }
        Ok(ids)
    }

    /// Only these rules (`--rule`), then not these (`--skip-rule`).
    pub fn select(&mut self, only: &[String], skip: &[String]) -> Result<(), String> {
        if !only.is_empty() {
            let mut keep = Vec::new();
            for name in only {
                keep.extend(Config::named(name)?);
            }
            for (id, sev) in self.severities.iter_mut() {
                if !keep.contains(id) {
                    *sev = None;
                }
            }
        }
        for name in skip {
            for id in Config::named(name)? {
                self.severities.insert(id, None);
            }
        }
        Ok(())
    }

    /// A rules file (TOML): `[severity]` maps a rule id or family to
    /// `error`, `warning`, `note` or `off`.
    pub fn apply_file(&mut self, text: &str) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            severity: BTreeMap<String, String>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, level) in file.severity {
            let sev = match level.as_str() {
                "error" => Some(Severity::Error),
                "warning" => Some(Severity::Warning),
                "note" => Some(Severity::Note),
                "off" => None,
                other => {
                    return Err(format!(
                        "{name}: severity {other:?} is none of error, warning, note, off"
                    ))
                }
            };
            for id in Config::named(&name)? {
                self.severities.insert(id, sev);
            }
        }
        Ok(())
    }

    fn on(&self, rule: &str) -> bool {
        self.severities.get(rule).is_some_and(Option::is_some)
    }
}

/// What a check found.
pub struct Report {
    /// Health first, then in item order.
    pub findings: Vec<Finding>,
    /// The rules that ran, with their severity.
    pub rules: Vec<(&'static Rule, Severity)>,
    pub inventory: Inventory,
    /// Items read.
    pub items: u64,
    /// Pieces of damage met.
    pub damage: u64,
}

/// Checks `reader` against `config`.
pub fn check(
    reader: &CaptureReader,
    config: &Config,
    progress: &mut dyn Progress,
) -> Result<Report, QueryError> {
    let mut findings = health::of_file(reader)?;
    let mut checker = Checker::new(config);
    let outcome = run(
        reader,
        &Selection::default(),
        &mut checker,
        IndexUse::Never,
        progress,
    )?;
    findings.append(&mut checker.findings);
    findings.retain_mut(|f| match config.severities.get(f.rule) {
        Some(Some(sev)) => {
            f.severity = *sev;
            true
        }
        _ => false,
    });
    // Health first (it is first in RULES); then by item; file-wide last.
    let rank = |f: &Finding| {
        let health = catalog::find(f.rule).is_none_or(|r| r.family() != "health");
        (health, f.at.item.is_none(), f.at.item, f.at.pid)
    };
    findings.sort_by_key(rank);
    let rules = RULES
        .iter()
        .filter_map(|r| Some((r, (*config.severities.get(r.id)?)?)))
        .collect();
    Ok(Report {
        findings,
        rules,
        inventory: Inventory::build(&checker.drift.seen),
        items: outcome.matched,
        damage: outcome.damage,
    })
}

/// The inventory of a capture alone (`query --tools`, a capture as baseline).
pub fn inventory(
    reader: &CaptureReader,
    progress: &mut dyn Progress,
) -> Result<Inventory, QueryError> {
    let mut config = Config::new(Rules::load(&[]).map_err(io::Error::other)?);
    config.severities.clear();
    let mut checker = Checker::new(&config);
    run(
        reader,
        &Selection::default(),
        &mut checker,
        IndexUse::Never,
        progress,
    )?;
    Ok(Inventory::build(&checker.drift.seen))
}

/// The sink that finds what a capture's messages show.
struct Checker<'c> {
    config: &'c Config,
    commands: HashMap<u32, Vec<String>>,
    lists: Lists,
    drift: Drift,
    protocol: Protocol,
    /// Per client process: each tool name and the server that offers it.
    offered: HashMap<u32, BTreeMap<String, (ServerKey, u64)>>,
    findings: Vec<Finding>,
    /// Whether any rule of the family is on: protocol, secret, poison.
    families: [bool; 3],
}

impl<'c> Checker<'c> {
    fn new(config: &'c Config) -> Self {
        Checker {
            config,
            commands: HashMap::new(),
            lists: Lists::default(),
            drift: Drift::default(),
            protocol: Protocol::new(config.slow_ns),
            offered: HashMap::new(),
            findings: Vec::new(),
            families: ["protocol", "secret", "poison"]
                .map(|f| RULES.iter().any(|r| r.family() == f && config.on(r.id))),
        }
    }

    fn secrets(&mut self, item: &Item<'_>, place: &Place) {
        let rules = &self.config.secret_rules;
        let mut found = Vec::new();
        if self.config.on("secret.message") && !matches!(item.kind, Kind::Flagged(_)) {
            found.extend(
                secrets::in_text(rules, item.text, item.is_whole_json())
                    .into_iter()
                    .map(|s| ("secret.message", s)),
            );
        }
        let head = item
            .http
            .and_then(|h| h.meta)
            .and_then(|m| m.head.as_deref());
        if let Some(head) = head.filter(|_| self.config.on("secret.header")) {
            found.extend(
                secrets::in_head(rules, head)
                    .into_iter()
                    .map(|s| ("secret.header", s)),
            );
        }
        for (rule, s) in found {
            let mut at = place.clone();
            at.field = Some(s.field);
            self.findings.push(Finding::new(
                rule,
                format!("a value of rule {:?} (not shown)", s.rule),
                at,
            ));
        }
    }

    fn poison(&mut self, item: &Item<'_>, place: &Place) {
        let Kind::Response {
            result,
            answers: Some(req),
            ..
        } = &item.kind
        else {
            return;
        };
        if !matches!(
            &*req.method,
            "tools/call" | "prompts/get" | "resources/read"
        ) || !poison::maybe(result.get().as_bytes())
        {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(result.get()) else {
            return;
        };
        for hit in poison::scan(&v, "result") {
            self.hit(hit, place.clone());
        }
    }

    fn hit(&mut self, hit: poison::Hit, mut at: Place) {
        at.field = Some(hit.field);
        self.findings.push(Finding::new(hit.rule, hit.detail, at));
    }

    /// A complete list: its text, its drift, its schemas, its names.
    fn listing(&mut self, item: &Item<'_>, l: inventory::Listing, place: &Place) {
        let Some(session) = item.session else { return };
        let key = ServerKey::of(session, &self.commands);
        for (name, def) in &l.defs {
            let mut at = place.clone();
            at.server = Some(key.name.clone());
            at.tool = Some(name.clone());
            for hit in poison::scan(
                &Value::Object(def.clone()),
                &format!("{}s[{name:?}]", l.kind.name()),
            ) {
                self.hit(hit, at.clone());
            }
            if l.kind != ListKind::Tool {
                continue;
            }
            if let Some(odd) = poison::confusable(name) {
                self.findings.push(Finding::new(
                    "poison.confusable-name",
                    format!("tool name {name:?} holds {odd}"),
                    at.clone(),
                ));
            }
            if let Some(client) = session.client {
                let offered = self.offered.entry(client.pid).or_default();
                match offered.get(name) {
                    Some((other, s)) if *other != key => self.findings.push(Finding::new(
                        "poison.shadowing",
                        format!(
                            "tool {name:?} is also offered to this client (pid {}) by server {:?} (session {s})",
                            client.pid, other.name
                        ),
                        at.clone(),
                    )),
                    Some(_) => {}
                    None => {
                        offered.insert(name.clone(), (key.clone(), session.id));
                    }
                }
            }
        }
        if l.kind == ListKind::Tool {
            self.protocol.tools(l.session, &l.defs);
        }
        let baseline = self.config.baseline.as_ref();
        let mut found = Vec::new();
        self.drift.listing(&key, l, baseline, &mut found);
        self.findings.append(&mut found);
    }
}

impl Sink for Checker<'_> {
    fn process(&mut self, row: &ProcessRow) {
        let Some(args) = row
            .cmdline
            .as_deref()
            .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
        else {
            return;
        };
        if self.config.on("secret.command-line") {
            for s in secrets::in_args(&self.config.secret_rules, &args) {
                self.findings.push(Finding::new(
                    "secret.command-line",
                    format!(
                        "process {} ({}): a value of rule {:?} (not shown)",
                        row.pid, row.comm, s.rule
                    ),
                    Place {
                        pid: Some(row.pid),
                        field: Some(s.field),
                        ..Place::default()
                    },
                ));
            }
        }
        self.commands.insert(row.pid, args);
    }

    fn item(&mut self, item: &Item<'_>, _: u64) -> io::Result<Flow> {
        let place = Place {
            session: item.session.map(|s| s.id),
            server: item
                .session
                .and_then(|s| s.server_info.as_ref())
                .and_then(|i| i.name.clone()),
            tool: item.kind.subject().map(str::to_string),
            item: Some(item.n),
            records: records(item),
            ..Place::default()
        };
        health::of_item(item, &place, &mut self.findings);
        let [protocol, secret, poison] = self.families;
        if protocol {
            self.protocol.item(item, &place, &mut self.findings);
        }
        if secret {
            self.secrets(item, &place);
        }
        if poison {
            self.poison(item, &place);
        }
        if let (
            Kind::Request {
                method: "tools/call",
                subject: Some(tool),
                ..
            },
            Some(s),
        ) = (&item.kind, item.session)
        {
            let key = ServerKey::of(s, &self.commands);
            self.drift.call(&key, s.id, tool, item.n);
        }
        if let Some(l) = self.lists.item(item) {
            self.listing(item, l, &place);
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _sessions: &[SessionSummary]) -> io::Result<()> {
        self.protocol.finish(&mut self.findings);
        Ok(())
    }
}

/// Captured text in a message, cut to a length that fits a line (and said so).
fn short(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

fn times(n: usize) -> String {
    match n {
        1 => "once".into(),
        n => format!("{n} times"),
    }
}
