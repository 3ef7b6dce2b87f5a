#!/usr/bin/env python3
"""A client that cancels a tool call by closing its HTTP/1.1 connection.

MCP 2026-07-28 cancels a request over HTTP by closing its response stream,
and over HTTP/1.1 that means closing the connection. This client speaks
Streamable HTTP with the standard library's http.client (over the system's
OpenSSL for https URLs): it initializes, calls the server's `slow` tool
with a progress token on a connection of its own, reads the first event of
the answer's stream and closes that connection. It writes the calls it
sent, one JSON object per line, to LOG.

Usage: cancel_client.py URL CAFILE LOG
"""
import http.client
import json
import ssl
import sys
import urllib.parse

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def connect(url: urllib.parse.SplitResult, cafile: str) -> http.client.HTTPConnection:
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        return http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
    return http.client.HTTPConnection(url.hostname, url.port)


def post(conn, path, msg, session, log):  # type: ignore[no-untyped-def]
    headers = dict(HEADERS)
    if session:
        headers["Mcp-Session-Id"] = session
    body = json.dumps(msg)
    conn.request("POST", path, body, headers)
    log.write(body + "\n")
    return conn.getresponse()


def main() -> None:
    url, cafile, log_path = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(log_path, "w") as log:
        conn = connect(url, cafile)
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "cancel-client", "version": "1"}}
        resp = post(conn, url.path, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, None, log)
        session = resp.getheader("Mcp-Session-Id")
        resp.read()
        resp = post(conn, url.path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session, log)
        resp.read()
        conn.close()
        slow = connect(url, cafile)
        call = {"name": "slow", "arguments": {"steps": 1000}, "_meta": {"progressToken": "p1"}}
        resp = post(slow, url.path, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}, session, log)
        assert resp.getheader("Content-Type", "").startswith("text/event-stream"), resp.getheaders()
        while not resp.fp.readline().startswith(b"data:"):
            pass
        # The call is under way: closing its connection cancels it.
        slow.close()
        print("cancelled the slow call after its first event", file=sys.stderr)


if __name__ == "__main__":
    main()
