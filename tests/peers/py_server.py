#!/usr/bin/env python3
"""A real MCP server built with the official Python SDK (PyPI `mcp` 2.x), for mcpspy's tests.

Transports:
  stdio (default)              newline-delimited JSON on stdin/stdout (or whatever fds 0/1 are,
                               e.g. one end of a socket pair)
  --transport http             Streamable HTTP under uvicorn at http(s)://127.0.0.1:PORT/mcp,
                               SSE response mode by default, --json-response for application/json
  --transport sse              the deprecated HTTP+SSE transport: GET /sse, POST /messages/
  --certfile/--keyfile         serve HTTP or SSE over TLS
  --wirelog FILE               HTTP: log every JSON-RPC message as the server received and sent it
                               (request bodies; JSON and SSE response bodies), tests/peers/wirelog.py
  --http2                      Streamable HTTP under hypercorn instead, which speaks HTTP/2 (ALPN h2)
                               with TLS

Tools: echo(text), blob(size), fail(), rpc_error(), slow(steps), ask_client(), confirm(item).
blob(size) returns a text of exactly `size` ASCII bytes: 64-byte blocks, each the block number in
16 hex digits followed by 48 letters, so a reader can tell which part of a large result it sees.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import warnings

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

SERVER_NAME = "mcpspy-peer-py"
BLOB_BLOCK_TAIL = "ABCDEFGHIJKLMNOPQRSTUVWXabcdefghijklmnopqrstuvwx"  # 48 bytes
assert len(BLOB_BLOCK_TAIL) == 48

mcp = MCPServer(SERVER_NAME, version="1.0.0", log_level="WARNING")


def blob_text(size: int) -> str:
    """Exactly `size` ASCII bytes; none of them needs escaping in JSON."""
    blocks = size // 64 + 1
    text = "".join(f"{i:016x}{BLOB_BLOCK_TAIL}" for i in range(blocks))
    return text[:size]


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool(structured_output=False)  # the text once, not again as structuredContent
def blob(size: int) -> str:
    """Return exactly `size` bytes of ASCII text."""
    if size < 0 or size > 256 * 1024 * 1024:
        raise ToolError(f"size out of range: {size}")
    return blob_text(size)


@mcp.tool()
def fail() -> str:
    """Always fails: the result has isError=true (a tool error, not a JSON-RPC error)."""
    raise ToolError("fail() always fails")


@mcp.tool()
def rpc_error() -> str:
    """Always answers with a JSON-RPC error object (code -32602, with data)."""
    raise MCPError(code=types.INVALID_PARAMS, message="rpc_error() always errors", data={"peer": SERVER_NAME})


@mcp.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Sends `steps` progress notifications (when the caller asked for progress), then answers."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}/{steps}")
        await anyio.sleep(0.01)
    return f"done after {steps} steps"


@mcp.tool()
async def ask_client(ctx: Context) -> str:
    """Sends the client two requests of its own (roots/list, then sampling/createMessage).

    Their JSON-RPC ids are the server's own and overlap the client's ids.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both features are deprecated at 2026-07-28
        roots = await ctx.session.list_roots()
        sampled = await ctx.session.create_message(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text="say hi"))],
            max_tokens=16,
        )
    text = sampled.content.text if isinstance(sampled.content, types.TextContent) else "?"
    return f"roots={len(roots.roots)} sampled={text}"


@mcp.tool()
async def confirm(item: str, ctx: Context) -> str | types.InputRequiredResult:
    """Asks the caller twice before it answers: a multi-round call of MCP 2026-07-28.

    Each question is an input_required result with a requestState; each answer comes back on a
    retry of the call under a new id.
    """
    answers = ctx.input_responses or {}

    def ask(key: str, message: str, state: str) -> types.InputRequiredResult:
        form = types.ElicitRequestFormParams(
            message=message,
            requested_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
        )
        return types.InputRequiredResult(input_requests={key: types.ElicitRequest(params=form)}, request_state=state)

    if "second" in answers:
        return f"confirmed {item}"
    if "first" in answers:
        return ask("second", f"Still {item}?", f"{item}/round-2")
    return ask("first", f"Go ahead with {item}?", f"{item}/round-1")


def write_info(path: str | None, extra: dict) -> None:
    """Who this process is, as the kernel will name it, for the tests' ground truth."""
    if not path:
        return
    with open(f"/proc/{os.getpid()}/comm") as f:
        comm = f.read().strip()
    info = {"role": "server", "pid": os.getpid(), "ppid": os.getppid(), "comm": comm, "argv": sys.argv, **extra}
    for fd in (0, 1):
        try:
            st = os.fstat(fd)
            info[f"fd{fd}_inode"] = st.st_ino
        except OSError:
            pass
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
        f.write("\n")
    os.replace(tmp, path)


def logged_app(app, path: str):  # type: ignore[no-untyped-def]
    """Wraps an ASGI app: each request body and each JSON or SSE response body goes to a WireLog."""
    from wirelog import WireLog

    log = WireLog(path, "server", "http")

    def bodies(text: str, sse: bool) -> list[str]:
        if not sse:
            return [text] if text.strip() else []
        # One message per event: its data lines joined by newlines.
        events = text.replace("\r\n", "\n").split("\n\n")
        datas = ["\n".join(l[5:].removeprefix(" ") for l in e.split("\n") if l.startswith("data:")) for e in events]
        return [d for d in datas if d.strip()]

    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await app(scope, receive, send)
        request = bytearray()
        response = {"body": bytearray(), "sse": False}

        async def rcv():  # type: ignore[no-untyped-def]
            m = await receive()
            if m["type"] == "http.request":
                request.extend(m.get("body", b""))
                if not m.get("more_body"):
                    for text in bodies(request.decode(), False):
                        log.message("recv", text)
            return m

        async def snd(m):  # type: ignore[no-untyped-def]
            if m["type"] == "http.response.start":
                ctype = dict(m.get("headers", [])).get(b"content-type", b"")
                response["sse"] = ctype.startswith(b"text/event-stream")
            elif m["type"] == "http.response.body":
                chunk = m.get("body", b"")
                # SSE events end in a blank line, with CRLF or LF line ends.
                response["body"].extend(chunk.replace(b"\r\n", b"\n") if response["sse"] else chunk)
                if response["sse"] and b"\n\n" in response["body"]:
                    # SSE streams stay open: log each event as it completes.
                    done, _, rest = bytes(response["body"]).rpartition(b"\n\n")
                    for text in bodies(done.decode() + "\n\n", True):
                        log.message("sent", text)
                    response["body"] = bytearray(rest)
                if not m.get("more_body"):
                    for text in bodies(response["body"].decode(), response["sse"]):
                        log.message("sent", text)
                    response["body"] = bytearray()
            await send(m)

        return await app(scope, rcv, snd)

    return wrapped


async def serve_http(args: argparse.Namespace) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        """Shuts down gracefully on SIGINT/SIGTERM and then exits 0 (uvicorn re-raises the signal)."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            old = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)

    if args.transport == "http":
        app = mcp.streamable_http_app(json_response=args.json_response, host=args.host)
        path = "/mcp"
    else:
        app = mcp.sse_app(host=args.host)
        path = "/sse"
    # Other scripts call this with a namespace of their own, without --wirelog.
    if getattr(args, "wirelog", None):
        app = logged_app(app, args.wirelog)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    scheme = "https" if args.certfile else "http"
    url = f"{scheme}://{args.host}:{port}{path}"
    # Callers that build their own arguments (tests/peers/secrets_peer.py) may not set http2.
    http2 = getattr(args, "http2", False)
    write_info(args.info, {"transport": args.transport, "url": url, "port": port, "json_response": args.json_response,
                           "http2": http2})
    if http2:
        await serve_hypercorn(app, sock, args)
        return
    config = uvicorn.Config(
        app,
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        timeout_graceful_shutdown=2,
    )
    server = Server(config)
    print(f"py_server: listening on {url}", file=sys.stderr, flush=True)
    await server.serve(sockets=[sock])


async def serve_hypercorn(app, sock: socket.socket, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """hypercorn offers h2 and http/1.1 by ALPN; it shuts down gracefully on SIGINT/SIGTERM."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.certfile, config.keyfile = args.certfile, args.keyfile
    config.graceful_timeout = 2
    stop = anyio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("py_server: serving with hypercorn (h2)", file=sys.stderr, flush=True)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (see --info for the one chosen)")
    p.add_argument("--json-response", action="store_true", help="Streamable HTTP: answer POSTs with application/json")
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    p.add_argument("--info", help="write pid, comm and (HTTP) url of this server as JSON to this file")
    p.add_argument("--wirelog", help="HTTP: log each JSON-RPC message received and sent to this JSONL file")
    p.add_argument("--http2", action="store_true", help="Streamable HTTP under hypercorn: HTTP/2 over TLS")
    args = p.parse_args()
    if args.http2 and (args.transport != "http" or not args.certfile):
        p.error("--http2 serves Streamable HTTP over TLS (--transport http, --certfile, --keyfile)")
    if bool(args.certfile) != bool(args.keyfile):
        p.error("--certfile and --keyfile go together")
    if args.transport == "stdio":
        write_info(args.info, {"transport": "stdio"})
        mcp.run("stdio")
    else:
        anyio.run(serve_http, args)


if __name__ == "__main__":
    main()
