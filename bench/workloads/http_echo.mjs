// An MCP-shaped JSON-RPC exchange over HTTP/1.1 keep-alive (or HTTPS with
// --tls KEY CERT): a client POSTs tools/call requests, the server answers
// each with a JSON body. Prints messages per second (requests + responses).
//   node http_echo.mjs [--messages N] [--tls KEY CERT]
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';

const args = process.argv.slice(2);
const flag = (name, dflt) => { const i = args.indexOf(name); return i < 0 ? dflt : args[i + 1]; };
const messages = Number(flag('--messages', 5000));
const tlsAt = args.indexOf('--tls');
const tls = tlsAt >= 0 ? { key: fs.readFileSync(args[tlsAt + 1]), cert: fs.readFileSync(args[tlsAt + 2]) } : null;
const mod = tls ? https : http;

const handler = (req, res) => {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    const msg = JSON.parse(Buffer.concat(parts).toString());
    const body = JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { content: [{ type: 'text', text: msg.params.arguments.text }] } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
};
const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const agent = new mod.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  const text = 'x'.repeat(100);
  const post = (id) => new Promise((resolve, reject) => {
    const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text } } });
    const req = mod.request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.on('data', () => {});
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(body);
  });
  const start = process.hrtime.bigint();
  for (let i = 0; i < messages; i++) await post(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ messages: 2 * messages, seconds, msgs_per_s: 2 * messages / seconds }));
  agent.destroy();
  server.close();
});
