-- Feature "seal" (schema/README.md): the capture proves that it is whole
-- and unaltered since it was written. Every digest is SHA-256; the exact
-- bytes each covers are documented in schema/README.md, "The seal".

-- One row per sealed block: its digest (its row in `blocks` and its rows in
-- `block_streams`), and the chain: the hash of the previous link and this
-- digest. The first link starts from the capture's id.
CREATE TABLE seal_blocks (
    block_id INTEGER PRIMARY KEY,     -- blocks.block_id
    digest   BLOB NOT NULL,           -- 32 bytes
    chain    BLOB NOT NULL            -- 32 bytes
) STRICT;

-- One row per commit of the recorder (about once a second): what the file
-- held at that moment. Each commit's digest covers the one before, so the
-- rows form a chain of their own; with --sign, each is signed.
CREATE TABLE seal_commits (
    commit_no     INTEGER PRIMARY KEY, -- 0, 1, 2, ...
    ktime_ns      INTEGER NOT NULL,    -- CLOCK_MONOTONIC at the commit
    at            TEXT NOT NULL,       -- wall clock at the commit, RFC 3339 UTC
    sealed_blocks INTEGER NOT NULL,    -- blocks in the chain
    records       INTEGER NOT NULL,    -- records in the file, the growing block's included
    chain         BLOB NOT NULL,       -- the chain's head (its start, with no sealed block)
    growing       BLOB,                -- digest of the block still growing, if any
    tables        BLOB NOT NULL,       -- digest of the tables (meta, streams, processes, drops, growing block_streams)
    digest        BLOB NOT NULL,       -- of this row and the previous commit's digest
    signature     BLOB                 -- Ed25519 over `digest`, with --sign
) STRICT;

-- Written once, when the recording ends cleanly: the manifest (JSON, its
-- exact bytes), and with --sign the Ed25519 signature over those bytes and
-- the public key that made it.
CREATE TABLE seal_manifest (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    manifest        BLOB NOT NULL,
    signature       BLOB,              -- 64 bytes
    public_key      BLOB,              -- 32 bytes
    key_fingerprint TEXT               -- sha256:<hex of the public key's SHA-256>
) STRICT;
