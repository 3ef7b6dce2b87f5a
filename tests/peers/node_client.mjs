#!/usr/bin/env node
// A real MCP client built with the official Node SDK (@modelcontextprotocol/sdk), driving the
// reference server @modelcontextprotocol/server-everything, for mcpspy's tests.
//
//   node tests/peers/node_client.mjs --out DIR [--transport stdio|http] [--url URL] [--cafile PEM]
//                                    [--server-info FILE] [--echo-size N] [--timeout SECONDS]
//
// stdio (default): spawns `node .../server-everything/dist/index.js stdio` with the SDK's
// StdioClientTransport. http: the SDK's StreamableHTTPClientTransport to --url (start the server
// with tests/peers/node_server.mjs); https URLs trust --cafile.
//
// Scenario: initialize; wait for the server's own roots/list request (it sends it 350 ms after
// notifications/initialized) and answer it; tools/list; echo("hello"); echo(unicode); get-sum(2, 3);
// trigger-long-running-operation with progress; trigger-sampling-request (the server sends
// sampling/createMessage, answered here); get-tiny-image; an unknown tool; ping; optionally an echo
// of --echo-size bytes; close.
//
// Every JSON-RPC message sent and received is logged to DIR/node_client.jsonl exactly as on the
// wire (same line format as tests/peers/wirelog.py): stdio logs the string handed to the server's
// stdin.write() (the SDK writes JSON.stringify(message) + "\n") and every line of the bytes read
// from its stdout; http logs each request body and each JSON body or SSE data field received.
import fs from "node:fs";
import path from "node:path";
import https from "node:https";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, "node", "package.json"));
const sdk = (p) => import(require.resolve(`@modelcontextprotocol/sdk/${p}`));
const { Client } = await sdk("client/index.js");
const { StdioClientTransport } = await sdk("client/stdio.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { CreateMessageRequestSchema, ListRootsRequestSchema, CallToolResultSchema } = await sdk("types.js");

const UNICODE_TEXT = "héllo ✓ 日本 🚀";
const EVERYTHING = path.join(path.dirname(require.resolve("@modelcontextprotocol/server-everything/package.json")), "dist", "index.js");

const { values: args } = parseArgs({
  options: {
    out: { type: "string" },
    transport: { type: "string", default: "stdio" },
    url: { type: "string" },
    cafile: { type: "string" },
    "server-info": { type: "string" },
    "echo-size": { type: "string", default: "0" },
    timeout: { type: "string", default: "60" },
  },
});
if (!args.out) {
  console.error("node_client: --out DIR is required");
  process.exit(2);
}
if (args.transport === "http" && !args.url) {
  console.error("node_client: --url is required for http");
  process.exit(2);
}
const timeoutMs = Number(args.timeout) * 1000;
setTimeout(() => {
  console.error(`node_client: timed out after ${args.timeout}s`);
  process.exit(3);
}, timeoutMs).unref();

// --- the wire log ------------------------------------------------------------------------------
fs.mkdirSync(args.out, { recursive: true });
const logPath = path.join(args.out, "node_client.jsonl");
const logFd = fs.openSync(logPath, "w");
const writeLog = (obj) => fs.writeSync(logFd, JSON.stringify(obj) + "\n");
const pending = { sent: new Map(), recv: new Map() };
const counts = new Map();
const bytesByDir = { sent: 0, recv: 0 };
let seq = 0;
let wireProgress = 0;
writeLog({ event: "start", role: "client", pid: process.pid, comm: fs.readFileSync(`/proc/${process.pid}/comm`, "utf8").trim(), argv: process.argv, transport: args.transport, t: Date.now() / 1000 });

function logMessage(dir, text) {
  let kind = "invalid", method = null, id = null;
  try {
    const m = JSON.parse(text);
    if (Array.isArray(m)) kind = "batch";
    else if ("method" in m) { kind = "id" in m ? "request" : "notification"; method = m.method; id = m.id ?? null; }
    else if ("error" in m) { kind = "error"; id = m.id; }
    else if ("result" in m) { kind = "response"; id = m.id; }
  } catch { /* logged as invalid */ }
  if (kind === "request") pending[dir].set(JSON.stringify(id), method);
  if (kind === "response" || kind === "error") {
    const other = dir === "sent" ? "recv" : "sent";
    method = pending[other].get(JSON.stringify(id)) ?? null;
    pending[other].delete(JSON.stringify(id));
  }
  if (dir === "recv" && method === "notifications/progress") wireProgress++;
  const bytes = Buffer.byteLength(text, "utf8");
  bytesByDir[dir] += bytes;
  const key = JSON.stringify([dir, kind, method ?? ""]);
  counts.set(key, (counts.get(key) ?? 0) + 1);
  writeLog({ event: "message", seq: ++seq, t: Date.now() / 1000, dir, transport: args.transport, kind, method, id, bytes, text });
}

// Splits a byte stream into lines exactly as they were on the wire (without the "\n").
function lineSplitter(onLine) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    let i;
    while ((i = buf.indexOf(10)) >= 0) {
      onLine(buf.subarray(0, i).toString("utf8"));
      buf = buf.subarray(i + 1);
    }
  };
}

class LoggedStdioTransport extends StdioClientTransport {
  async start() {
    const started = super.start();
    const proc = this._process;
    // Prepend, so a message is logged before the SDK handles it (and maybe answers it).
    proc.stdout.prependListener("data", lineSplitter((line) => logMessage("recv", line)));
    const write = proc.stdin.write.bind(proc.stdin);
    proc.stdin.write = (data, ...rest) => {
      const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
      for (const line of text.split("\n").slice(0, -1)) logMessage("sent", line);
      return write(data, ...rest);
    };
    await started;
  }
}

// Streamable HTTP: log the request bodies we POST and the JSON or SSE bodies we get back.
function loggingFetch(agent) {
  return async (url, init = {}) => {
    if (init.body !== undefined) {
      const body = typeof init.body === "string" ? init.body : Buffer.from(init.body).toString("utf8");
      logMessage("sent", body);
    }
    const res = await (agent ? nodeFetchWithAgent(url, init, agent) : fetch(url, init));
    const type = res.headers.get("content-type") ?? "";
    if (!res.body) return res;
    if (type.includes("text/event-stream")) {
      const [mine, theirs] = res.body.tee();
      drainSse(mine);
      return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    if (type.includes("application/json")) {
      const text = await res.text();
      if (text.length) logMessage("recv", text);
      return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    return res;
  };
}

async function drainSse(stream) {
  const decoder = new TextDecoder();
  let buf = "";
  let data = [];
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + (buf.startsWith("\r\n", i) ? 2 : 1));
      if (line === "") {
        // Events with empty data (the server's resumability priming events) carry no message.
        if (data.join("\n") !== "") logMessage("recv", data.join("\n"));
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
  }
}

// fetch() has no per-request CA option in Node 20; go through https.request with our agent.
function nodeFetchWithAgent(url, init, agent) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: init.method ?? "GET", headers: Object.fromEntries(new Headers(init.headers ?? {})), agent }, (res) => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers)) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
      const body = res.statusCode === 204 || res.statusCode === 202 && res.headers["content-length"] === "0" ? null : ReadableStreamFrom(res);
      resolve(new Response(body, { status: res.statusCode, statusText: res.statusMessage, headers }));
    });
    req.on("error", reject);
    if (init.signal) {
      const abort = () => req.destroy(new Error("aborted"));
      init.signal.addEventListener("abort", abort, { once: true });
      req.on("close", () => init.signal.removeEventListener("abort", abort));
    }
    if (init.body !== undefined) req.write(init.body);
    req.end();
  });
}

function ReadableStreamFrom(nodeStream) {
  return new ReadableStream({
    start(controller) {
      nodeStream.on("data", (c) => controller.enqueue(new Uint8Array(c)));
      nodeStream.on("end", () => controller.close());
      nodeStream.on("error", (e) => controller.error(e));
    },
    cancel() { nodeStream.destroy(); },
  });
}

// --- the scenario ------------------------------------------------------------------------------
const steps = [];
let ok = true;
function check(step, cond, detail = "") {
  steps.push({ step, ok: !!cond, detail });
  if (!cond) { ok = false; console.error(`node_client: step ${step} FAILED ${detail}`); }
}
const textOf = (r) => (r.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("");

const client = new Client({ name: "mcpspy-peer-node-client", version: "1.0.0" }, { capabilities: { sampling: {}, roots: { listChanged: true } } });
let rootsAsked;
const rootsListed = new Promise((resolve) => { rootsAsked = resolve; });
client.setRequestHandler(ListRootsRequestSchema, async () => {
  rootsAsked();
  return { roots: [{ uri: "file:///tmp/mcpspy-root", name: "tmp" }] };
});
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  role: "assistant", content: { type: "text", text: "hi from node_client" }, model: "mcpspy-fake-model",
}));

let transport;
if (args.transport === "stdio") {
  transport = new LoggedStdioTransport({ command: process.execPath, args: [EVERYTHING, "stdio"], stderr: "inherit" });
} else {
  const agent = args.url.startsWith("https:") ? new https.Agent({ ca: args.cafile ? fs.readFileSync(args.cafile) : undefined, keepAlive: true }) : null;
  transport = new StreamableHTTPClientTransport(new URL(args.url), { fetch: loggingFetch(agent) });
}

const t0 = Date.now();
await client.connect(transport);
const serverPid = args.transport === "stdio" ? transport.pid : null;
if (serverPid) {
  let comm = null;
  try { comm = fs.readFileSync(`/proc/${serverPid}/comm`, "utf8").trim(); } catch { /* gone */ }
  writeLog({ event: "peer", role: "server", pid: serverPid, comm, argv: [process.execPath, EVERYTHING, "stdio"] });
} else if (args["server-info"]) {
  writeLog({ event: "peer", ...JSON.parse(fs.readFileSync(args["server-info"], "utf8")) });
}
check("connect", client.getServerVersion()?.name === "mcp-servers/everything", JSON.stringify(client.getServerVersion()));

const rootsInTime = await Promise.race([rootsListed.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
check("roots/list from server", rootsInTime);

const tools = await client.listTools();
const names = tools.tools.map((t) => t.name);
check("tools/list", ["echo", "get-sum", "trigger-long-running-operation", "trigger-sampling-request", "get-tiny-image"].every((n) => names.includes(n)), names.join(","));

let r = await client.callTool({ name: "echo", arguments: { message: "hello" } });
check("echo", textOf(r) === "Echo: hello", textOf(r));
r = await client.callTool({ name: "echo", arguments: { message: UNICODE_TEXT } });
check("echo-unicode", textOf(r) === `Echo: ${UNICODE_TEXT}`, textOf(r));
r = await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
check("get-sum", textOf(r).includes("5"), textOf(r));

// The SDK hands progress to onprogress asynchronously and drops what comes after the response has
// been handled (the last one, often), so count the notifications on the wire.
const progress = [];
const progressBefore = wireProgress;
r = await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 0.5, steps: 5 } }, CallToolResultSchema, {
  onprogress: (p) => progress.push(p.progress),
  timeout: timeoutMs,
});
check("long-running-progress", wireProgress - progressBefore === 5 && progress.length >= 1, `${wireProgress - progressBefore} on the wire, onprogress saw ${progress.join(",")}`);

r = await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "say hi", maxTokens: 10 } });
check("sampling", textOf(r).includes("hi from node_client"), textOf(r).slice(0, 80));

r = await client.callTool({ name: "get-tiny-image", arguments: {} });
check("tiny-image", (r.content ?? []).some((c) => c.type === "image" && c.data.length > 0));

try {
  r = await client.callTool({ name: "no_such_tool", arguments: {} });
  check("unknown-tool", r.isError === true, textOf(r));
} catch (e) {
  check("unknown-tool", true, `JSON-RPC error ${e.code} ${e.message}`);
}

await client.ping();
check("ping", true);

const echoSize = Number(args["echo-size"]);
if (echoSize > 0) {
  const big = "x".repeat(echoSize);
  r = await client.callTool({ name: "echo", arguments: { message: big } }, CallToolResultSchema, { timeout: timeoutMs });
  check(`echo-${echoSize}`, textOf(r) === `Echo: ${big}`, `${textOf(r).length} chars`);
}

if (args.transport === "http" && transport.sessionId) await transport.terminateSession();
await client.close();
const seconds = (Date.now() - t0) / 1000;
const byMethod = [...counts.entries()].sort().map(([k, count]) => { const [dir, kind, method] = JSON.parse(k); return { dir, kind, method: method || null, count }; });
const unanswered = Object.fromEntries(Object.entries(pending).map(([d, m]) => [d, [...m.values()].sort()]));
writeLog({ event: "summary", messages: seq, by_method: byMethod, bytes: bytesByDir, unanswered, ok, steps, seconds });
fs.closeSync(logFd);
console.error(`node_client: ${args.transport} ${ok ? "OK" : "FAILED"}: ${seq} messages in ${seconds.toFixed(2)}s; log: ${logPath}`);
process.exit(ok ? 0 : 1);
