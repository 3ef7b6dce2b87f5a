//! The writer's side of the seal: it chains each block as the block is
//! sealed, records a checkpoint at every commit (signed with --sign), and
//! writes the manifest at a clean end.

use super::keys::{fingerprint, SigningIdentity};
use super::seal::{self, BlockRow, Commit, Hash, Manifest};
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

pub struct Sealer {
    capture_id: String,
    chain: Hash,
    sealed_blocks: i64,
    commits: i64,
    last_commit: Option<Hash>,
    signer: Option<SigningIdentity>,
}

impl Sealer {
    /// Starts the seal of a new capture: its tables, its id, its feature.
    pub fn start(conn: &Connection) -> Result<Sealer> {
        conn.execute_batch(seal::SQL)
            .context("creating the seal's tables")?;
        let capture_id = seal::new_capture_id().context("making the capture's id")?;
        Ok(Sealer {
            chain: seal::chain_start(&capture_id),
            capture_id,
            sealed_blocks: 0,
            commits: 0,
            last_commit: None,
            signer: None,
        })
    }

    /// The `meta` rows the seal adds: (key, value).
    pub fn meta(&self) -> [(&'static str, String); 2] {
        [
            ("capture_id", self.capture_id.clone()),
            (
                super::schema::FEATURES_KEY,
                serde_json::json!([seal::FEATURE]).to_string(),
            ),
        ]
    }

    pub fn sign_with(&mut self, signer: SigningIdentity) {
        self.signer = Some(signer);
    }

    /// A block that will not change again joins the chain.
    pub fn seal_block(&mut self, conn: &Connection, digest: Hash, block_id: i64) -> Result<()> {
        self.chain = seal::chain_next(&self.chain, &digest);
        conn.prepare_cached(
            "INSERT INTO seal_blocks (block_id, digest, chain) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![block_id, &digest[..], &self.chain[..]])?;
        self.sealed_blocks += 1;
        Ok(())
    }

    /// A checkpoint of what the file holds now (inside the transaction that
    /// is about to commit): `records` in all, the growing block's digest.
    pub fn checkpoint(
        &mut self,
        conn: &Connection,
        records: u64,
        growing: Option<Hash>,
        ktime_ns: u64,
        at: String,
    ) -> Result<Hash> {
        let commit = Commit {
            commit_no: self.commits,
            ktime_ns: ktime_ns as i64,
            at,
            sealed_blocks: self.sealed_blocks,
            records: records as i64,
            chain: self.chain,
            growing,
            tables: seal::tables_digest(conn)?,
        };
        let digest = commit.digest(self.last_commit.as_ref());
        let signature = self.signer.as_ref().map(|s| s.sign(&digest));
        commit.insert(conn, &digest, signature.as_ref().map(|s| &s[..]))?;
        self.commits += 1;
        self.last_commit = Some(digest);
        Ok(digest)
    }

    /// The manifest of a clean end, after the last checkpoint (which has no
    /// growing block): written, and signed with --sign.
    pub fn manifest(&self, conn: &Connection, counts: Counts) -> Result<()> {
        let meta = |key: &str| -> Result<String> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .unwrap_or_default())
        };
        let tables = seal::tables_digest(conn)?;
        let m = Manifest {
            format: seal::MANIFEST_FORMAT.into(),
            capture_id: self.capture_id.clone(),
            started_at: meta("started_at")?,
            ended_at: meta("ended_at")?,
            end_reason: meta("end_reason")?,
            hostname: meta("hostname")?,
            kernel_release: meta("kernel_release")?,
            tool_version: meta("tool_version")?,
            attach_rung: meta("attach_rung")?,
            filters: meta("filters")?,
            blocks: self.sealed_blocks as u64,
            records: counts.records,
            events: counts.events,
            payload_bytes: counts.payload_bytes,
            chain: hex::encode(self.chain),
            tables: hex::encode(tables),
            last_commit: self.last_commit.map(hex::encode).unwrap_or_default(),
            final_counters: meta("final_counters")?,
        };
        let bytes = serde_json::to_vec(&m)?;
        let signature = self.signer.as_ref().map(|s| s.sign(&bytes));
        let public_key = self.signer.as_ref().map(SigningIdentity::public_key);
        conn.execute(
            "INSERT INTO seal_manifest (id, manifest, signature, public_key, key_fingerprint)
             VALUES (1, ?1, ?2, ?3, ?4)",
            params![
                bytes,
                signature.as_ref().map(|s| &s[..]),
                public_key.as_ref().map(|k| &k[..]),
                public_key.as_ref().map(|k| fingerprint(k))
            ],
        )?;
        Ok(())
    }
}

/// What the manifest counts, as the writer counted it.
pub struct Counts {
    pub records: u64,
    pub events: u64,
    pub payload_bytes: u64,
}

/// The digest of a block as the writer just wrote it.
pub fn block_digest(row: &BlockRow<'_>, streams: &foldhash::HashMap<i64, u64>) -> Hash {
    let mut rows: Vec<(i64, i64)> = streams.iter().map(|(s, n)| (*s, *n as i64)).collect();
    rows.sort_unstable();
    seal::block_digest(row, &rows)
}
