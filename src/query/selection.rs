//! Which items a reader shows. Conditions combine with AND.
//!
//! `errors` and `min_latency` select responses, and also the requests they
//! answer; a request's response comes after it, so the driver makes two
//! passes: [`Selection::answer_selects`] on every item of the first collects
//! the requests, and [`Selection::matches`] on the second decides.

use super::{Item, Kind, ProcessRow, ViewKey};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Selection {
    pub methods: Vec<String>,
    pub tools: Vec<String>,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    /// Only messages of processes in these containers (ids or prefixes).
    pub containers: Vec<String>,
    /// Only messages of processes in these cgroups (paths below the cgroup2
    /// root), or in cgroups below them.
    pub cgroups: Vec<String>,
    /// The processes `containers` and `cgroups` name. Set by the driver from
    /// the capture's processes, never by the user.
    #[serde(skip)]
    pub scoped_pids: Option<Arc<HashSet<u32>>>,
    pub sessions: Vec<u64>,
    /// Kernel timestamps, inclusive.
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    pub errors: bool,
    pub min_latency_ns: Option<u64>,
    /// A transport family (`Transport::family`).
    pub transport: Option<&'static str>,
    /// Only these items (by their number, `n`).
    pub items: Vec<u64>,
    /// Only messages with these JSON-RPC ids (as JSON text: `7`, `"a"`).
    pub ids: Vec<String>,
    /// Only the responses (and errors) that answer these items.
    pub answering: Vec<u64>,
    /// Only the messages a slice selected (its view: [`view_key`]). Set by
    /// the driver from the capture, never by the user.
    #[serde(skip)]
    pub view: Option<Arc<HashSet<ViewKey>>>,
    /// Read every message of a slice, its context too (its view is not
    /// applied): what `redact` reads.
    #[serde(skip)]
    pub whole: bool,
    /// Decode as if the capture held no TLS key log: what a redacted
    /// capture shows (`redact` leaves the key log out).
    #[serde(skip)]
    pub without_keylog: bool,
}

/// How a slice's view names a message: its first copy's first record and
/// the stream offset where its text starts.
pub fn view_key(item: &Item<'_>) -> Option<ViewKey> {
    let copy = item.writer.as_ref().or(item.reader.as_ref())?;
    Some((*copy.seqs.first()?, copy.start))
}

impl Selection {
    /// Whether `row` is a process that `containers` or `cgroups` names.
    pub fn scopes(&self, row: &ProcessRow) -> bool {
        let in_container = |c: &String| {
            row.container_id
                .as_ref()
                .is_some_and(|id| id.starts_with(c.as_str()))
        };
        // A path names its cgroup and those below it ("/" names them all).
        let in_cgroup = |c: &String| {
            let c = c.trim_end_matches('/');
            row.cgroup.as_ref().is_some_and(|(_, path)| {
                path.strip_prefix(c)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        };
        self.containers.iter().any(in_container) || self.cgroups.iter().any(in_cgroup)
    }

    /// Every item: no condition at all.
    pub fn is_everything(&self) -> bool {
        let Selection {
            methods,
            tools,
            pids,
            comms,
            containers,
            cgroups,
            scoped_pids: _,
            sessions,
            since_ns,
            until_ns,
            errors,
            min_latency_ns,
            transport,
            items,
            ids,
            answering,
            view,
            whole: _,
            without_keylog,
        } = self;
        !without_keylog
            && methods.is_empty()
            && tools.is_empty()
            && pids.is_empty()
            && comms.is_empty()
            && containers.is_empty()
            && cgroups.is_empty()
            && sessions.is_empty()
            && since_ns.is_none()
            && until_ns.is_none()
            && !errors
            && min_latency_ns.is_none()
            && transport.is_none()
            && items.is_empty()
            && ids.is_empty()
            && answering.is_empty()
            && view.is_none()
    }

    /// Selection by the response needs a first pass.
    pub fn needs_answers(&self) -> bool {
        self.errors || self.min_latency_ns.is_some()
    }

    /// Conditions only messages can meet: damage never matches them.
    fn about_messages(&self) -> bool {
        !self.methods.is_empty()
            || !self.tools.is_empty()
            || !self.ids.is_empty()
            || !self.answering.is_empty()
            || self.needs_answers()
    }

    /// First pass: the request (item number) this response selects, if any.
    pub fn answer_selects(&self, item: &Item<'_>) -> Option<u64> {
        let answers = item.kind.answers()?;
        self.response_ok(item).then_some(answers.n)
    }

    fn response_ok(&self, item: &Item<'_>) -> bool {
        let is_error = item.kind.is_failure();
        let slow = match self.min_latency_ns {
            Some(min) => item.kind.latency_ns().is_some_and(|l| l >= min),
            None => true,
        };
        matches!(item.kind, Kind::Response { .. } | Kind::Error { .. })
            && (!self.errors || is_error)
            && slow
    }

    /// `selected`: the requests the first pass collected (empty when
    /// `needs_answers` is false).
    pub fn matches(&self, item: &Item<'_>, selected: &HashSet<u64>) -> bool {
        if let Kind::Flagged(_) = item.kind {
            if self.about_messages() {
                return false;
            }
        }
        if !self.methods.is_empty()
            && !item
                .kind
                .method()
                .is_some_and(|m| self.methods.iter().any(|x| x == m))
        {
            return false;
        }
        if !self.tools.is_empty() {
            let is_call = item.kind.method() == Some("tools/call");
            let tool = item.kind.subject();
            if !(is_call && tool.is_some_and(|t| self.tools.iter().any(|x| x == t))) {
                return false;
            }
        }
        let peers = [item.from, item.to];
        if !self.pids.is_empty() && !peers.iter().flatten().any(|p| self.pids.contains(&p.pid)) {
            return false;
        }
        if !self.comms.is_empty()
            && !peers
                .iter()
                .flatten()
                .any(|p| self.comms.iter().any(|c| *c == p.comm()))
        {
            return false;
        }
        if let Some(scoped) = &self.scoped_pids {
            if !peers.iter().flatten().any(|p| scoped.contains(&p.pid)) {
                return false;
            }
        }
        if !self.sessions.is_empty() && !item.session.is_some_and(|s| self.sessions.contains(&s.id))
        {
            return false;
        }
        if self.since_ns.is_some_and(|t| item.ts_ns < t)
            || self.until_ns.is_some_and(|t| item.ts_ns > t)
        {
            return false;
        }
        if !self.items.is_empty() && !self.items.contains(&item.n) {
            return false;
        }
        if !self.answering.is_empty()
            && !item
                .kind
                .answers()
                .is_some_and(|a| self.answering.contains(&a.n))
        {
            return false;
        }
        if !self.ids.is_empty() {
            let id = match &item.kind {
                Kind::Request { id, .. } | Kind::Response { id, .. } => Some(id.get()),
                Kind::Error { id, .. } => id.map(|i| i.get()),
                _ => None,
            };
            if !id.is_some_and(|id| self.ids.iter().any(|x| x == id)) {
                return false;
            }
        }
        if let Some(view) = &self.view {
            if !view_key(item).is_some_and(|k| view.contains(&k)) {
                return false;
            }
        }
        if let Some(family) = self.transport {
            if item.transport.map(|t| t.family()) != Some(family) {
                return false;
            }
        }
        if self.needs_answers() {
            return match item.kind {
                Kind::Request { .. } => selected.contains(&item.n),
                _ => self.response_ok(item),
            };
        }
        true
    }
}
