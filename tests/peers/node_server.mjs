#!/usr/bin/env node
// Runs @modelcontextprotocol/server-everything in its streamableHttp mode, unchanged, but bound to
// 127.0.0.1 on a free port and optionally behind TLS, for mcpspy's tests.
//
//   node tests/peers/node_server.mjs --info FILE [--port 0] [--certfile cert.pem --keyfile key.pem]
//
// server-everything calls express's app.listen(PORT), which listens on every interface over plain
// HTTP. Before loading it, this wrapper makes node's http.createServer return an https server when
// a certificate is given, and makes listen() bind 127.0.0.1. When the server listens it writes FILE:
// {"role": "server", "pid", "comm", "url", "port", "tls"}. SIGINT or SIGTERM stop it.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, "node", "package.json"));
const { values: args } = parseArgs({
  options: {
    info: { type: "string" },
    port: { type: "string", default: "0" },
    certfile: { type: "string" },
    keyfile: { type: "string" },
  },
});
if (!args.info || !!args.certfile !== !!args.keyfile) {
  console.error("usage: node_server.mjs --info FILE [--port N] [--certfile PEM --keyfile PEM]");
  process.exit(2);
}
const tls = args.certfile ? { cert: fs.readFileSync(args.certfile), key: fs.readFileSync(args.keyfile) } : null;

const createServer = http.createServer;
http.createServer = (...a) => {
  const handler = a.find((x) => typeof x === "function");
  const server = tls ? https.createServer(tls, handler) : createServer.apply(http, a);
  const listen = server.listen.bind(server);
  server.listen = (port, ...rest) => {
    const cb = rest.find((x) => typeof x === "function");
    return listen(Number(port), "127.0.0.1", () => {
      const { port: actual } = server.address();
      const url = `${tls ? "https" : "http"}://127.0.0.1:${actual}/mcp`;
      const info = { role: "server", pid: process.pid, ppid: process.ppid, comm: fs.readFileSync(`/proc/${process.pid}/comm`, "utf8").trim(), argv: process.argv, transport: "http", url, port: actual, tls: !!tls };
      fs.writeFileSync(args.info + ".tmp", JSON.stringify(info) + "\n");
      fs.renameSync(args.info + ".tmp", args.info);
      console.error(`node_server: server-everything listening on ${url}`);
      cb?.();
    });
  };
  return server;
};

process.env.PORT = args.port;
process.on("SIGTERM", () => process.exit(0));
const everything = path.dirname(require.resolve("@modelcontextprotocol/server-everything/package.json"));
await import(path.join(everything, "dist", "transports", "streamableHttp.js"));
