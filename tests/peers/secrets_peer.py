#!/usr/bin/env python3
"""An MCP session that carries planted secrets, for the tests of `mcpspy redact`.

Both ends are the official Python SDK (PyPI `mcp` 2.x). The secrets come from a JSON file made by
the test (--secrets: {"notes": [texts that hold a secret], "bearer": s, "api_key": s, "password": s})
and travel everywhere a real secret does:

  server  --role server --secrets FILE [--transport http --port 0 --info FILE [--certfile C --keyfile K]]
          plus any extra arguments (the test puts secrets on the command line: --api-key S, TOKEN=S);
          tools: remember(note) returns "remembered: <note>"; config() returns every note in its
          text; resource config://secrets holds every note, and the password as {"password": ...}.
  client  --role client --secrets FILE [--url URL --cafile C] [--server-arg ARG ...]
          stdio (spawns the server) or Streamable HTTP to --url with `Authorization: Bearer <bearer>`
          and `X-Api-Key: <api_key>` on every request; calls remember() with each note, config(),
          and reads config://secrets.
          (--server-args FILE, a JSON list, keeps the server's secret arguments off this command line.)
  session --role session --secrets FILE --out DIR [--server-args FILE]
          the three in turn: stdio, Streamable HTTP, and Streamable HTTP over TLS (a self-signed
          certificate from make_cert.sh), each server started with the --server-args arguments.
Exits 0 when every answer came back as expected.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path: str):  # type: ignore[no-untyped-def]
    with open(path) as f:
        return json.load(f)


def server_args(args: argparse.Namespace) -> list[str]:
    return load(args.server_args) if args.server_args else []


def server(args: argparse.Namespace) -> None:
    secrets = load(args.secrets)
    notes = secrets["notes"]
    mcp = MCPServer("mcpspy-secrets-server", version="1.0.0", log_level="WARNING")

    @mcp.tool()
    def remember(note: str) -> str:
        """Echo the note back."""
        return f"remembered: {note}"

    @mcp.tool()
    def config() -> str:
        """The server's configuration, secrets and all."""
        return "\n".join(f"setting{i} = {s}" for i, s in enumerate(notes))

    @mcp.resource("config://secrets")
    def secret_config() -> str:
        return json.dumps({"notes": notes, "password": secrets["password"]})

    if args.transport == "stdio":
        mcp.run("stdio")
        return
    sys.argv = [sys.argv[0]]  # py_server's HTTP serving reads no arguments of ours
    sys.path.insert(0, HERE)
    import py_server  # noqa: E402  (its uvicorn setup: TLS, graceful exit, --info)

    py_server.mcp = mcp
    ns = argparse.Namespace(transport="http", host="127.0.0.1", port=args.port, json_response=False,
                            certfile=args.certfile, keyfile=args.keyfile, info=args.info)
    anyio.run(py_server.serve_http, ns)


async def client(args: argparse.Namespace) -> int:
    secrets = load(args.secrets)
    if args.url:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        if args.cafile:
            os.environ["SSL_CERT_FILE"] = os.path.abspath(args.cafile)
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {secrets['bearer']}",
                                               "X-Api-Key": secrets["api_key"]})
        transport = streamable_http_client(args.url, http_client=http)
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--role", "server", "--secrets", args.secrets]
        transport = stdio_client(StdioServerParameters(command=cmd[0], args=cmd[1:] + server_args(args)))
    ok = True
    with anyio.fail_after(120):
        async with Client(transport, mode="legacy",
                          client_info=types.Implementation(name="mcpspy-secrets-client", version="1.0.0")) as c:
            notes = secrets["notes"]
            for note in notes:
                r = await c.call_tool("remember", {"note": note})
                text = r.content[0].text if r.content and isinstance(r.content[0], types.TextContent) else ""
                ok &= text == f"remembered: {note}"
            r = await c.call_tool("config", {})
            text = r.content[0].text if r.content and isinstance(r.content[0], types.TextContent) else ""
            ok &= all(n in text for n in notes)
            res = await c.read_resource("config://secrets")
            body = res.contents[0].text if res.contents else ""
            ok &= json.loads(body)["notes"] == notes
    print(f"secrets_peer: client {'OK' if ok else 'FAILED'}", file=sys.stderr)
    return 0 if ok else 1


def session(args: argparse.Namespace) -> int:
    """stdio, then HTTP, then HTTPS: one client run each, a fresh server each."""
    sys.path.insert(0, HERE)
    from http_session import stop, wait_for_info  # noqa: E402

    me = [sys.executable, os.path.abspath(__file__), "--secrets", args.secrets]
    if args.server_args:
        me += ["--server-args", args.server_args]
    rc = subprocess.call(me + ["--role", "client"])
    tls_dir = os.path.join(args.out, "tls")
    subprocess.run([os.path.join(HERE, "make_cert.sh"), tls_dir], check=True, stdout=subprocess.DEVNULL)
    cert, key = os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem")
    for tls in ([], ["--certfile", cert, "--keyfile", key]):
        info = os.path.join(args.out, f"server{len(tls)}.info.json")
        if os.path.exists(info):
            os.unlink(info)
        server = subprocess.Popen(me + ["--role", "server", "--transport", "http", "--info", info, *tls,
                                        *server_args(args)], stdin=subprocess.DEVNULL)
        try:
            url = wait_for_info(info, server, 30)["url"]
            rc |= subprocess.call(me + ["--role", "client", "--url", url] + (["--cafile", cert] if tls else []))
        finally:
            stop(server, signal.SIGTERM)
    return rc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", choices=["server", "client", "session"], required=True)
    p.add_argument("--out", help="session: a folder for the certificate and the servers' info")
    p.add_argument("--secrets", required=True)
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--info")
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    p.add_argument("--url")
    p.add_argument("--cafile")
    p.add_argument("--server-args", help="a JSON list of arguments for the servers (secrets on their command line)")
    args, extra = p.parse_known_args()
    if args.role == "server":
        # Extra arguments (secrets on the command line) are accepted and ignored.
        del extra
        server(args)
    elif args.role == "session":
        sys.exit(session(args))
    else:
        sys.exit(anyio.run(client, args))


if __name__ == "__main__":
    main()
