#!/usr/bin/env python3
"""The official Python SDK's client over HTTP/2 (httpx2 with http2 on) against the Go test server:
server/discover (the Go server answers -32601, so the client falls back to initialize), tools/list,
tools/call echo and big (over 1 MiB, sent as SSE). Exits non-zero unless every response was HTTP/2.

    py_h2_client.py URL CAFILE
"""

import ssl
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

versions: list[str] = []


async def on_response(resp: httpx2.Response) -> None:
    versions.append(resp.http_version)


async def main(url: str, cafile: str) -> int:
    ctx = ssl.create_default_context(cafile=cafile)
    async with httpx2.AsyncClient(http2=True, verify=ctx, event_hooks={"response": [on_response]},
                                  timeout=httpx2.Timeout(30, read=120)) as hc:
        # The SDK caps one SSE event at 1 MiB by default; the big result needs the cap lifted.
        async with Client(streamable_http_client(url, http_client=hc, max_sse_event_size=None)) as c:
            await c.list_tools()
            r = await c.call_tool("echo", {"text": "hello from python over h2"})
            assert r.content[0].text == "hello from python over h2"
            r = await c.call_tool("big", {})
            assert len(r.content[0].text) > 1 << 20
    print(f"py_h2_client: {len(versions)} responses, versions {sorted(set(versions))}", file=sys.stderr)
    return 0 if versions and set(versions) == {"HTTP/2"} else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2]))
