//! What servers offer: the results of `tools/list`, `prompts/list` and
//! `resources/list` (pages joined), per session, and the inventory of a
//! whole capture by server, which `query --tools` shows and a baseline
//! (a capture, or the lock file `check --write-baseline` writes) pins.

use super::super::{Item, Kind, SessionSummary};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The three lists a server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Tool,
    Prompt,
    Resource,
}

impl ListKind {
    fn of_method(method: &str) -> Option<ListKind> {
        match method {
            "tools/list" => Some(ListKind::Tool),
            "prompts/list" => Some(ListKind::Prompt),
            "resources/list" => Some(ListKind::Resource),
            _ => None,
        }
    }

    /// The member of the list result that holds the definitions.
    fn member(self) -> &'static str {
        match self {
            ListKind::Tool => "tools",
            ListKind::Prompt => "prompts",
            ListKind::Resource => "resources",
        }
    }

    /// What names a definition: resources by URI, the others by name.
    fn key(self) -> &'static str {
        match self {
            ListKind::Resource => "uri",
            _ => "name",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ListKind::Tool => "tool",
            ListKind::Prompt => "prompt",
            ListKind::Resource => "resource",
        }
    }
}

/// A list's definitions, by name (URI for resources).
pub type Defs = BTreeMap<String, Map<String, Value>>;

/// A server, as the same server across sessions: the name it gave, and
/// its command line when the capture knows its process.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerKey {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

impl ServerKey {
    /// The server of a session: its name (or, when it gave none, its
    /// process name) and command line.
    pub fn of(session: &SessionSummary, commands: &HashMap<u32, Vec<String>>) -> ServerKey {
        let info = session.server_info.as_ref().and_then(|i| i.name.clone());
        let peer = session.server;
        ServerKey {
            name: info
                .or_else(|| peer.map(|p| p.comm().into_owned()))
                .unwrap_or_else(|| "?".into()),
            command: peer.and_then(|p| commands.get(&p.pid).cloned()),
        }
    }
}

/// A complete list, as one session received it.
#[derive(Debug)]
pub struct Listing {
    pub session: u64,
    pub kind: ListKind,
    /// The item of the (last page's) response.
    pub n: u64,
    pub records: Vec<u64>,
    pub defs: Defs,
}

/// Joins list pages per session and hands out complete lists.
#[derive(Default)]
pub struct Lists {
    /// List requests that continue a list (they carry a cursor).
    continuing: HashSet<u64>,
    /// Pages received so far, per session and kind.
    pages: HashMap<(u64, ListKind), Defs>,
}

impl Lists {
    /// A complete list, if `item` ends one; its text is parsed only when
    /// it is a list request or response.
    pub fn item(&mut self, item: &Item<'_>) -> Option<Listing> {
        let session = item.session?.id;
        match &item.kind {
            Kind::Request {
                method,
                params: Some(p),
                ..
            } if ListKind::of_method(method).is_some() => {
                let v: Value = serde_json::from_str(p.get()).ok()?;
                if v.get("cursor").is_some_and(|c| !c.is_null()) {
                    self.continuing.insert(item.n);
                }
                None
            }
            Kind::Response {
                result,
                answers: Some(req),
                ..
            } => {
                let kind = ListKind::of_method(&req.method)?;
                let v: Value = serde_json::from_str(result.get()).ok()?;
                let pages = self.pages.entry((session, kind)).or_default();
                if !self.continuing.remove(&req.n) {
                    pages.clear();
                }
                for def in v.get(kind.member())?.as_array()? {
                    let Some(obj) = def.as_object() else { continue };
                    let name = obj.get(kind.key()).and_then(Value::as_str).unwrap_or("");
                    pages.insert(name.to_string(), obj.clone());
                }
                if v.get("nextCursor").is_some_and(|c| !c.is_null()) {
                    return None;
                }
                Some(Listing {
                    session,
                    kind,
                    n: item.n,
                    records: records(item),
                    defs: std::mem::take(pages),
                })
            }
            _ => None,
        }
    }
}

/// The raw records an item came from (both copies), sorted.
pub fn records(item: &Item<'_>) -> Vec<u64> {
    let mut seqs: Vec<u64> = [&item.writer, &item.reader]
        .into_iter()
        .flatten()
        .flat_map(|c| c.seqs.iter().copied())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    seqs
}

/// A definition's digest: SHA-256 of its JSON with members sorted, so that
/// member order (which JSON leaves free) does not count.
pub fn digest(def: &Map<String, Value>) -> String {
    fn canonical(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *out, k);
                    out.push(b':');
                    canonical(&m[k], out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(x, out);
                }
                out.push(b']');
            }
            other => {
                let _ = serde_json::to_writer(&mut *out, other);
            }
        }
    }
    let mut bytes = Vec::new();
    canonical(&Value::Object(def.clone()), &mut bytes);
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

/// What changed between two versions of a list.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Added(String),
    Removed(String),
    /// The definition's members that differ (`description`, `inputSchema`…).
    Changed(String, Vec<String>),
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Added(n) | Change::Removed(n) | Change::Changed(n, _) => n,
        }
    }
}

pub fn diff(old: &Defs, new: &Defs) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, def) in new {
        match old.get(name) {
            None => out.push(Change::Added(name.clone())),
            Some(before) if before != def => {
                let mut members: Vec<String> = def
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .chain(before.keys().filter(|k| !def.contains_key(*k)).cloned())
                    .collect();
                members.sort();
                out.push(Change::Changed(name.clone(), members));
            }
            Some(_) => {}
        }
    }
    out.extend(
        old.keys()
            .filter(|k| !new.contains_key(*k))
            .map(|k| Change::Removed(k.clone())),
    );
    out
}

/// The inventory of a capture (or of a lock file): every server, the
/// sessions it served, and its latest definitions of each kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// The lock file's format.
    pub mcpspy_tools_lock: u32,
    pub servers: Vec<ServerEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerEntry {
    #[serde(flatten)]
    pub key: ServerKey,
    /// Sessions of the capture it was read from (empty in a lock file read back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<u64>,
    #[serde(default)]
    pub lists: BTreeMap<ListKind, BTreeMap<String, Pinned>>,
}

/// One definition, pinned: its digest and the definition itself (so that a
/// later check can say what changed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pinned {
    pub digest: String,
    pub definition: Map<String, Value>,
}

pub const LOCK_VERSION: u32 = 1;

impl Inventory {
    /// From the lists seen, in order: the latest list of each kind wins.
    pub fn build(seen: &[(ServerKey, Listing)]) -> Inventory {
        let mut servers: BTreeMap<&ServerKey, ServerEntry> = BTreeMap::new();
        for (key, l) in seen {
            let entry = servers.entry(key).or_insert_with(|| ServerEntry {
                key: key.clone(),
                sessions: Vec::new(),
                lists: BTreeMap::new(),
            });
            if !entry.sessions.contains(&l.session) {
                entry.sessions.push(l.session);
            }
            let pinned = l
                .defs
                .iter()
                .map(|(name, def)| {
                    let p = Pinned {
                        digest: digest(def),
                        definition: def.clone(),
                    };
                    (name.clone(), p)
                })
                .collect();
            entry.lists.insert(l.kind, pinned);
        }
        Inventory {
            mcpspy_tools_lock: LOCK_VERSION,
            servers: servers.into_values().collect(),
        }
    }

    /// A lock file's text.
    pub fn parse(text: &str) -> Result<Inventory, String> {
        let inv: Inventory = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if inv.mcpspy_tools_lock != LOCK_VERSION {
            return Err(format!(
                "a tools lock of version {} (this mcpspy reads version {LOCK_VERSION})",
                inv.mcpspy_tools_lock
            ));
        }
        Ok(inv)
    }

    /// The entry for a server: the same name and command line, else the one
    /// entry of that name (a command line may differ across machines).
    pub fn server(&self, key: &ServerKey) -> Option<&ServerEntry> {
        self.servers.iter().find(|s| s.key == *key).or_else(|| {
            let mut named = self.servers.iter().filter(|s| s.key.name == key.name);
            match (named.next(), named.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
    }
}

impl ServerEntry {
    /// Its definitions of one kind, as a list's.
    pub fn defs(&self, kind: ListKind) -> Option<Defs> {
        let pinned = self.lists.get(&kind)?;
        Some(
            pinned
                .iter()
                .map(|(n, p)| (n.clone(), p.definition.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(v: Value) -> Defs {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_object().unwrap().clone()))
            .collect()
    }

    #[test]
    fn diff_names_what_changed_and_digests_ignore_member_order() {
        let old = defs(serde_json::json!({
            "a": {"name": "a", "description": "x", "inputSchema": {"type": "object"}},
            "b": {"name": "b"},
        }));
        let new = defs(serde_json::json!({
            "a": {"inputSchema": {"type": "object", "required": ["q"]}, "name": "a", "description": "y"},
            "c": {"name": "c"},
        }));
        assert_eq!(
            diff(&old, &new),
            vec![
                Change::Changed("a".into(), vec!["description".into(), "inputSchema".into()]),
                Change::Added("c".into()),
                Change::Removed("b".into()),
            ]
        );
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"name":"a","description":"x"}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"description":"x","name":"a"}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert!(diff(
            &defs(serde_json::json!({"a": a})),
            &defs(serde_json::json!({"a": b}))
        )
        .is_empty());
    }
}
