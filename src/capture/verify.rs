//! `mcpspy verify`: whether a sealed capture is whole and unaltered since it
//! was written, by whom it was signed, and whether it lost anything. Every
//! digest is recomputed from the file; nothing is taken on trust but the
//! public key the auditor names.

use super::keys::{fingerprint, signature_holds};
use super::seal::{self, BlockRow, Commit, Hash, Manifest};
use super::verify_deep::{deep, Deep};
use super::{CaptureError, CaptureReader};
use crate::event::counter;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Hash every block's data (without it, only the structure is checked:
    /// the chain, the commits, the tables, the record numbers; readers check
    /// the data of the blocks they read).
    pub data: bool,
    /// Also decompress every block and check every stream's offsets.
    pub deep: bool,
    /// The public key (32 bytes) the capture must be signed with.
    pub key: Option<[u8; 32]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Verdict {
    /// Whole and unaltered; `lossy` when the kernel or the recorder lost records.
    Intact { lossy: bool },
    /// Whole and unaltered up to its last commit; the recording did not end
    /// cleanly (killed), so there is no manifest.
    NotFinished { commit: i64, at: String },
    /// Something does not match its seal: `failures` says what, first first.
    Altered,
    /// A capture without a seal (schema v1 with no `seal` feature).
    Unsealed,
}

/// What `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    /// What failed, in the order found; the first is the first to fail.
    pub failures: Vec<String>,
    /// What was checked and held.
    pub checks: Vec<String>,
    /// What the seal vouches for (from the sealed tables), when it holds.
    pub vouched: BTreeMap<String, String>,
    /// The losses the drop ledger and the file record.
    pub losses: Vec<String>,
    /// The fingerprint of the key whose signatures hold.
    pub signed_by: Option<String>,
}

impl Report {
    fn new() -> Report {
        Report {
            verdict: Verdict::Altered,
            failures: Vec::new(),
            checks: Vec::new(),
            vouched: BTreeMap::new(),
            losses: Vec::new(),
            signed_by: None,
        }
    }

    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    pub(super) fn check(
        &mut self,
        ok: bool,
        held: impl Into<String>,
        failed: impl FnOnce() -> String,
    ) {
        if ok {
            self.checks.push(held.into());
        } else {
            self.fail(failed());
        }
    }
}

struct StoredCommit {
    commit: Commit,
    digest: Vec<u8>,
    signature: Option<Vec<u8>>,
}

/// A row of `seal_blocks`: block id, digest, chain link.
type ChainRow = (i64, Vec<u8>, Vec<u8>);

struct StoredManifest {
    bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

impl CaptureReader {
    /// The seal's structure, without hashing the blocks' data: what readers
    /// check when they open a capture, and `info` shows.
    pub fn seal_state(&self) -> Result<Report, CaptureError> {
        if let Some(r) = self.seal.get() {
            return Ok(r.clone());
        }
        let r = self.verify(&VerifyOptions::default())?;
        Ok(self.seal.get_or_init(|| r).clone())
    }

    /// Why the seal's structure is broken (its first failure), if it is.
    pub fn seal_broken(&self) -> Option<String> {
        match self.seal_state() {
            Ok(state) => state
                .failures
                .first()
                .filter(|_| state.verdict == Verdict::Altered)
                .cloned(),
            Err(e) => Some(format!("it cannot be read: {e}")),
        }
    }

    pub fn verify(&self, opts: &VerifyOptions) -> Result<Report, CaptureError> {
        let mut r = Report::new();
        let meta = self.meta()?;
        let sealed = meta
            .get(super::schema::FEATURES_KEY)
            .is_some_and(|f| super::schema::lists(f, seal::FEATURE));
        if !sealed {
            r.verdict = Verdict::Unsealed;
            r.fail(
                "the capture has no seal (it was made by an mcpspy without one, or the seal was \
                 removed): nothing about it can be verified"
                    .into(),
            );
            return Ok(r);
        }
        let Some(capture_id) = meta.get("capture_id") else {
            r.fail("meta has no capture_id: the seal's chain has no start".into());
            return Ok(r);
        };
        let commits = self.load_commits().map_err(|e| self.damaged(e))?;
        let chain = self.load_chain().map_err(|e| self.damaged(e))?;
        let manifest = self.load_manifest().map_err(|e| self.damaged(e))?;
        let key = self.signing_key(opts, &meta, manifest.as_ref(), &mut r);
        let last = self.check_commits(&commits, key.as_ref(), opts, &mut r);
        let hash_data = opts.data || opts.deep;
        let totals = self.check_blocks(capture_id, &chain, last, hash_data, &mut r)?;
        if let Some(last) = last {
            let tables = seal::tables_digest(&self.conn).map_err(|e| self.damaged(e))?;
            r.check(
                tables == last.commit.tables,
                "the tables (meta, streams, processes, drops) match the last commit",
                || {
                    format!(
                        "the tables (meta, streams, processes, drops) differ from commit {}: a row \
                         was changed, added or removed",
                        last.commit.commit_no
                    )
                },
            );
            r.check(
                totals.records == last.commit.records as u64,
                format!("{} records, as the last commit says", totals.records),
                || {
                    format!(
                        "the file holds {} records, the last commit {}",
                        totals.records, last.commit.records
                    )
                },
            );
        }
        let ended = match (&manifest, last) {
            (Some(m), Some(last)) => self.check_manifest(m, last, &totals, key.as_ref(), &mut r),
            _ => None,
        };
        let finished = manifest.is_some();
        let lossy = self.check_losses(&meta, ended.as_ref(), &mut r)?;
        if opts.deep {
            let found: Deep = deep(self)?;
            for f in found.failures {
                r.fail(f);
            }
            if let Some(m) = &ended {
                r.check(
                    found.events == m.events,
                    format!(
                        "deep: {} ring-buffer records, as the manifest says",
                        found.events
                    ),
                    || {
                        format!(
                            "deep: the blocks hold {} ring-buffer records, the manifest {}",
                            found.events, m.events
                        )
                    },
                );
            }
            // A derived capture carries its first parent's kernel counts.
            let recorded = !meta.contains_key("derivation");
            if let Some(ends) = meta.get("stream_ends").filter(|_| recorded) {
                let (ok, said) = super::verify_deep::ends_accounted(ends, found.ends);
                r.check(ok, said.clone(), || format!("{said}: they do not add up"));
            }
            r.checks.extend(found.checks);
            r.losses.extend(found.losses);
        }
        if r.failures.is_empty() {
            for (k, label) in [
                ("capture_id", "capture id"),
                ("hostname", "host"),
                ("kernel_release", "kernel"),
                ("tool_version", "mcpspy version"),
                ("started_at", "started"),
                ("ended_at", "ended"),
                ("attach_rung", "attach point"),
                ("filters", "filters"),
                ("command_line", "command line"),
            ] {
                if let Some(v) = meta.get(k) {
                    r.vouched.insert(label.into(), v.clone());
                }
            }
            if let Some(m) = &manifest {
                r.vouched.insert(
                    "manifest digest".into(),
                    hex::encode(seal::sha256(&m.bytes)),
                );
            }
            // The chain of parents, the latest first.
            let steps = self.derivation()?;
            if !steps.is_empty() {
                let chain: Vec<String> = steps
                    .iter()
                    .rev()
                    .map(|s| {
                        format!(
                            "by {} from capture {} (file sha256 {}{})",
                            s.op,
                            s.parent.capture_id.as_deref().unwrap_or("without an id"),
                            s.parent.file_sha256,
                            s.parent
                                .manifest_sha256
                                .as_deref()
                                .map_or(String::new(), |m| format!(", manifest {m}"))
                        )
                    })
                    .collect();
                r.vouched.insert("derived".into(), chain.join("; then "));
            }
            r.verdict = match (finished, last) {
                (true, _) => Verdict::Intact { lossy },
                (false, Some(l)) => Verdict::NotFinished {
                    commit: l.commit.commit_no,
                    at: l.commit.at.clone(),
                },
                (false, None) => Verdict::Altered,
            };
        }
        Ok(r)
    }

    fn load_commits(&self) -> rusqlite::Result<Vec<StoredCommit>> {
        let mut stmt = self.conn.prepare(
            "SELECT commit_no, ktime_ns, at, sealed_blocks, records, chain, growing, tables,
                    digest, signature FROM seal_commits ORDER BY commit_no",
        )?;
        let hash = |b: Vec<u8>| -> Hash { b.try_into().unwrap_or([0; 32]) };
        let rows = stmt.query_map([], |row| {
            Ok(StoredCommit {
                commit: Commit {
                    commit_no: row.get(0)?,
                    ktime_ns: row.get(1)?,
                    at: row.get(2)?,
                    sealed_blocks: row.get(3)?,
                    records: row.get(4)?,
                    chain: hash(row.get(5)?),
                    growing: row.get::<_, Option<Vec<u8>>>(6)?.map(hash),
                    tables: hash(row.get(7)?),
                },
                digest: row.get(8)?,
                signature: row.get(9)?,
            })
        })?;
        rows.collect()
    }

    fn load_chain(&self) -> rusqlite::Result<Vec<ChainRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT block_id, digest, chain FROM seal_blocks ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    }

    fn load_manifest(&self) -> rusqlite::Result<Option<StoredManifest>> {
        self.conn
            .query_row(
                "SELECT manifest, signature, public_key FROM seal_manifest WHERE id = 1",
                [],
                |r| {
                    Ok(StoredManifest {
                        bytes: r.get(0)?,
                        signature: r.get(1)?,
                        public_key: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    /// The key signatures must hold for: the one the auditor named, else
    /// the one the capture names (which proves consistency, not identity).
    fn signing_key(
        &self,
        opts: &VerifyOptions,
        meta: &BTreeMap<String, String>,
        manifest: Option<&StoredManifest>,
        r: &mut Report,
    ) -> Option<Vec<u8>> {
        let named = manifest.and_then(|m| m.public_key.clone()).or_else(|| {
            meta.get("signer_public_key")
                .and_then(|k| hex::decode(k).ok())
        });
        match (opts.key, named) {
            (Some(want), Some(named)) if named != want => {
                r.fail(format!(
                    "signed by {}, not by the key given ({})",
                    fingerprint(&named),
                    fingerprint(&want)
                ));
                Some(want.to_vec())
            }
            (Some(want), None) => {
                r.fail(format!(
                    "the capture is not signed; the key given ({}) signed nothing here",
                    fingerprint(&want)
                ));
                None
            }
            (Some(want), Some(_)) => Some(want.to_vec()),
            (None, named) => named,
        }
    }

    /// The commits form a chain, each signed when a key is known; returns
    /// the last one.
    fn check_commits<'c>(
        &self,
        commits: &'c [StoredCommit],
        key: Option<&Vec<u8>>,
        opts: &VerifyOptions,
        r: &mut Report,
    ) -> Option<&'c StoredCommit> {
        let mut prev: Option<Hash> = None;
        let mut signed = 0;
        for (i, c) in commits.iter().enumerate() {
            if c.commit.commit_no != i as i64 {
                r.fail(format!(
                    "commit {i} is missing (the next is numbered {})",
                    c.commit.commit_no
                ));
                return None;
            }
            let digest = c.commit.digest(prev.as_ref());
            if c.digest != digest {
                r.fail(format!(
                    "commit {i} (at {}) does not match its digest",
                    c.commit.at
                ));
                return None;
            }
            // Signatures are checked with the data; readers' structural
            // check at every open does not pay for them.
            match (key.filter(|_| opts.data || opts.deep), &c.signature) {
                (Some(k), Some(sig)) if !signature_holds(k, &digest, sig) => {
                    r.fail(format!(
                        "the signature of commit {i} does not hold for {}",
                        fingerprint(k)
                    ));
                    return None;
                }
                (Some(_), Some(_)) => signed += 1,
                (Some(_), None) if opts.key.is_some() => {
                    r.fail(format!("commit {i} is not signed"));
                    return None;
                }
                _ => {}
            }
            prev = Some(digest);
        }
        let last = commits.last();
        match last {
            None => r.fail("no commit checkpoint: the seal holds nothing".into()),
            Some(l) => r.checks.push(format!(
                "{} commits chained, the last at {}{}",
                commits.len(),
                l.commit.at,
                if signed > 0 { ", each signed" } else { "" }
            )),
        }
        if signed > 0 {
            r.signed_by = key.map(|k| fingerprint(k));
        }
        last
    }

    /// Every block is in the chain, in record order, with no record number
    /// missing or repeated; the last may be the block still growing.
    fn check_blocks(
        &self,
        capture_id: &str,
        chain: &[ChainRow],
        last: Option<&StoredCommit>,
        hash_data: bool,
        r: &mut Report,
    ) -> Result<Totals, CaptureError> {
        let mut t = Totals::default();
        let mut link = seal::chain_start(capture_id);
        let sql = format!(
            "SELECT block_id, first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, {}
             FROM blocks ORDER BY first_seq, block_id",
            if hash_data { "data" } else { "x''" }
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.damaged(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.damaged(e))?;
        let mut index = 0usize;
        while let Some(row) = rows.next().map_err(|e| self.damaged(e))? {
            let data = row
                .get_ref(6)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(|e| self.damaged(e))?;
            let b = BlockRow {
                block_id: row.get(0).map_err(|e| self.damaged(e))?,
                first_seq: row.get(1).map_err(|e| self.damaged(e))?,
                records: row.get(2).map_err(|e| self.damaged(e))?,
                first_ts_ns: row.get(3).map_err(|e| self.damaged(e))?,
                last_ts_ns: row.get(4).map_err(|e| self.damaged(e))?,
                raw_bytes: row.get(5).map_err(|e| self.damaged(e))?,
                data,
            };
            if b.first_seq as u64 != t.records {
                r.fail(format!(
                    "block {} starts at record {}, where record {} was due: a block is missing, \
                     repeated or out of order",
                    b.block_id, b.first_seq, t.records
                ));
                return Ok(t);
            }
            t.records += b.records.max(0) as u64;
            t.blocks += 1;
            let computed = hash_data
                .then(|| self.block_streams(b.block_id))
                .transpose()?
                .map(|streams| seal::block_digest(&b, &streams));
            match chain.get(index) {
                Some((id, d, c)) => {
                    // Without the data, the chain is checked on the stored digests.
                    let digest = computed.unwrap_or_else(|| d[..].try_into().unwrap_or([0; 32]));
                    link = seal::chain_next(&link, &digest);
                    if *id != b.block_id || d[..] != digest || c[..] != link {
                        r.fail(format!(
                            "block {} (records {}..{}) does not match its seal: its data or its \
                             row was changed, or blocks were swapped",
                            b.block_id,
                            b.first_seq,
                            b.first_seq + b.records
                        ));
                        return Ok(t);
                    }
                }
                None if index == chain.len()
                    && last.and_then(|l| l.commit.growing).is_some()
                    && (computed.is_none() || last.and_then(|l| l.commit.growing) == computed) =>
                {
                    r.checks.push(format!(
                        "block {} (growing at the last commit) matches it",
                        b.block_id
                    ));
                }
                None => {
                    r.fail(format!(
                        "block {} (records {}..{}) is not in the seal: it was added",
                        b.block_id,
                        b.first_seq,
                        b.first_seq + b.records
                    ));
                    return Ok(t);
                }
            }
            index += 1;
        }
        if let Some((id, _, _)) = chain.get(index) {
            r.fail(format!("block {id} of the seal is missing from the file"));
            return Ok(t);
        }
        if let Some(l) = last {
            r.check(
                l.commit.sealed_blocks as usize == chain.len() && l.commit.chain == link,
                format!(
                    "blocks chained in record order, none missing: {}",
                    chain.len()
                ),
                || "the chain of blocks does not end where the last commit says".into(),
            );
            if l.commit.growing.is_some() && index == chain.len() {
                r.fail("the block growing at the last commit is missing".into());
            }
        }
        t.chain = link;
        Ok(t)
    }

    fn block_streams(&self, block_id: i64) -> Result<Vec<(i64, i64)>, CaptureError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT stream_id, records FROM block_streams WHERE block_id = ?1 ORDER BY stream_id",
            )
            .map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map(params![block_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.damaged(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.damaged(e))
    }

    /// The manifest against the last commit and the chain; returns it.
    fn check_manifest(
        &self,
        m: &StoredManifest,
        last: &StoredCommit,
        t: &Totals,
        key: Option<&Vec<u8>>,
        r: &mut Report,
    ) -> Option<Manifest> {
        let Ok(parsed) = serde_json::from_slice::<Manifest>(&m.bytes) else {
            r.fail("the manifest does not parse".into());
            return None;
        };
        let holds = parsed.format == seal::MANIFEST_FORMAT
            && parsed.last_commit == hex::encode(&last.digest)
            && parsed.chain == hex::encode(t.chain)
            && parsed.tables == hex::encode(last.commit.tables)
            && parsed.records == t.records
            && parsed.blocks == t.blocks
            && last.commit.growing.is_none();
        r.check(
            holds,
            "the manifest matches the last commit and the chain",
            || "the manifest does not match the last commit or the chain".into(),
        );
        match (key, &m.signature) {
            (Some(k), Some(sig)) => r.check(
                signature_holds(k, &m.bytes, sig),
                format!("the manifest's signature holds for {}", fingerprint(k)),
                || {
                    format!(
                        "the manifest's signature does not hold for {}",
                        fingerprint(k)
                    )
                },
            ),
            (Some(k), None) => r.fail(format!("the manifest is not signed by {}", fingerprint(k))),
            _ => {}
        }
        Some(parsed)
    }

    /// The drop ledger against what the file holds; returns whether anything
    /// was lost.
    fn check_losses(
        &self,
        meta: &BTreeMap<String, String>,
        ended: Option<&Manifest>,
        r: &mut Report,
    ) -> Result<bool, CaptureError> {
        // Stream ends are counted apart from the ledger (feature stream_ends).
        let ends_lost = meta
            .get("stream_ends")
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
            .and_then(|v| v["ring_full"].as_u64())
            .unwrap_or(0);
        if ends_lost > 0 {
            r.losses.push(format!(
                "{ends_lost} stream-end records lost to a full ring: connection closes (and the \
                 cancellations they show) may be missing"
            ));
        }
        let drops = self.drops()?;
        let mut sums = [0u64; counter::COUNT];
        let mut user_lost = 0;
        for d in &drops {
            for (s, c) in sums.iter_mut().zip(d.counts) {
                *s += c;
            }
            user_lost += d.user_lost;
            if d.losses() > 0 {
                r.losses.push(format!(
                    "{}..{} ns: {} lost to a full ring ({} bytes), {} unreadable, {} untracked \
                     streams, {} truncated calls ({} bytes), {} unstorable",
                    d.start_ktime_ns,
                    d.end_ktime_ns,
                    d.counts[counter::RING_FULL],
                    d.counts[counter::RING_FULL_BYTES],
                    d.counts[counter::READ_FAILED],
                    d.counts[counter::MAP_FULL],
                    d.counts[counter::TRUNCATED],
                    d.counts[counter::TRUNCATED_BYTES],
                    d.user_lost
                ));
            }
        }
        let steps = self.derivation()?;
        if let (Some(m), false) = (ended, steps.is_empty()) {
            super::derived::check_derivation(&steps, m.events, r);
        }
        if let Some(m) = ended.filter(|_| steps.is_empty()) {
            let finals = meta
                .get("final_counters")
                .and_then(|f| serde_json::from_str::<BTreeMap<String, u64>>(f).ok());
            let stored = m.events;
            // Exec records of processes with no captured traffic are left
            // out on purpose, and counted.
            let skipped = finals
                .as_ref()
                .and_then(|f| f.get("execs_not_stored").copied())
                .unwrap_or(0);
            let submitted = sums[counter::EVENTS];
            r.check(
                submitted == stored + user_lost + skipped,
                format!(
                    "complete: the kernel submitted {submitted} records; the file holds {stored}, \
                     {skipped} execs of processes not recorded were left out, and {user_lost} \
                     could not be stored"
                ),
                || {
                    format!(
                        "incomplete: the kernel submitted {submitted} records, but the file holds \
                         {stored}, {skipped} execs were left out and {user_lost} could not be stored"
                    )
                },
            );
            let agrees = finals.is_some_and(|f| {
                counter::NAMES
                    .iter()
                    .zip(sums)
                    .all(|(n, s)| f.get(*n) == Some(&s))
                    && f.get("user_lost") == Some(&user_lost)
            });
            r.check(
                agrees,
                "the drop ledger adds up to the final counters",
                || "the drop ledger does not add up to the final counters".into(),
            );
        }
        Ok(counter::losses(&sums) + user_lost > 0 || ends_lost > 0)
    }
}

/// What the blocks add up to.
#[derive(Default)]
pub(super) struct Totals {
    pub records: u64,
    pub blocks: u64,
    pub chain: Hash,
}
