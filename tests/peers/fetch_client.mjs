// An MCP client over Streamable HTTP written with nothing but fetch: it runs under Bun (and as a
// `bun build --compile` program) and Deno, whose TLS mcpspy records without OpenSSL's symbols.
//   bun fetch_client.mjs URL [BLOB_SIZE]      (PAUSE_MS: wait before the first request;
//                                              BLOB_TOOL: the big result's tool, default blob;
//                                              REPEAT: echo calls, default 1)
// Sends initialize, notifications/initialized, tools/list, tools/call echo and tools/call blob,
// carrying Mcp-Session-Id; prints one line per answer; exits 1 on any HTTP or JSON-RPC error.
const argv = globalThis.Deno ? Deno.args : process.argv.slice(2);
const env = (k) => (globalThis.Deno ? Deno.env.get(k) : process.env[k]);
const url = argv[0];
const blobSize = Number(argv[1] || 0);
const pause = Number(env("PAUSE_MS") || 0);
const blobTool = env("BLOB_TOOL") || "blob";
const repeat = Number(env("REPEAT") || 1);
let session = null;
let id = 0;

async function rpc(method, params, notification = false) {
  const body = notification ? { jsonrpc: "2.0", method, params } : { jsonrpc: "2.0", id: ++id, method, params };
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  if (session) headers["mcp-session-id"] = session;
  const r = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  session = r.headers.get("mcp-session-id") || session;
  const text = await r.text();
  if (!r.ok) throw new Error(`${method}: HTTP ${r.status} ${text.slice(0, 200)}`);
  // A JSON body, or an SSE stream whose last message answers the request.
  const sse = (r.headers.get("content-type") || "").includes("text/event-stream");
  const answer = sse
    ? text.split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5))).pop()
    : !notification && JSON.parse(text);
  if (!notification && (answer.error || answer.id !== id)) throw new Error(`${method}: ${text.slice(0, 200)}`);
  console.log(`${method}: HTTP ${r.status}, ${text.length} bytes`);
}

if (pause) await new Promise((r) => setTimeout(r, pause));
await rpc("initialize", {
  protocolVersion: "2025-06-18",
  capabilities: {},
  clientInfo: { name: "mcpspy-fetch-client", version: "1" },
});
await rpc("notifications/initialized", {}, true);
await rpc("tools/list", {});
for (let i = 0; i < repeat; i++) {
  await rpc("tools/call", { name: "echo", arguments: { text: "hello over TLS" } });
}
if (blobSize) await rpc("tools/call", { name: blobTool, arguments: { size: blobSize } });
