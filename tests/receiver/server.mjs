// Receiving endpoint for the HTTP destination tests: stores PUT/POST bodies
// in memory and lists them.  No npm dependencies.
//   GET  /__received   [{method, path, contentType, size, sha256, headers}] in arrival order
//   POST /__reset      forget everything
//   GET  <path>        the last body stored at <path> (404 if none)
// Faults by path prefix:
//   /fail500once/...   500 the first time each path is sent, then stored
//   /fail500always/... always 500
//   /reject/...        400 with a short text body
// Only successful uploads are listed; /__attempts counts every request.
// Prints `LISTENING {"port":P}`; exits on SIGTERM, SIGINT or when stdin closes.
import { createHash } from 'node:crypto';
import http from 'node:http';

const received = [];
const bodies = new Map();
const seen = new Map();       // path -> attempts
let attempts = 0;

function reply(res, status, body, type = 'text/plain') {
  res.writeHead(status, { 'Content-Type': type });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url, 'http://localhost');
    const body = Buffer.concat(chunks);
    if (url.pathname === '/__received')
      return reply(res, 200, JSON.stringify(received), 'application/json');
    if (url.pathname === '/__attempts')
      return reply(res, 200, JSON.stringify({ attempts, paths: Object.fromEntries(seen) }), 'application/json');
    if (url.pathname === '/__reset') {
      received.length = 0;
      bodies.clear();
      seen.clear();
      attempts = 0;
      return reply(res, 204, '');
    }
    if (req.method === 'GET') {
      const b = bodies.get(url.pathname);
      return b ? reply(res, 200, b, 'application/octet-stream') : reply(res, 404, 'not found');
    }
    if (req.method !== 'PUT' && req.method !== 'POST')
      return reply(res, 405, 'method not allowed');
    attempts++;
    const n = (seen.get(url.pathname) || 0) + 1;
    seen.set(url.pathname, n);
    if (url.pathname.startsWith('/fail500once/') && n === 1)
      return reply(res, 500, 'injected failure, try again');
    if (url.pathname.startsWith('/fail500always/'))
      return reply(res, 500, 'injected failure, always');
    if (url.pathname.startsWith('/reject/'))
      return reply(res, 400, 'rejected: this receiver does not want ' + url.pathname + '\n' + 'x'.repeat(2000));
    received.push({
      method: req.method,
      path: url.pathname,
      query: url.search,
      contentType: req.headers['content-type'] || null,
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      headers: req.headers,
    });
    bodies.set(url.pathname, body);
    reply(res, 201, 'stored');
  });
});

let stopping = false;
function stop() {
  if (stopping)
    return;
  stopping = true;
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

server.listen(Number(process.env.RECEIVER_PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${JSON.stringify({ port: server.address().port })}\n`);
});
