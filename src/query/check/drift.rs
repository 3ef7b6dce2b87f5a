//! Tool-definition drift: a list that changed within a session (after
//! `list_changed`), between sessions of the same server, or against a
//! baseline; and a tool whose description changed after it was called.

use super::inventory::{diff, Change, Defs, Inventory, ListKind, Listing, ServerKey};
use super::{Finding, Place};
use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub struct Drift {
    /// Each session's latest list of each kind, and its item.
    current: HashMap<(u64, ListKind), (Defs, u64)>,
    /// Each server's latest list of each kind, and its session.
    by_server: HashMap<(ServerKey, ListKind), (Defs, u64)>,
    /// The first call of each tool, per server: (session, item).
    called: HashMap<(ServerKey, String), (u64, u64)>,
    /// Changes against the baseline already reported, per server.
    reported: HashSet<(ServerKey, ListKind, String)>,
    /// Every complete list, in order, with its server (the inventory).
    pub seen: Vec<(ServerKey, Listing)>,
}

impl Drift {
    /// A tools/call of `tool` at item `n`.
    pub fn call(&mut self, key: &ServerKey, session: u64, tool: &str, n: u64) {
        self.called
            .entry((key.clone(), tool.to_string()))
            .or_insert((session, n));
    }

    /// A complete list: compared with the session's previous one, else
    /// with the server's last in another session, and with the baseline.
    pub fn listing(
        &mut self,
        key: &ServerKey,
        l: Listing,
        baseline: Option<&Inventory>,
        out: &mut Vec<Finding>,
    ) {
        let place = |name: &str| Place {
            session: Some(l.session),
            server: Some(key.name.clone()),
            tool: Some(name.to_string()),
            item: Some(l.n),
            records: l.records.clone(),
            ..Place::default()
        };
        let previous = self.current.get(&(l.session, l.kind));
        let other = self
            .by_server
            .get(&(key.clone(), l.kind))
            .filter(|(_, s)| *s != l.session);
        let against = match (previous, other) {
            (Some((defs, n)), _) => Some(("drift.session", defs, format!("item {n}"))),
            (None, Some((defs, s))) => Some(("drift.rerun", defs, format!("session {s}"))),
            (None, None) => None,
        };
        if let Some((rule, old, since)) = against {
            for change in diff(old, &l.defs) {
                let first_call = self.called.get(&(key.clone(), change.name().to_string()));
                let after_use = l.kind == ListKind::Tool
                    && matches!(&change, Change::Changed(_, m) if m.iter().any(|m| m == "description"))
                    && first_call.is_some();
                let (rule, why) = match first_call.filter(|_| after_use) {
                    Some((s, n)) => (
                        "drift.after-use",
                        format!(", after it was called (session {s}, item {n})"),
                    ),
                    None => (rule, String::new()),
                };
                out.push(Finding::new(
                    rule,
                    format!("{}{why}; compared with {since}", describe(l.kind, &change)),
                    place(change.name()),
                ));
            }
        }
        if let Some(base) = baseline {
            self.against_baseline(key, &l, base, out, &place);
        }
        self.current
            .insert((l.session, l.kind), (l.defs.clone(), l.n));
        self.by_server
            .insert((key.clone(), l.kind), (l.defs.clone(), l.session));
        self.seen.push((key.clone(), l));
    }

    fn against_baseline(
        &mut self,
        key: &ServerKey,
        l: &Listing,
        base: &Inventory,
        out: &mut Vec<Finding>,
        place: &dyn Fn(&str) -> Place,
    ) {
        let Some(entry) = base.server(key) else {
            if self.reported.insert((key.clone(), l.kind, String::new())) {
                let mut at = place("");
                at.tool = None;
                out.push(Finding::new(
                    "drift.baseline",
                    format!("server {:?} is not in the baseline", key.name),
                    at,
                ));
            }
            return;
        };
        let Some(old) = entry.defs(l.kind) else {
            return;
        };
        for change in diff(&old, &l.defs) {
            let text = describe(l.kind, &change);
            if self.reported.insert((key.clone(), l.kind, text.clone())) {
                out.push(Finding::new(
                    "drift.baseline",
                    format!("{text}; compared with the baseline"),
                    place(change.name()),
                ));
            }
        }
    }
}

fn describe(kind: ListKind, change: &Change) -> String {
    let what = kind.name();
    match change {
        Change::Added(n) => format!("{what} {n:?} appeared"),
        Change::Removed(n) => format!("{what} {n:?} disappeared"),
        Change::Changed(n, members) => {
            format!("{what} {n:?} changed: {}", members.join(", "))
        }
    }
}
