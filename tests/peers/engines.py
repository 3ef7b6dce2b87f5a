#!/usr/bin/env python3
"""Real engines over mcpspy's Parquet exports: DuckDB and ClickHouse (chDB, its
embedded build). Each question is answered in the engine's own SQL, and printed as
JSON on stdout for the Rust tests (tests/cli/exports.rs) to compare with mcpspy's.

  engines.py summary  --engine duckdb|chdb FILE...   the tables of `query --summary`
  engines.py captures --engine duckdb|chdb FILE...   rows per capture_id over the union
  engines.py columns  --engine duckdb|chdb FILE      each column's name and type, as read
  engines.py rows     --engine duckdb FILE           every row's main columns, in order

summary prints {"methods": [...], "sessions": [...], "outside_sessions": {...}} with the
fields and the meanings of `mcpspy query --summary --format json`: per method (and tool
of tools/call) the requests and notifications, responses, JSON-RPC errors, tool errors,
nearest-rank p50 and p95 and the max of the latencies in ms, and bytes; per session the
messages and flagged items; flagged items outside any session by reason.
"""
import argparse
import json
import sys

UNSEEN = "(response to an unseen request)"


def duckdb_query(sql, files):
    import duckdb

    con = duckdb.connect()
    rel = con.execute(sql.replace("SOURCE", "read_parquet($files)"), {"files": files})
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row)) for row in rel.fetchall()]


def chdb_query(sql, files):
    import chdb

    # One table of many files: their union.
    source = "(" + " UNION ALL ".join(f"SELECT * FROM file('{f}', Parquet)" for f in files) + ")"
    out = chdb.query(
        sql.replace("SOURCE", source) + " SETTINGS output_format_json_quote_64bit_integers = 0",
        "JSONEachRow",
    )
    text = out.data() if hasattr(out, "data") else str(out)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Nearest rank of a sorted list `l` (1-based in both engines), in ms.
DUCKDB_METHODS = f"""
SELECT coalesce(method, '{UNSEEN}') AS method, coalesce(tool, '') AS tool,
  count(*) FILTER (WHERE type IN ('request', 'notification')) AS count,
  count(*) FILTER (WHERE type IN ('response', 'error')) AS responses,
  count(*) FILTER (WHERE type = 'error') AS errors,
  count(*) FILTER (WHERE tool_error) AS tool_errors,
  list_sort(list(latency_ns) FILTER (WHERE latency_ns IS NOT NULL)) AS l,
  sum(size_bytes) AS bytes
FROM SOURCE WHERE type <> 'flagged' GROUP BY ALL
"""
DUCKDB_PERCENTILES = """
SELECT *, CASE WHEN len(l) = 0 THEN NULL ELSE l[greatest(1, ceil(0.50::DOUBLE * len(l)))::BIGINT] / 1e6 END AS p50_ms,
  CASE WHEN len(l) = 0 THEN NULL ELSE l[greatest(1, ceil(0.95::DOUBLE * len(l)))::BIGINT] / 1e6 END AS p95_ms,
  list_max(l) / 1e6 AS max_ms
FROM ({inner})
"""
CHDB_METHODS = f"""
SELECT method, tool, count, responses, errors, tool_errors,
  if(length(l) = 0, NULL, l[toUInt64(greatest(1, ceil(0.50 * length(l))))] / 1e6) AS p50_ms,
  if(length(l) = 0, NULL, l[toUInt64(greatest(1, ceil(0.95 * length(l))))] / 1e6) AS p95_ms,
  if(length(l) = 0, NULL, arrayMax(l) / 1e6) AS max_ms, bytes
FROM (
  SELECT ifNull(method, '{UNSEEN}') AS method, ifNull(tool, '') AS tool,
    countIf(type IN ('request', 'notification')) AS count,
    countIf(type IN ('response', 'error')) AS responses,
    countIf(type = 'error') AS errors,
    countIf(tool_error) AS tool_errors,
    arraySort(groupArray(latency_ns)) AS l,
    sum(size_bytes) AS bytes
  FROM SOURCE WHERE type != 'flagged' GROUP BY method, tool
)
"""
SESSIONS = """
SELECT session, sum(CASE WHEN type = 'flagged' THEN 0 ELSE 1 END) AS messages,
  sum(CASE WHEN type = 'flagged' THEN 1 ELSE 0 END) AS flagged
FROM SOURCE WHERE session IS NOT NULL GROUP BY session
"""
OUTSIDE = """
SELECT flag_reason AS reason, count(*) AS n FROM SOURCE
WHERE type = 'flagged' AND session IS NULL GROUP BY flag_reason
"""
CAPTURES = """
SELECT capture_id, count(*) AS rows, min(n) AS n_min, max(n) AS n_max FROM SOURCE GROUP BY capture_id
"""
ROWS = """
SELECT capture_id, n, epoch_ns(timestamp) AS timestamp_ns, ts_ns, type, method, subject, tool, id,
  direction, session, transport, from_pid, to_pid, http_session_id, http_status, request_n,
  latency_ns, tool_error, error_code, size_bytes, truncated, flag_reason, writer_pid,
  writer_ts_ns, writer_seqs, reader_pid, reader_ts_ns, reader_seqs, message
FROM SOURCE ORDER BY n
"""

METHOD_FIELDS = ["method", "tool", "count", "responses", "errors", "tool_errors",
                 "p50_ms", "p95_ms", "max_ms", "bytes"]


def summary(engine, files):
    if engine == "duckdb":
        rows = duckdb_query(DUCKDB_PERCENTILES.format(inner=DUCKDB_METHODS), files)
        run = duckdb_query
    else:
        rows = chdb_query(CHDB_METHODS, files)
        run = chdb_query
    methods = []
    for r in rows:
        row = {k: r[k] for k in METHOD_FIELDS}
        for k in ("p50_ms", "p95_ms", "max_ms"):
            row[k] = None if row[k] is None else float(row[k])
        for k in ("count", "responses", "errors", "tool_errors", "bytes"):
            row[k] = int(row[k])
        methods.append(row)
    # mcpspy orders by (method, tool) as strings: code point order.
    methods.sort(key=lambda r: (r["method"], r["tool"]))
    sessions = sorted(
        ({"session": int(r["session"]), "messages": int(r["messages"]), "flagged": int(r["flagged"])}
         for r in run(SESSIONS, files)),
        key=lambda r: r["session"],
    )
    outside = {r["reason"]: int(r["n"]) for r in run(OUTSIDE, files)}
    return {"methods": methods, "sessions": sessions, "outside_sessions": dict(sorted(outside.items()))}


def columns(engine, files):
    if engine == "duckdb":
        rows = duckdb_query("DESCRIBE SELECT * FROM SOURCE", files)
        return [{"name": r["column_name"], "type": r["column_type"]} for r in rows]
    rows = chdb_query("DESCRIBE TABLE SOURCE", files)
    return [{"name": r["name"], "type": r["type"]} for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("question", choices=["summary", "captures", "columns", "rows"])
    ap.add_argument("--engine", choices=["duckdb", "chdb"], required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.question == "summary":
        out = summary(a.engine, a.files)
    elif a.question == "columns":
        out = columns(a.engine, a.files)
    else:
        if a.question == "rows" and a.engine != "duckdb":
            sys.exit("engines.py: rows is asked of duckdb only")
        sql = CAPTURES if a.question == "captures" else ROWS
        out = (duckdb_query if a.engine == "duckdb" else chdb_query)(sql, a.files)
        if a.question == "captures":
            out = sorted(({k: (v if k == "capture_id" else int(v)) for k, v in r.items()} for r in out),
                         key=lambda r: r["capture_id"])
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
