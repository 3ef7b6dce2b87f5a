#!/usr/bin/env python3
"""A real MCP client built with the official Python SDK (PyPI `mcp` 2.x), for mcpspy's tests.

It runs one fixed scenario against tests/peers/py_server.py and logs every JSON-RPC message it sent
and received, exactly as on the wire, to OUT/client.jsonl (format: tests/peers/wirelog.py).

Transports (--transport):
  stdio       spawns py_server.py with the SDK's stdio_client (two pipes)
  socketpair  spawns py_server.py with one end of socket.socketpair() as its stdin and stdout;
              this side speaks the SDK's stdio framing over the other end
  http        Streamable HTTP to --url (the SDK's streamable_http_client)
  sse         the deprecated HTTP+SSE transport to --url (the SDK's sse_client)
  https is http/sse with an https:// URL; --cafile names the certificate to trust.
  --http2     Streamable HTTP through an httpx2 client with HTTP/2 on (ALPN h2)

Scenario: connect (--mode auto sends server/discover first; --mode legacy sends initialize),
tools/list, echo("hello"), echo(unicode), blob(N) for each --blob (default 200000), fail()
(isError result), rpc_error() (JSON-RPC error), an unknown tool, a resources/read of a missing
resource (JSON-RPC error), slow(5) with progress; in legacy mode ask_client() (the server sends
roots/list and sampling/createMessage to this client) and ping; in modern mode confirm("the plan"),
a multi-round call (two input_required results, each answered on a retry). Exits 0 when every step answered as
expected.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp.client.sse as sdk_sse
import mcp.client.stdio as sdk_stdio
import mcp.client.streamable_http as sdk_streamable_http
import mcp_types as types
from anyio.abc import UNIXSocketStream
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wirelog import WireLog, proc_comm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
UNICODE_TEXT = "héllo ✓ 日本 🚀"
WIRE: WireLog | None = None


# --- Logging the exact wire text -------------------------------------------------------------
# Received: in this process, the SDK's client transports (stdio, streamable HTTP, SSE) are the only
# callers of jsonrpc_message_adapter.validate_json, and they pass it the exact text of one message
# (a stdio line without its "\n", an SSE event's data, a JSON response body).
# Sent over HTTP: httpx2 serialises the json= body in httpx2._content.encode_json; we log that body.
# Sent over stdio: the SDK writes message.model_dump_json(by_alias=True, exclude_unset=True) + "\n";
# the write-stream wrapper below logs the same serialisation of the same object.


class _LoggingAdapter:
    def __init__(self, real: Any) -> None:
        self._real = real

    def validate_json(self, data: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        assert WIRE is not None
        WIRE.message("recv", text)
        return self._real.validate_json(data, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install_wire_hooks() -> None:
    adapter = _LoggingAdapter(types.jsonrpc_message_adapter)
    types.jsonrpc_message_adapter = adapter  # stdio and sse look it up on the module at call time
    sdk_streamable_http.jsonrpc_message_adapter = adapter  # imported by name there

    import httpx2._content as content

    real_encode_json = content.encode_json

    def encode_json(obj: Any):  # type: ignore[no-untyped-def]
        headers, stream = real_encode_json(obj)
        assert WIRE is not None
        WIRE.message("sent", b"".join(stream).decode("utf-8"))
        return headers, stream

    content.encode_json = encode_json

    # The legacy SSE client caps one SSE event at 1 MiB and, unlike streamable_http_client, has no
    # parameter to lift it; big tool results need it lifted.
    real_sse_within_origin = sdk_sse.sse_within_origin

    def sse_within_origin(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        kwargs.setdefault("max_event_size", None)
        return real_sse_within_origin(*args, **kwargs)

    sdk_sse.sse_within_origin = sse_within_origin


def stdio_wire_text(sm: SessionMessage) -> str:
    return sm.message.model_dump_json(by_alias=True, exclude_unset=True)


class _LoggingWriteStream:
    """Wraps a stdio transport's write stream; logs each message as the transport will write it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage) -> None:
        assert WIRE is not None
        WIRE.message("sent", stdio_wire_text(item))
        await self._inner.send(item)

    async def __aenter__(self) -> "_LoggingWriteStream":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@asynccontextmanager
async def logged_stdio(params: StdioServerParameters):
    async with stdio_client(params) as (read_stream, write_stream):
        yield read_stream, _LoggingWriteStream(write_stream)


@asynccontextmanager
async def socketpair_stdio(command: list[str], timeout: float):
    """The SDK's stdio framing over a Unix socket pair: the server's fds 0 and 1 are one socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen(command, stdin=theirs, stdout=theirs, start_new_session=True)
    theirs.close()
    stream = await UNIXSocketStream.from_socket(ours)
    read_w, read_r = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_w, write_r = anyio.create_memory_object_stream[SessionMessage](0)

    async def reader() -> None:
        buf = b""
        async with read_w:
            try:
                while True:
                    chunk = await stream.receive(65536)
                    lines = (buf + chunk).split(b"\n")
                    buf = lines.pop()
                    for line in lines:
                        await read_w.send(sdk_stdio._parse_line(line.decode("utf-8")))
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

    async def writer() -> None:
        async with write_r:
            async for sm in write_r:
                await stream.send((stdio_wire_text(sm) + "\n").encode("utf-8"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        try:
            yield read_r, _LoggingWriteStream(write_w)
        finally:
            with anyio.CancelScope(shield=True):
                await write_w.aclose()
                await anyio.sleep(0.05)
                await stream.send_eof()  # the server reads EOF on stdin and exits
                deadline = time.monotonic() + timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    await anyio.sleep(0.02)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                await stream.aclose()
            tg.cancel_scope.cancel()


# --- The scenario ------------------------------------------------------------------------------


class Steps:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.ok = True

    def check(self, name: str, cond: bool, detail: str = "") -> None:
        self.results.append({"step": name, "ok": bool(cond), "detail": detail})
        if not cond:
            self.ok = False
            print(f"py_client: step {name} FAILED {detail}", file=sys.stderr)


async def sampling_cb(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="hi from py_client"), model="mcpspy-fake-model"
    )


ELICITED: list[str] = []


async def elicitation_cb(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    ELICITED.append(params.message)
    return types.ElicitResult(action="accept", content={"ok": True})


async def roots_cb(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/mcpspy-root", name="tmp")])


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def scenario(client: Client, args: argparse.Namespace, steps: Steps) -> None:
    steps.check("connect", client.protocol_version is not None, f"protocol {client.protocol_version}")
    tools = await client.list_tools()
    names = sorted(t.name for t in tools.tools)
    steps.check("tools/list", {"echo", "blob", "fail", "rpc_error", "slow", "ask_client"} <= set(names), str(names))

    r = await client.call_tool("echo", {"text": "hello"})
    steps.check("echo", text_of(r) == "hello" and not r.is_error)
    r = await client.call_tool("echo", {"text": UNICODE_TEXT})
    steps.check("echo-unicode", text_of(r) == UNICODE_TEXT, repr(text_of(r)))

    for size in args.blob:
        t0 = time.monotonic()
        r = await client.call_tool("blob", {"size": size})
        got = text_of(r)
        steps.check(f"blob-{size}", len(got) == size and got.isascii(), f"{len(got)} bytes in {time.monotonic() - t0:.2f}s")

    r = await client.call_tool("fail", {})
    steps.check("fail", r.is_error, text_of(r))

    try:
        await client.call_tool("rpc_error", {})
        steps.check("rpc_error", False, "no JSON-RPC error")
    except MCPError as e:
        steps.check("rpc_error", e.code == types.INVALID_PARAMS, f"{e.code} {e.message}")

    try:
        r = await client.call_tool("no_such_tool", {})
        steps.check("unknown-tool", r.is_error, text_of(r))
    except MCPError as e:
        steps.check("unknown-tool", True, f"JSON-RPC error {e.code} {e.message}")

    try:
        await client.read_resource("res://mcpspy/missing")
        steps.check("missing-resource", False, "no JSON-RPC error")
    except MCPError as e:
        steps.check("missing-resource", True, f"{e.code} {e.message}")

    try:
        await client.session.send_request(types.Request(method="mcpspy/no_such_method", params=None), types.EmptyResult)
        steps.check("unknown-method", False, "no JSON-RPC error")
    except MCPError as e:
        steps.check("unknown-method", e.code == types.METHOD_NOT_FOUND, f"{e.code} {e.message}")

    progress: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    r = await client.call_tool("slow", {"steps": 5}, progress_callback=on_progress)
    # A Streamable HTTP server in JSON response mode has no stream to send progress on.
    want = [] if args.server_json_response else [1, 2, 3, 4, 5]
    steps.check("slow-progress", text_of(r) == "done after 5 steps" and progress == want, str(progress))

    if client.session.initialize_result is None:  # 2026-07-28: a multi-round call
        r = await client.call_tool("confirm", {"item": "the plan"})
        steps.check("confirm", text_of(r) == "confirmed the plan" and len(ELICITED) == 2, f"{text_of(r)} {ELICITED}")

    if client.session.initialize_result is not None:  # legacy handshake: server-initiated requests work
        r = await client.call_tool("ask_client", {})
        steps.check("ask_client", text_of(r) == "roots=1 sampled=hi from py_client", text_of(r))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ping is deprecated at 2026-07-28; this is a legacy session
            await client.send_ping()
        steps.check("ping", True)


async def run(args: argparse.Namespace) -> int:
    global WIRE
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "client.jsonl")
    WIRE = WireLog(log_path, "client", args.transport)
    install_wire_hooks()
    server_info_path = os.path.join(args.out, "server.info.json")
    if os.path.exists(server_info_path) and args.transport in ("stdio", "socketpair"):
        os.unlink(server_info_path)
    server_cmd = [args.python, os.path.join(HERE, "py_server.py"), "--info", server_info_path]

    if args.transport == "stdio":
        transport: Any = logged_stdio(StdioServerParameters(command=server_cmd[0], args=server_cmd[1:]))
    elif args.transport == "socketpair":
        transport = socketpair_stdio(server_cmd, timeout=5.0)
    else:
        # The SDK's own default HTTP clients; they trust SSL_CERT_FILE, so a self-signed server
        # certificate needs no client of our own (which could pool connections differently).
        if args.cafile:
            os.environ["SSL_CERT_FILE"] = os.path.abspath(args.cafile)
        if args.transport == "http":
            # The SDK caps one SSE event at 1 MiB by default; big tool results need the cap lifted.
            http_client = None
            if args.http2:
                import httpx2

                http_client = httpx2.AsyncClient(http2=True, timeout=httpx2.Timeout(30, read=args.timeout))
            transport = sdk_streamable_http.streamable_http_client(args.url, http_client=http_client,
                                                                   max_sse_event_size=None)
        else:
            transport = sse_client(args.url)

    server_info: dict[str, Any] = {}
    if args.server_info:
        with open(args.server_info) as f:
            server_info = json.load(f)
    args.server_json_response = bool(server_info.get("json_response"))
    steps = Steps()
    t0 = time.monotonic()
    with anyio.fail_after(args.timeout):
        async with Client(
            transport,
            mode=args.mode,
            read_timeout_seconds=args.timeout,
            sampling_callback=sampling_cb,
            elicitation_callback=elicitation_cb,
            list_roots_callback=roots_cb,
            client_info=types.Implementation(name="mcpspy-peer-py-client", version="1.0.0"),
        ) as client:
            if args.transport in ("stdio", "socketpair"):
                with open(server_info_path) as f:
                    WIRE.peer(json.load(f))
            elif args.server_info:
                WIRE.peer(server_info)
            await scenario(client, args, steps)
            mode = "legacy (initialize)" if client.session.initialize_result is not None else "modern (server/discover)"
            proto = client.protocol_version
    elapsed = time.monotonic() - t0
    summary = WIRE.summary(ok=steps.ok, steps=steps.results, handshake=mode, protocol_version=proto,
                           seconds=round(elapsed, 3))
    print(f"py_client: {args.transport} {mode} protocol {proto}: {summary['messages']} messages, "
          f"{'OK' if steps.ok else 'FAILED'} in {elapsed:.2f}s; log: {log_path}", file=sys.stderr)
    return 0 if steps.ok else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory for client.jsonl (and server.info.json)")
    p.add_argument("--transport", choices=["stdio", "socketpair", "http", "sse"], default="stdio")
    p.add_argument("--mode", default="auto", help="auto (server/discover, falls back to initialize) or legacy")
    p.add_argument("--url", help="server URL for http/sse, e.g. http://127.0.0.1:8000/mcp")
    p.add_argument("--cafile", help="certificate to trust for https URLs")
    p.add_argument("--http2", action="store_true", help="http: an HTTP/2 client (httpx2 with http2=True)")
    p.add_argument("--server-info", help="http/sse: the server's --info file, copied into the log")
    p.add_argument("--blob", type=int, action="append", help="blob sizes to fetch (repeatable; default 200000)")
    p.add_argument("--timeout", type=float, default=120.0, help="bound on the whole scenario, seconds")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs py_server.py (stdio)")
    args = p.parse_args()
    if args.blob is None:
        args.blob = [200000]
    if args.transport in ("http", "sse") and not args.url:
        p.error("--url is required for http and sse")
    sys.exit(anyio.run(run, args))


if __name__ == "__main__":
    main()
