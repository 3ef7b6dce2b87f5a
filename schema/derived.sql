-- Feature "derived" (schema/README.md): the capture was made from another
-- by `mcpspy slice` or `mcpspy redact`, and says which and how.
--
-- The meta key `derivation` holds a JSON array of steps, the oldest first
-- (a slice of a redaction has two). Each step is an object:
--   op               "slice" or "redact"
--   parent           {"capture_id", "file_sha256" (SHA-256 of the parent
--                    file's bytes), "manifest_sha256" (of its seal's
--                    manifest; null when it has none), "records"}
--   records_kept     the parent's records this file holds
--   records_left_out the parent's records it does not (whole streams of
--                    no MCP message, or a slice's other records)
--   params           what the step was asked: a slice's selection, a
--                    redaction's rules version and digest and its count per rule
--   at, tool_version when, and by which mcpspy
-- The key that redact uses is never stored.

-- A slice keeps each selected message's streams from their start, so that
-- they decode exactly as in the parent; the messages it selected are listed
-- here, and readers show only those. A message is named by its first copy's
-- first record (its number in this file) and the stream offset where its
-- text starts. Covered by the seal with the other tables.
CREATE TABLE derived_view (
    seq    INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (seq, offset)
) STRICT, WITHOUT ROWID;
