#!/usr/bin/env node
// FHIR Bulk Data Export test provider (Data Provider) for bulk-import's
// integration tests.  Node >= 20, built-in modules only.
//
//   node tests/provider/server.mjs --port 0 [--other-port 0] [--host 127.0.0.1]
//                                  [--fixtures DIR]
//
// Prints one line when ready:  LISTENING {"port":P,"otherPort":Q}
//
// Bulk Data Access IG (https://hl7.org/fhir/uv/bulkdata/) export flow with
// SMART Backend Services (private_key_jwt) authorization.  A per-test
// "simulation config" travels in the URL: http://host:P/sim/<base64url(JSON)>/fhir
// See README.md in this directory for the config fields.

import http from 'node:http';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// command line

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[a.slice(2)] = argv[++i];
    else out[a.slice(2)] = 'true';
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const scriptDir = path.dirname(fileURLToPath(import.meta.url));
const BIND_HOST = args.host || '127.0.0.1';
const MAIN_PORT = Number(args.port ?? 0);
const OTHER_PORT = Number(args['other-port'] ?? 0);
const FIXTURES_ROOT = path.resolve(
  args.fixtures || process.env.FIXTURES_DIR || path.join(scriptDir, '../../../shared/fixtures'));

// Accept either the fixtures root (containing fhir/ and attachments/) or the
// fhir/ directory itself.
let FHIR_DIR = path.join(FIXTURES_ROOT, 'fhir');
let ATTACH_DIR = path.join(FIXTURES_ROOT, 'attachments');
if (!fs.existsSync(FHIR_DIR)) {
  FHIR_DIR = FIXTURES_ROOT;
  ATTACH_DIR = path.join(FIXTURES_ROOT, '..', 'attachments');
}

// ---------------------------------------------------------------------------
// fixtures: index line offsets once, stream byte ranges from disk afterwards

const fixtures = new Map(); // type -> {type, path, size, offsets[], count, mtime}

function indexFixture(file) {
  const buf = fs.readFileSync(file);
  const offsets = [0];
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) offsets.push(i + 1);
  if (offsets[offsets.length - 1] !== buf.length) offsets.push(buf.length);
  const st = fs.statSync(file);
  const type = path.basename(file, '.ndjson');
  let firstIds = [];
  for (let i = 0; i < Math.min(3, offsets.length - 1); i++) {
    try {
      firstIds.push(JSON.parse(buf.subarray(offsets[i], offsets[i + 1]).toString('utf8')).id);
    } catch { /* ignore */ }
  }
  return { type, path: file, size: buf.length, offsets, count: offsets.length - 1, mtime: st.mtime, firstIds };
}

for (const f of fs.readdirSync(FHIR_DIR).filter((n) => n.endsWith('.ndjson')).sort()) {
  const fx = indexFixture(path.join(FHIR_DIR, f));
  fixtures.set(fx.type, fx);
}
if (fixtures.size === 0) {
  process.stderr.write(`no *.ndjson fixtures found in ${FHIR_DIR}\n`);
  process.exit(2);
}
const FIXTURE_TYPES = [...fixtures.keys()];

const ATTACHMENTS = {
  pdf: { file: 'document.pdf', contentType: 'application/pdf', title: 'Discharge summary (PDF)' },
  jpg: { file: 'portrait-1.jpg', contentType: 'image/jpeg', title: 'Patient portrait' },
  dicom: { file: 'DICOM.jpg', contentType: 'image/jpeg', title: 'Imaging key image' },
};
for (const a of Object.values(ATTACHMENTS)) {
  a.path = path.join(ATTACH_DIR, a.file);
  a.exists = fs.existsSync(a.path);
  if (a.exists) {
    const data = fs.readFileSync(a.path);
    a.size = data.length;
    a.sha1 = crypto.createHash('sha1').update(data).digest('base64');
    a.mtime = fs.statSync(a.path).mtime;
  }
}

// ---------------------------------------------------------------------------
// in-memory state

const clients = new Map();   // client_id -> {jwks, jwks_url, fetched, fetchedAt}
const tokens = new Map();    // access token -> {clientId, scopes, exp(ms)}
const usedJti = new Map();   // iss|jti -> exp(ms)
const exportsById = new Map(); // exportId -> export record
const staticExports = new Map(); // cfgStr -> export record
const counters = new Map();  // fault counter key -> count
const requestLog = [];
const ports = { main: 0, other: 0 };

const SIGNING_ALGS = {
  RS256: { kty: 'RSA', hash: 'sha256' },
  RS384: { kty: 'RSA', hash: 'sha384' },
  RS512: { kty: 'RSA', hash: 'sha512' },
  ES256: { kty: 'EC', crv: 'P-256', hash: 'sha256', sigLen: 64 },
  ES384: { kty: 'EC', crv: 'P-384', hash: 'sha384', sigLen: 96 },
  ES512: { kty: 'EC', crv: 'P-521', hash: 'sha512', sigLen: 132 },
};
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const OUTPUT_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
const CLOCK_SKEW_S = 5;
const MAX_ASSERTION_LIFETIME_S = 300;

// periodic cleanup of expired tokens / jti entries
setInterval(() => {
  const now = Date.now();
  for (const [k, v] of tokens) if (v.exp < now - 3600e3) tokens.delete(k);
  for (const [k, v] of usedJti) if (v < now - 60e3) usedJti.delete(k);
}, 60e3).unref();

// ---------------------------------------------------------------------------
// helpers

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function b64urlDecode(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  return Buffer.from(s, 'base64url');
}

function oo(code, diagnostics, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

function codeForStatus(status) {
  switch (status) {
    case 400: return 'invalid';
    case 401: return 'login';
    case 403: return 'forbidden';
    case 404: return 'not-found';
    case 405: return 'not-supported';
    case 408: return 'timeout';
    case 410: return 'not-found';
    case 413: return 'too-costly';
    case 429: return 'throttled';
    case 502: case 503: case 504: return 'transient';
    default: return status >= 500 ? 'exception' : 'processing';
  }
}

function sendJson(res, status, obj, headers = {}, contentType = 'application/json') {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': body.length, ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendOO(res, status, code, diagnostics, headers = {}) {
  sendJson(res, status, oo(code || codeForStatus(status), diagnostics), headers, 'application/fhir+json');
}

function retryAfterValue(spec, defaults = { style: 'seconds', value: 1 }) {
  const s = { ...defaults, ...(spec || {}) };
  const v = Number.isFinite(Number(s.value)) ? Number(s.value) : 1;
  switch (s.style) {
    case 'seconds': return String(Math.max(0, Math.round(v)));
    case 'date': return new Date(Date.now() + v * 1000).toUTCString();
    case 'garbage': return 'soon';
    case 'huge': return '999999999';
    case 'negative': return '-5';
    case 'none': return null;
    default: return String(Math.max(0, Math.round(v)));
  }
}

// Fault counter: returns true while the fault should still fire.
function fires(key, spec, defaultTimes = 1) {
  if (!spec) return false;
  const times = spec.times === undefined || spec.times === null ? defaultTimes : Number(spec.times);
  const n = counters.get(key) || 0;
  if (n >= times) return false;
  counters.set(key, n + 1);
  return true;
}

function sendFault(res, spec, what) {
  const status = Number(spec.status) || 500;
  const headers = {};
  const ra = spec.retryAfter ? retryAfterValue(spec.retryAfter) : null;
  if (ra !== null) headers['Retry-After'] = ra;
  sendOO(res, status, spec.code || codeForStatus(status),
    spec.message || `simulated ${what} failure (HTTP ${status})`, headers);
}

async function readBody(req, limit = 4 * 1024 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function hostnameOf(hostHeader) {
  if (!hostHeader) return BIND_HOST;
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1);
  const i = hostHeader.lastIndexOf(':');
  return i > 0 ? hostHeader.slice(0, i) : hostHeader;
}

function mediaTypes(header) {
  return String(header || '').split(',').map((s) => s.split(';')[0].trim().toLowerCase()).filter(Boolean);
}

function acceptsGzip(header) {
  if (!header) return false;
  for (const part of String(header).split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim());
    const n = name.toLowerCase();
    if (n !== 'gzip' && n !== 'x-gzip' && n !== '*') continue;
    let q = 1;
    for (const p of params) {
      const m = /^q=([0-9.]+)$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (q > 0) return true;
  }
  return false;
}

function parsePrefer(header) {
  const out = { respondAsync: false, handling: null };
  for (const p of String(header || '').split(',')) {
    const t = p.trim().toLowerCase();
    if (t === 'respond-async') out.respondAsync = true;
    const m = /^handling\s*=\s*"?(strict|lenient)"?$/.exec(t);
    if (m) out.handling = m[1];
  }
  return out;
}

// ---------------------------------------------------------------------------
// simulation config

const CONFIG_DEFAULTS = {
  auth: true,
  polls: 1,
  retryAfter: { style: 'seconds', value: 1 },
  tokenLifetime: 300,
  filesPerType: 1,
  range: false,
  partialStatus: 202,
};

function parseConfig(cfgStr) {
  if (!cfgStr) return { ...CONFIG_DEFAULTS };
  let obj;
  try {
    obj = JSON.parse(b64urlDecode(cfgStr).toString('utf8'));
  } catch (e) {
    throw Object.assign(new Error(`invalid simulation config (expected base64url JSON): ${e.message}`), { status: 400 });
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    throw Object.assign(new Error('simulation config must be a JSON object'), { status: 400 });
  }
  return { ...CONFIG_DEFAULTS, ...obj };
}

// ---------------------------------------------------------------------------
// request log

function redactHeaders(h) {
  const out = {};
  for (const [k, v] of Object.entries(h)) out[k] = k === 'authorization' ? 'present' : v;
  return out;
}

function decodeJwtForLog(jwt) {
  try {
    const [h, p] = String(jwt).split('.');
    return { header: JSON.parse(b64urlDecode(h)), payload: JSON.parse(b64urlDecode(p)) };
  } catch {
    return { undecodable: true };
  }
}

function logBody(req, body) {
  if (!body || body.length === 0) return undefined;
  const ct = String(req.headers['content-type'] || '').toLowerCase();
  const text = body.toString('utf8');
  if (ct.includes('json')) {
    try { return JSON.parse(text); } catch { return text.slice(0, 4000); }
  }
  if (ct.startsWith('application/x-www-form-urlencoded')) {
    const o = {};
    for (const [k, v] of new URLSearchParams(text)) o[k] = k === 'client_assertion' ? decodeJwtForLog(v) : v;
    return o;
  }
  return text.slice(0, 4000);
}

// ---------------------------------------------------------------------------
// auth

function parseScopes(scopeStr) {
  const granted = [];
  for (const s of String(scopeStr || '').split(/\s+/).filter(Boolean)) {
    const m = /^system\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(\?.*)?$/.exec(s);
    if (m && m[2] !== '') granted.push(s);
  }
  return granted;
}

function scopeAllowsRead(scopes, type) {
  for (const s of scopes) {
    const m = /^system\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)/.exec(s);
    if (!m) continue;
    if (m[1] !== '*' && m[1] !== type) continue;
    if (m[2] === 'read' || m[2] === '*' || (m[2] !== 'write' && m[2].includes('r'))) return true;
  }
  return false;
}

function bearerChallenge(error, description) {
  let v = 'Bearer realm="bulk-test-provider"';
  if (error) v += `, error="${error}", error_description="${description}"`;
  return v;
}

// Returns the token record or null after having sent a 401.
function requireToken(req, res) {
  const h = req.headers.authorization;
  if (!h) {
    sendOO(res, 401, 'login', 'authorization required (Bearer access token)',
      { 'WWW-Authenticate': bearerChallenge() });
    return null;
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  if (!m) {
    sendOO(res, 401, 'login', 'Authorization header must use the Bearer scheme',
      { 'WWW-Authenticate': bearerChallenge('invalid_request', 'Bearer scheme required') });
    return null;
  }
  const t = tokens.get(m[1]);
  if (!t) {
    sendOO(res, 401, 'login', 'unknown or revoked access token',
      { 'WWW-Authenticate': bearerChallenge('invalid_token', 'unknown or revoked access token') });
    return null;
  }
  if (t.exp <= Date.now()) {
    sendOO(res, 401, 'expired', 'access token expired',
      { 'WWW-Authenticate': bearerChallenge('invalid_token', 'access token expired') });
    return null;
  }
  t.value = m[1];
  return t;
}

async function clientKeys(client, forceRefresh) {
  if (client.jwks) return client.jwks.keys || [];
  if (!client.jwks_url) return [];
  if (!forceRefresh && client.fetched && Date.now() - client.fetchedAt < 300e3) return client.fetched;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 5000);
  try {
    const r = await fetch(client.jwks_url, { signal: ac.signal, headers: { accept: 'application/json' } });
    if (!r.ok) throw new Error(`jwks_url answered HTTP ${r.status}`);
    const j = await r.json();
    if (!j || !Array.isArray(j.keys)) throw new Error('jwks_url did not return a JWK Set');
    client.fetched = j.keys;
    client.fetchedAt = Date.now();
    return j.keys;
  } finally {
    clearTimeout(timer);
  }
}

function publicJwk(k) {
  if (k.kty === 'RSA') return { kty: 'RSA', n: k.n, e: k.e };
  if (k.kty === 'EC') return { kty: 'EC', crv: k.crv, x: k.x, y: k.y };
  return null;
}

// Verifies a SMART Backend Services client assertion.
// Returns {clientId} or {status, error, description}.
async function verifyClientAssertion(assertion, tokenUrl, formClientId) {
  const fail = (description, error = 'invalid_client', status = 401) => ({ status, error, description });
  const parts = String(assertion).split('.');
  if (parts.length !== 3) return fail('client_assertion is not a compact JWS');
  let header, payload, sig;
  try {
    header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
    payload = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
    sig = b64urlDecode(parts[2]);
  } catch {
    return fail('client_assertion is not a well-formed JWT');
  }
  if (!header || typeof header !== 'object' || !payload || typeof payload !== 'object') {
    return fail('client_assertion is not a well-formed JWT');
  }
  const algSpec = Object.prototype.hasOwnProperty.call(SIGNING_ALGS, header.alg) ? SIGNING_ALGS[header.alg] : null;
  if (!algSpec) return fail(`unsupported JWT alg ${JSON.stringify(header.alg)}; allowed: ${Object.keys(SIGNING_ALGS).join(' ')}`);
  if (header.typ !== undefined && String(header.typ).toUpperCase() !== 'JWT') return fail('JWT typ must be "JWT"');
  if (header.crit !== undefined) return fail('JWT crit header not supported');
  if (typeof header.kid !== 'string' || !header.kid) return fail('JWT header kid is required');

  const iss = payload.iss;
  if (typeof iss !== 'string' || !iss) return fail('JWT iss is required');
  if (payload.sub !== iss) return fail('JWT sub must equal iss (the client_id)');
  if (formClientId && formClientId !== iss) return fail('client_id does not match JWT iss');
  const client = clients.get(iss);
  if (!client) return fail(`unknown client ${JSON.stringify(iss)}`);
  if (header.jku !== undefined && header.jku !== client.jwks_url) {
    return fail('JWT jku does not match the registered jwks_url');
  }

  let keys;
  try {
    keys = (await clientKeys(client, false)).filter((k) => k && k.kid === header.kid);
    if (keys.length === 0 && client.jwks_url) {
      keys = (await clientKeys(client, true)).filter((k) => k && k.kid === header.kid);
    }
  } catch (e) {
    return fail(`could not retrieve client JWKS: ${e.message}`);
  }
  if (keys.length === 0) return fail(`no key with kid ${JSON.stringify(header.kid)} registered for client`);
  const usable = keys.filter((k) =>
    k.kty === algSpec.kty &&
    (algSpec.crv === undefined || k.crv === algSpec.crv) &&
    (k.alg === undefined || k.alg === header.alg) &&
    (k.use === undefined || k.use === 'sig') &&
    (k.key_ops === undefined || (Array.isArray(k.key_ops) && k.key_ops.includes('verify'))));
  if (usable.length === 0) return fail(`key ${JSON.stringify(header.kid)} cannot be used with alg ${header.alg}`);
  if (algSpec.sigLen && sig.length !== algSpec.sigLen) return fail('invalid signature');

  const signingInput = Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii');
  let verified = false;
  for (const jwk of usable) {
    try {
      const key = crypto.createPublicKey({ key: publicJwk(jwk), format: 'jwk' });
      if (algSpec.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength || 0) < 2048) continue;
      const ok = algSpec.kty === 'EC'
        ? crypto.verify(algSpec.hash, signingInput, { key, dsaEncoding: 'ieee-p1363' }, sig)
        : crypto.verify(algSpec.hash, signingInput, { key, padding: crypto.constants.RSA_PKCS1_PADDING }, sig);
      if (ok) { verified = true; break; }
    } catch { /* bad key material: try next */ }
  }
  if (!verified) return fail('invalid signature');

  const aud = payload.aud;
  const audOk = aud === tokenUrl || (Array.isArray(aud) && aud.includes(tokenUrl));
  if (!audOk) return fail(`JWT aud must be the token URL ${tokenUrl}`);
  const now = Date.now() / 1000;
  if (typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) return fail('JWT exp is required');
  if (payload.exp <= now) return fail('client assertion expired');
  if (payload.exp > now + MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S) {
    return fail('JWT exp must be no more than five minutes in the future');
  }
  if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > now + CLOCK_SKEW_S)) {
    return fail('JWT not yet valid (nbf)');
  }
  if (payload.iat !== undefined && (typeof payload.iat !== 'number' || payload.iat > now + CLOCK_SKEW_S)) {
    return fail('JWT iat is in the future');
  }
  if (typeof payload.jti !== 'string' || !payload.jti) return fail('JWT jti is required');
  const jtiKey = `${iss}|${payload.jti}`;
  if (usedJti.has(jtiKey)) return fail('JWT jti has already been used (replay)');
  usedJti.set(jtiKey, payload.exp * 1000);
  return { clientId: iss };
}

// ---------------------------------------------------------------------------
// exports and files

function allKnownTypes(cfg) {
  const t = [...FIXTURE_TYPES];
  if (cfg.attachments && !t.includes('DocumentReference')) t.push('DocumentReference');
  return t.sort();
}

// Build the list of files an export offers.
function buildFiles(cfg, types, extraErrors) {
  const files = [];
  const k = Math.max(1, Math.floor(Number(cfg.filesPerType) || 1));
  const delta = cfg.countDelta || null;
  for (const type of types) {
    if (type === 'DocumentReference' && cfg.attachments && !fixtures.has('DocumentReference')) {
      files.push({ kind: 'output', type, name: '1.DocumentReference.ndjson', count: 4, gen: 'docref' });
      continue;
    }
    const fx = fixtures.get(type);
    if (!fx) continue;
    const per = Math.ceil(fx.count / k) || 1;
    for (let i = 0; i < k; i++) {
      const a = i * per;
      const b = Math.min(fx.count, a + per);
      if (a >= b) break;
      files.push({ kind: 'output', type, name: `${i + 1}.${type}.ndjson`, count: b - a, fx, lineStart: a, lineEnd: b });
    }
  }
  if (delta && delta.type) {
    const f = files.find((x) => x.type === delta.type);
    if (f) f.count += Number(delta.delta ?? 1);
  }
  if (cfg.deleted) files.push({ kind: 'deleted', type: 'Bundle', name: '1.Bundle.ndjson', count: 2, gen: 'deleted' });
  const errLines = [];
  if (cfg.errorFile) {
    errLines.push(oo('processing', 'simulated: 1 MedicationStatement resource could not be exported (code system unavailable)'));
    errLines.push(oo('informational', 'simulated: export completed with warnings', 'warning'));
  }
  for (const e of extraErrors || []) errLines.push(e);
  if (errLines.length) {
    files.push({ kind: 'error', type: 'OperationOutcome', name: '1.OperationOutcome.ndjson', count: errLines.length, gen: 'error', lines: errLines });
  }
  return files;
}

const DELETED_IDS = ['deleted-patient-0001', 'deleted-patient-0002'];

function generatedContent(file, base) {
  if (file.gen === 'deleted') {
    const when = new Date().toISOString();
    return Buffer.from(DELETED_IDS.map((id, i) => JSON.stringify({
      resourceType: 'Bundle',
      id: `deleted-bundle-${i + 1}`,
      meta: { lastUpdated: when },
      type: 'transaction',
      entry: [{ request: { method: 'DELETE', url: `Patient/${id}` } }],
    }) + '\n').join(''));
  }
  if (file.gen === 'error') return Buffer.from(file.lines.map((l) => JSON.stringify(l) + '\n').join(''));
  if (file.gen === 'docref') {
    const pids = fixtures.get('Patient')?.firstIds || ['example'];
    const att = (key, url) => {
      const a = ATTACHMENTS[key];
      const o = { contentType: a.contentType, url, title: a.title };
      if (a.exists) { o.size = a.size; o.hash = a.sha1; }
      return o;
    };
    const docs = [
      { id: 'docref-pdf', attachment: att('pdf', `${base}/Binary/pdf`), pid: pids[0] },
      { id: 'docref-jpg', attachment: att('jpg', 'Binary/jpg'), pid: pids[1] ?? pids[0] },
      { id: 'docref-dicom', attachment: att('dicom', `${base}/Binary/dicom`), pid: pids[2] ?? pids[0] },
      {
        id: 'docref-inline',
        attachment: { contentType: 'text/plain', data: Buffer.from('Inline note: no url, data only.\n').toString('base64'), title: 'Inline note' },
        pid: pids[0],
      },
    ];
    return Buffer.from(docs.map((d) => JSON.stringify({
      resourceType: 'DocumentReference',
      id: d.id,
      status: 'current',
      type: { coding: [{ system: 'http://loinc.org', code: '34133-9', display: 'Summary of episode note' }] },
      subject: { reference: `Patient/${d.pid}` },
      date: '2020-01-01T00:00:00Z',
      content: [{ attachment: d.attachment }],
    }) + '\n').join(''));
  }
  throw new Error(`unknown generated file ${file.gen}`);
}

function readRange(p, start, end) {
  const len = end - start;
  const buf = Buffer.alloc(len);
  const fd = fs.openSync(p, 'r');
  try {
    let off = 0;
    while (off < len) {
      const n = fs.readSync(fd, buf, off, len - off, start + off);
      if (n <= 0) break;
      off += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

// Returns {buffer} (modified / generated content) or {path, start, end} (stream from disk).
function fileBody(file, cfg, base) {
  if (file.gen) return { buffer: generatedContent(file, base) };
  const { fx, lineStart, lineEnd } = file;
  const start = fx.offsets[lineStart];
  const end = fx.offsets[lineEnd];
  const edits = [];
  const ml = cfg.malformedLine;
  if (ml && ml.type === file.type) edits.push({ line: Number(ml.line), kind: 'malformed' });
  const wt = cfg.wrongType;
  if (wt && wt.type === file.type) edits.push({ line: Number(wt.line), kind: 'wrongType', as: wt.as });
  // at most one edit per line (a malformed line wins over a wrong type)
  const local = edits.filter((e) => e.line >= lineStart + 1 && e.line <= lineEnd)
    .filter((e, _i, all) => e.kind === 'malformed' || !all.some((o) => o.kind === 'malformed' && o.line === e.line));
  if (local.length === 0) return { path: fx.path, start, end };
  let buf = readRange(fx.path, start, end);
  // apply edits from the last line backwards so earlier offsets stay valid
  local.sort((a, b) => b.line - a.line);
  for (const e of local) {
    const ls = fx.offsets[e.line - 1] - start;
    const le = fx.offsets[e.line] - start;
    const orig = buf.subarray(ls, le).toString('utf8');
    const nl = orig.endsWith('\n') ? '\n' : '';
    let repl;
    if (e.kind === 'malformed') {
      repl = `{"resourceType":"${file.type}", broken${nl}`;
    } else {
      const to = e.as || (file.type === 'Observation' ? 'Condition' : 'Observation');
      repl = orig.replace(`"resourceType":"${file.type}"`, `"resourceType":"${to}"`);
    }
    buf = Buffer.concat([buf.subarray(0, ls), Buffer.from(repl, 'utf8'), buf.subarray(le)]);
  }
  return { buffer: buf };
}

function etagFor(parts) {
  return '"' + crypto.createHash('sha1').update(JSON.stringify(parts)).digest('base64url').slice(0, 22) + '"';
}

// Parses a single byte range. Returns null (ignore), {start,end} (end exclusive) or 'unsatisfiable'.
function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/i.exec(String(header || '').trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  let end = m[2] === '' ? size : Number(m[2]) + 1;
  if (m[2] !== '' && end <= start) return null;
  if (start >= size) return 'unsatisfiable';
  end = Math.min(end, size);
  return { start, end };
}

async function* bodyChunks(body, start, end, chunkSize) {
  if (end <= start) return;
  if (body.buffer) {
    for (let i = start; i < end; i += chunkSize) yield body.buffer.subarray(i, Math.min(end, i + chunkSize));
    return;
  }
  const rs = fs.createReadStream(body.path, { start: body.start + start, end: body.start + end - 1, highWaterMark: chunkSize });
  for await (const c of rs) yield c;
}

function drainOrClose(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

// Serve a file-like representation with gzip / range / cut / slow handling.
async function serveRepresentation(req, res, rep) {
  const { cfg, contentType, etagParts, lastModified, cut } = rep;
  let body = rep.body;
  const headers = { 'Content-Type': contentType, 'Cache-Control': 'no-store' };
  let encoded = false;
  if (cfg.gzip === 'header' || cfg.gzip === 'noheader') {
    headers.Vary = 'Accept-Encoding';
    if (cfg.gzip === 'noheader' || acceptsGzip(req.headers['accept-encoding'])) {
      const raw = body.buffer || readRange(body.path, body.start, body.end);
      body = { buffer: zlib.gzipSync(raw) };
      if (cfg.gzip === 'header') headers['Content-Encoding'] = 'gzip';
      encoded = true;
    }
  }
  const size = body.buffer ? body.buffer.length : body.end - body.start;
  const etag = etagFor([...etagParts, encoded ? 'gzip' : 'identity', size]);
  headers.ETag = etag;
  if (lastModified) headers['Last-Modified'] = lastModified.toUTCString();
  headers['Accept-Ranges'] = cfg.range ? 'bytes' : 'none';

  let status = 200;
  let start = 0;
  let end = size;
  if (cfg.range && req.headers.range) {
    const ifRange = req.headers['if-range'];
    const rangeApplies = !ifRange || ifRange === etag || (lastModified && ifRange === lastModified.toUTCString());
    if (rangeApplies) {
      const r = parseRange(req.headers.range, size);
      if (r === 'unsatisfiable') {
        sendOO(res, 416, 'invalid', `range not satisfiable (size ${size})`, { 'Content-Range': `bytes */${size}` });
        return;
      }
      if (r) {
        status = 206;
        start = r.start;
        end = r.end;
        headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
      }
    }
  }
  headers['Content-Length'] = end - start;
  res.writeHead(status, headers);
  if (req.method === 'HEAD') { res.end(); return; }

  const chunkSize = cfg.slowFileMs ? 16384 : 65536;
  let sent = 0;
  let closed = false;
  res.on('close', () => { closed = true; });
  for await (const chunk0 of bodyChunks(body, start, end, chunkSize)) {
    if (closed) return;
    let chunk = chunk0;
    if (cut !== null && cut !== undefined && sent + chunk.length >= cut) {
      chunk = chunk.subarray(0, Math.max(0, cut - sent));
      if (req.logEntry) req.logEntry.cut = true;
      if (chunk.length > 0) {
        res.write(chunk, () => res.socket && res.socket.destroy());
      } else {
        res.flushHeaders();
        if (res.socket) res.socket.end();
      }
      return;
    }
    sent += chunk.length;
    if (!res.write(chunk)) await drainOrClose(res);
    if (cfg.slowFileMs && sent < end - start) await delay(Number(cfg.slowFileMs));
  }
  if (!closed) res.end();
}

function getStaticExport(ctx) {
  let exp = staticExports.get(ctx.cfgStr);
  if (!exp) {
    const types = allKnownTypes(ctx.cfg).filter((t) => !Array.isArray(ctx.cfg.types) || ctx.cfg.types.includes(t));
    exp = {
      id: 'static',
      key: `static|${ctx.cfgStr}`,
      cfg: ctx.cfg,
      cfgStr: ctx.cfgStr,
      static: true,
      transactionTime: new Date().toISOString(),
      types,
      files: buildFiles(ctx.cfg, types, []),
      pollsLeft: 0,
    };
    staticExports.set(ctx.cfgStr, exp);
  }
  return exp;
}

function fileUrl(ctx, exp, f) {
  return `${ctx.base}/files/${exp.id}/${encodeURIComponent(f.name)}`;
}

function manifestPages(exp) {
  const outputs = exp.files.filter((f) => f.kind === 'output');
  const size = Number(exp.cfg.pageSize) > 0 ? Math.floor(Number(exp.cfg.pageSize)) : 0;
  if (!size) return [outputs];
  const pages = [];
  for (let i = 0; i < outputs.length; i += size) pages.push(outputs.slice(i, i + size));
  if (pages.length === 0) pages.push([]);
  return pages;
}

function pageUrl(ctx, exp, n) {
  if (exp.static) return `${ctx.base}/static/manifest-${n}.json`;
  return n === 1 ? `${ctx.base}/status/${exp.id}` : `${ctx.base}/status/${exp.id}/page/${n}`;
}

function buildManifest(ctx, exp, pageNo, { withLink = true } = {}) {
  const pages = manifestPages(exp);
  const last = pages.length;
  const entry = (f) => ({ type: f.type, url: fileUrl(ctx, exp, f), count: f.count });
  const m = {
    transactionTime: exp.transactionTime,
    request: exp.static ? `${ctx.base}/static/manifest.json` : exp.requestUrl,
    requiresAccessToken: ctx.cfg.auth !== false,
    output: (pages[pageNo - 1] || []).map(entry),
    deleted: pageNo === last ? exp.files.filter((f) => f.kind === 'deleted').map(entry) : [],
    error: exp.files.filter((f) => f.kind === 'error').map(entry),
  };
  if (withLink && pageNo < last) m.link = [{ relation: 'next', url: pageUrl(ctx, exp, pageNo + 1) }];
  return m;
}

function sendManifest(res, manifest, status = 200) {
  sendJson(res, status, manifest, { Expires: new Date(Date.now() + 3600e3).toUTCString() });
}

// ---------------------------------------------------------------------------
// kick-off parameter parsing

function parametersFromBody(body) {
  const out = [];
  if (!body || body.resourceType !== 'Parameters') {
    throw Object.assign(new Error('POST kick-off body must be a FHIR Parameters resource'), { status: 400 });
  }
  for (const p of body.parameter || []) {
    if (!p || typeof p.name !== 'string') continue;
    let value;
    for (const [k, v] of Object.entries(p)) {
      if (k.startsWith('value')) value = v;
    }
    if (p.name === 'patient' && value && typeof value === 'object') value = value.reference;
    if (value === undefined && p.resource) value = p.resource;
    out.push([p.name, typeof value === 'boolean' ? String(value) : value]);
  }
  return out;
}

const INSTANT_RE = /^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

function parseKickoffParams(pairs, cfg, level, lenient) {
  const p = {
    _type: [], _since: null, _until: null, _outputFormat: null, _elements: [], _typeFilter: [],
    includeAssociatedData: [], patient: [], organizeOutputBy: null, allowPartialManifests: false,
  };
  const warnings = [];
  const bad = (msg) => { throw Object.assign(new Error(msg), { status: 400 }); };
  const split = (v) => String(v).split(',').map((s) => s.trim()).filter(Boolean);
  const unsupported = [];
  for (const [name, value] of pairs) {
    switch (name) {
      case '_type': p._type.push(...split(value)); break;
      case '_elements': p._elements.push(...split(value)); break;
      case '_typeFilter': p._typeFilter.push(String(value)); break;
      case 'includeAssociatedData': p.includeAssociatedData.push(...split(value)); break;
      case 'patient': p.patient.push(...split(value)); break;
      case '_since': case '_until': case '_outputFormat': case 'organizeOutputBy':
        p[name] = String(value); break;
      case 'allowPartialManifests': {
        const v = String(value).toLowerCase();
        if (v !== 'true' && v !== 'false') bad('allowPartialManifests must be true or false');
        p.allowPartialManifests = v === 'true';
        break;
      }
      default:
        unsupported.push(name);
    }
  }
  if (unsupported.length) {
    if (cfg.strictParams && !lenient) bad(`unsupported parameter(s): ${unsupported.join(', ')}`);
    if (lenient) warnings.push(oo('not-supported', `ignored unsupported parameter(s): ${unsupported.join(', ')}`, 'warning'));
  }
  if (p._outputFormat !== null && !OUTPUT_FORMATS.has(p._outputFormat)) {
    bad(`unsupported _outputFormat ${JSON.stringify(p._outputFormat)}; supported: ${[...OUTPUT_FORMATS].join(', ')}`);
  }
  for (const k of ['_since', '_until']) {
    if (p[k] !== null && !INSTANT_RE.test(p[k])) bad(`${k} must be a FHIR instant, got ${JSON.stringify(p[k])}`);
  }
  const known = new Set(allKnownTypes(cfg));
  const unknown = p._type.filter((t) => !known.has(t));
  if (unknown.length) {
    if (lenient) {
      warnings.push(oo('not-supported', `ignored unsupported _type value(s): ${unknown.join(', ')}`, 'warning'));
      p._type = p._type.filter((t) => known.has(t));
    } else {
      bad(`unsupported _type value(s): ${unknown.join(', ')}`);
    }
  }
  for (const f of p._typeFilter) {
    const q = f.indexOf('?');
    if (q <= 0) bad(`_typeFilter must look like ResourceType?query, got ${JSON.stringify(f)}`);
  }
  if (p.patient.length && level === 'system') bad('the patient parameter is only allowed for Patient and Group level exports');
  if (cfg.strictParams && !lenient) {
    if (p.organizeOutputBy) bad('organizeOutputBy is not supported by this server');
    if (p.includeAssociatedData.length) bad('includeAssociatedData is not supported by this server');
  }
  return { params: p, warnings };
}

// ---------------------------------------------------------------------------
// route handlers

function smartConfiguration(ctx) {
  return {
    issuer: ctx.base,
    token_endpoint: `${ctx.base}/auth/token`,
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: Object.keys(SIGNING_ALGS),
    grant_types_supported: ['client_credentials'],
    scopes_supported: ['system/*.read', 'system/*.rs', ...allKnownTypes(ctx.cfg).map((t) => `system/${t}.read`)],
    response_types_supported: ['token'],
    capabilities: ['client-confidential-asymmetric'],
  };
}

function capabilityStatement(ctx) {
  const security = {
    extension: [{
      url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
      extension: [{ url: 'token', valueUri: `${ctx.base}/auth/token` }],
    }],
    service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
  };
  const resource = allKnownTypes(ctx.cfg).map((type) => {
    const r = { type, interaction: [] };
    if (type === 'Patient') {
      r.operation = [{ name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export' }];
    }
    return r;
  });
  resource.push({
    type: 'Group',
    interaction: [],
    operation: [{ name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export' }],
  });
  resource.push({ type: 'Binary', interaction: [{ code: 'read' }] });
  resource.sort((a, b) => a.type.localeCompare(b.type));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2024-01-01',
    kind: 'instance',
    instantiates: ['http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data'],
    software: { name: 'bulk-import test provider', version: '1.0.0' },
    implementation: { description: 'FHIR Bulk Data test provider', url: ctx.base },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{
      mode: 'server',
      security: ctx.cfg.auth === false ? undefined : security,
      resource,
      operation: [{ name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export' }],
    }],
  };
}

async function handleRegister(req, res) {
  if (req.method !== 'POST') return sendOO(res, 405, 'not-supported', 'use POST');
  let body;
  try {
    body = JSON.parse(req.rawBody.toString('utf8') || '{}');
  } catch {
    return sendJson(res, 400, { error: 'invalid_client_metadata', error_description: 'body must be JSON' });
  }
  const { jwks, jwks_url: jwksUrl } = body || {};
  if (!jwks && !jwksUrl) {
    return sendJson(res, 400, { error: 'invalid_client_metadata', error_description: 'jwks or jwks_url is required' });
  }
  if (jwks && (!Array.isArray(jwks.keys) || jwks.keys.length === 0)) {
    return sendJson(res, 400, { error: 'invalid_client_metadata', error_description: 'jwks must be a JWK Set with keys' });
  }
  if (jwks && jwks.keys.some((k) => k && (k.d !== undefined || k.p !== undefined || k.k !== undefined))) {
    return sendJson(res, 400, { error: 'invalid_client_metadata', error_description: 'jwks must contain public keys only' });
  }
  if (jwksUrl !== undefined && (typeof jwksUrl !== 'string' || !/^https?:\/\//.test(jwksUrl))) {
    return sendJson(res, 400, { error: 'invalid_client_metadata', error_description: 'jwks_url must be an http(s) URL' });
  }
  const clientId = typeof body.client_id === 'string' && body.client_id ? body.client_id : crypto.randomUUID();
  clients.set(clientId, { jwks: jwks || null, jwks_url: jwksUrl || null, fetched: null, fetchedAt: 0 });
  sendJson(res, 201, { client_id: clientId });
}

async function handleToken(req, res, ctx) {
  const oauthError = (status, error, description, headers = {}) =>
    sendJson(res, status, { error, error_description: description },
      { 'Cache-Control': 'no-store', Pragma: 'no-cache', ...headers });
  if (req.method !== 'POST') return oauthError(405, 'invalid_request', 'token endpoint requires POST');
  const tf = ctx.cfg.tokenFault;
  if (tf && fires(`${ctx.cfgStr}|token`, tf)) {
    const status = Number(tf.status) || 503;
    const headers = {};
    const ra = tf.retryAfter ? retryAfterValue(tf.retryAfter) : null;
    if (ra !== null) headers['Retry-After'] = ra;
    return oauthError(status, status === 429 ? 'slow_down' : status >= 500 ? 'temporarily_unavailable' : 'invalid_request',
      tf.message || `simulated token endpoint failure (HTTP ${status})`, headers);
  }
  const ct = String(req.headers['content-type'] || '').toLowerCase();
  if (!ct.startsWith('application/x-www-form-urlencoded')) {
    return oauthError(400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
  }
  const form = new URLSearchParams(req.rawBody.toString('utf8'));
  const grantType = form.get('grant_type');
  if (!grantType) return oauthError(400, 'invalid_request', 'grant_type is required');
  if (grantType !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials');
  if (form.get('client_assertion_type') !== ASSERTION_TYPE) {
    return oauthError(400, 'invalid_request', `client_assertion_type must be ${ASSERTION_TYPE}`);
  }
  const assertion = form.get('client_assertion');
  if (!assertion) return oauthError(400, 'invalid_request', 'client_assertion is required');
  const scope = form.get('scope');
  if (!scope) return oauthError(400, 'invalid_request', 'scope is required');

  const tokenUrl = `${ctx.base}/auth/token`;
  const v = await verifyClientAssertion(assertion, tokenUrl, form.get('client_id'));
  if (!v.clientId) return oauthError(v.status, v.error, v.description);

  const granted = parseScopes(scope);
  if (granted.length === 0) return oauthError(400, 'invalid_scope', 'no supported system/ scopes requested');
  const lifetime = Math.max(1, Math.floor(Number(ctx.cfg.tokenLifetime) || 300));
  const accessToken = crypto.randomBytes(32).toString('base64url');
  tokens.set(accessToken, { clientId: v.clientId, scopes: granted, exp: Date.now() + lifetime * 1000 });
  sendJson(res, 200, { access_token: accessToken, token_type: 'bearer', expires_in: lifetime, scope: granted.join(' ') },
    { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
}

async function handleKickoff(req, res, ctx, level, groupId) {
  const cfg = ctx.cfg;
  if (req.method !== 'GET' && req.method !== 'POST') return sendOO(res, 405, 'not-supported', 'kick-off requires GET or POST');
  if (cfg.kickoffFault && fires(`${ctx.cfgStr}|kickoff`, cfg.kickoffFault)) return sendFault(res, cfg.kickoffFault, 'kick-off');
  let token = null;
  if (cfg.auth !== false) {
    token = requireToken(req, res);
    if (!token) return;
  }
  const prefer = parsePrefer(req.headers.prefer);
  if (!prefer.respondAsync) return sendOO(res, 400, 'invalid', 'Prefer: respond-async header is required');
  if (!mediaTypes(req.headers.accept).includes('application/fhir+json')) {
    return sendOO(res, 400, 'invalid', 'Accept: application/fhir+json header is required');
  }
  const lenient = prefer.handling === 'lenient';
  let pairs = [...ctx.url.searchParams.entries()];
  if (req.method === 'POST' && req.rawBody.length > 0) {
    let body;
    try {
      body = JSON.parse(req.rawBody.toString('utf8'));
    } catch {
      return sendOO(res, 400, 'structure', 'POST kick-off body is not valid JSON');
    }
    try {
      pairs = pairs.concat(parametersFromBody(body));
    } catch (e) {
      return sendOO(res, 400, 'invalid', e.message);
    }
  }
  let parsed;
  try {
    parsed = parseKickoffParams(pairs, cfg, level, lenient);
  } catch (e) {
    return sendOO(res, e.status || 400, 'invalid', e.message);
  }
  const { params, warnings } = parsed;
  let types = params._type.length ? [...new Set(params._type)].sort() : allKnownTypes(cfg);
  if (Array.isArray(cfg.types)) types = types.filter((t) => cfg.types.includes(t));
  if (token) {
    const denied = params._type.filter((t) => !scopeAllowsRead(token.scopes, t));
    if (denied.length) {
      return sendOO(res, 403, 'forbidden', `access token scopes do not allow reading: ${denied.join(', ')}`);
    }
    types = types.filter((t) => scopeAllowsRead(token.scopes, t));
  }
  const id = crypto.randomBytes(12).toString('hex');
  const exp = {
    id,
    key: id,
    cfg,
    cfgStr: ctx.cfgStr,
    level,
    groupId: groupId || null,
    method: req.method,
    requestUrl: `${ctx.origin}${ctx.url.pathname}${ctx.url.search}`,
    params,
    pairs,
    prefer: req.headers.prefer,
    clientId: token ? token.clientId : null,
    transactionTime: new Date().toISOString(),
    createdAt: new Date().toISOString(),
    types,
    files: buildFiles(cfg, types, warnings),
    pollsLeft: Math.max(0, Math.floor(Number(cfg.polls ?? 1))),
    pollsTotal: Math.max(0, Math.floor(Number(cfg.polls ?? 1))),
    statusRequests: 0,
    deletedByClient: false,
  };
  exportsById.set(id, exp);
  if (req.logEntry) req.logEntry.exportId = id;
  sendJson(res, 202, oo('informational', `export ${id} accepted`, 'information'),
    { 'Content-Location': `${ctx.base}/status/${id}` }, 'application/fhir+json');
}

function checkExportAccess(req, res, ctx, exp) {
  if (exp.cfg.auth === false) return true;
  const token = requireToken(req, res);
  if (!token) return false;
  if (exp.clientId && token.clientId !== exp.clientId) {
    sendOO(res, 403, 'forbidden', 'this export belongs to another client');
    return false;
  }
  return true;
}

function inProgressHeaders(exp) {
  const done = exp.pollsTotal - exp.pollsLeft;
  const pct = Math.min(99, Math.round((100 * done) / (exp.pollsTotal + 1)));
  const h = { 'X-Progress': `exporting ${pct}%` };
  const ra = retryAfterValue(exp.cfg.retryAfter);
  if (ra !== null) h['Retry-After'] = ra;
  return h;
}

function partialMode(exp) {
  return exp.params.allowPartialManifests && Number(exp.cfg.pageSize) > 0 && manifestPages(exp).length > 1;
}

async function handleStatus(req, res, ctx, id, pageNo) {
  const exp = exportsById.get(id);
  if (!exp || exp.cfgStr !== ctx.cfgStr) return sendOO(res, 404, 'not-found', `no export with id ${id}`);
  if (!checkExportAccess(req, res, ctx, exp)) return;
  if (req.method === 'DELETE' && pageNo === 1) {
    exportsById.delete(id);
    exp.deletedByClient = true;
    return sendJson(res, 202, oo('informational', `export ${id} deleted`, 'information'), {}, 'application/fhir+json');
  }
  if (req.method !== 'GET') return sendOO(res, 405, 'not-supported', 'status endpoint supports GET and DELETE');
  const pages = manifestPages(exp);
  if (pageNo < 1 || pageNo > pages.length) return sendOO(res, 404, 'not-found', `no manifest page ${pageNo}`);
  exp.statusRequests++;
  const sf = exp.cfg.statusFault;
  if (sf && fires(`${exp.key}|status`, sf)) return sendFault(res, sf, 'status');

  const partial = partialMode(exp);
  const partialStatus = Number(exp.cfg.partialStatus) === 200 ? 200 : 202;
  if (exp.pollsLeft > 0) {
    if (partial && partialStatus === 200 && pageNo === 1) {
      // First manifest page is ready early; the rest of the export is still running.
      return sendManifest(res, buildManifest(ctx, exp, 1));
    }
    exp.pollsLeft--;
    const headers = inProgressHeaders(exp);
    if (partial && partialStatus === 202 && pageNo === 1) {
      // IG: in-progress response may carry a partial manifest (no link yet)
      return sendJson(res, 202, buildManifest(ctx, exp, 1, { withLink: false }), headers);
    }
    res.writeHead(202, { ...headers, 'Content-Length': 0 });
    return res.end();
  }
  const ee = exp.cfg.exportError;
  if (ee) {
    const status = Number(ee.status) || 500;
    return sendOO(res, status, ee.code || 'exception', ee.message || 'simulated export failure');
  }
  const mf = exp.cfg.manifestFault;
  if (mf && fires(`${exp.key}|manifest`, mf)) return sendFault(res, mf, 'manifest');
  sendManifest(res, buildManifest(ctx, exp, pageNo));
}

async function handleStaticManifest(req, res, ctx, pageNo) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendOO(res, 405, 'not-supported', 'use GET');
  const exp = getStaticExport(ctx);
  const pages = manifestPages(exp);
  if (pageNo < 1 || pageNo > pages.length) return sendOO(res, 404, 'not-found', `no manifest page ${pageNo}`);
  const mf = ctx.cfg.manifestFault;
  if (mf && fires(`${exp.key}|manifest`, mf)) return sendFault(res, mf, 'manifest');
  sendManifest(res, buildManifest(ctx, exp, pageNo));
}

// Checks the download token (main origin, requiresAccessToken). Returns false after sending an error.
function checkDownloadAuth(req, res, ctx, expKey) {
  if (ctx.cfg.auth === false || ctx.other) return true;
  const token = requireToken(req, res);
  if (!token) return false;
  if (ctx.cfg.expireTokenOnce && fires(`${expKey}|expireOnce`, { times: 1 })) {
    tokens.delete(token.value);
    sendOO(res, 401, 'expired', 'access token expired',
      { 'WWW-Authenticate': bearerChallenge('invalid_token', 'access token expired') });
    return false;
  }
  return true;
}

async function handleFile(req, res, ctx, exportId, name) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendOO(res, 405, 'not-supported', 'use GET');
  const exp = exportId === 'static' ? getStaticExport(ctx) : exportsById.get(exportId);
  if (!exp || exp.cfgStr !== ctx.cfgStr) return sendOO(res, 404, 'not-found', `no export ${exportId}`);
  const file = exp.files.find((f) => f.name === name);
  if (!file) return sendOO(res, 404, 'not-found', `no file ${name} in export ${exportId}`);
  if (!checkDownloadAuth(req, res, ctx, exp.key)) return;
  if (exp.cfg.redirectFiles && !ctx.other) {
    const loc = `http://${hostnameOf(req.headers.host)}:${ports.other}${ctx.url.pathname}`;
    res.writeHead(302, { Location: loc, 'Content-Length': 0 });
    return res.end();
  }
  const fsSpec = exp.cfg.fileStatus;
  if (fsSpec && fsSpec.type === file.type && fires(`${exp.key}|fileStatus|${file.type}`, fsSpec, Infinity)) {
    const spec = { ...fsSpec };
    const st = Number(spec.status) || 500;
    if (!spec.retryAfter && (st === 429 || st === 503)) spec.retryAfter = { style: 'seconds', value: 1 };
    return sendFault(res, spec, 'file download');
  }
  let cut = null;
  const cf = exp.cfg.cutFile;
  if (cf && req.method === 'GET' && cf.type === file.type && fires(`${exp.key}|cut|${file.type}`, cf, Infinity)) cut = Math.max(0, Number(cf.afterBytes) || 0);
  const body = fileBody(file, exp.cfg, ctx.base);
  await serveRepresentation(req, res, {
    cfg: exp.cfg,
    body,
    contentType: 'application/fhir+ndjson',
    etagParts: [exp.id, file.name, exp.transactionTime],
    lastModified: file.fx ? file.fx.mtime : new Date(exp.transactionTime),
    cut,
  });
}

async function handleBinary(req, res, ctx, id) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendOO(res, 405, 'not-supported', 'use GET');
  const a = Object.prototype.hasOwnProperty.call(ATTACHMENTS, id) ? ATTACHMENTS[id] : null;
  if (!a || !a.exists) return sendOO(res, 404, 'not-found', `Binary/${id} not found`);
  if (!checkDownloadAuth(req, res, ctx, `binary|${ctx.cfgStr}`)) return;
  const accept = mediaTypes(req.headers.accept);
  if (accept.includes('application/fhir+json') || accept.includes('application/json')) {
    const data = fs.readFileSync(a.path);
    const resource = { resourceType: 'Binary', id, contentType: a.contentType, data: data.toString('base64') };
    return sendJson(res, 200, resource, {}, accept.includes('application/fhir+json') ? 'application/fhir+json' : 'application/json');
  }
  await serveRepresentation(req, res, {
    cfg: { range: ctx.cfg.range, slowFileMs: ctx.cfg.slowFileMs },
    body: { path: a.path, start: 0, end: a.size },
    contentType: a.contentType,
    etagParts: ['Binary', id, a.size],
    lastModified: a.mtime,
    cut: null,
  });
}

// ---------------------------------------------------------------------------
// dispatch

async function route(req, res, portKind) {
  const url = new URL(req.url, 'http://x');
  const hostHeader = req.headers.host || `${BIND_HOST}:${portKind === 'other' ? ports.other : ports.main}`;
  const origin = `http://${hostHeader}`;
  let segs;
  try {
    segs = url.pathname.split('/').slice(1).map((s) => decodeURIComponent(s));
  } catch {
    return sendOO(res, 400, 'invalid', 'malformed URL path');
  }

  // test-control endpoints (main port, server root)
  if (portKind === 'main' && segs[0] === '__log') {
    if (req.method === 'GET') return sendJson(res, 200, requestLog);
    if (req.method === 'DELETE') { requestLog.length = 0; res.writeHead(204); return res.end(); }
    return sendOO(res, 405, 'not-supported', 'GET or DELETE');
  }
  if (portKind === 'main' && segs[0] === '__exports') {
    const view = (e) => ({
      id: e.id, level: e.level, groupId: e.groupId, method: e.method, requestUrl: e.requestUrl,
      params: e.params, rawParams: e.pairs, prefer: e.prefer, clientId: e.clientId, types: e.types,
      pollsLeft: e.pollsLeft, statusRequests: e.statusRequests, createdAt: e.createdAt,
      files: e.files.map((f) => ({ kind: f.kind, type: f.type, name: f.name, count: f.count })),
      deletedIds: e.cfg.deleted ? DELETED_IDS : [],
    });
    if (segs[1]) {
      const e = exportsById.get(segs[1]);
      return e ? sendJson(res, 200, view(e)) : sendOO(res, 404, 'not-found', 'no such export');
    }
    return sendJson(res, 200, [...exportsById.values()].map(view));
  }

  let cfgStr = '';
  let rest = segs;
  if (segs[0] === 'sim') {
    if (segs.length < 2) return sendOO(res, 404, 'not-found', 'missing simulation config');
    cfgStr = segs[1];
    rest = segs.slice(2);
  }
  let cfg;
  try {
    cfg = parseConfig(cfgStr);
  } catch (e) {
    return sendOO(res, e.status || 400, 'invalid', e.message);
  }
  const prefix = cfgStr ? `/sim/${cfgStr}` : '';
  const ctx = {
    url, cfg, cfgStr, origin, other: portKind === 'other',
    base: `${origin}${prefix}/fhir`,
  };
  if (cfg.slowMs) await delay(Number(cfg.slowMs));

  if (portKind === 'main' && rest.length === 1 && rest[0] === 'register') return handleRegister(req, res);
  if (rest[0] !== 'fhir') return sendOO(res, 404, 'not-found', `no route for ${url.pathname}`);
  const r = rest.slice(1);
  const m = req.method;

  if (portKind === 'other') {
    // the "other origin" is a plain file server (think pre-signed object storage URLs)
    if (r[0] === 'files' && r.length === 3) return handleFile(req, res, ctx, r[1], r[2]);
    if (r[0] === 'Binary' && r.length === 2) return handleBinary(req, res, ctx, r[1]);
    return sendOO(res, 404, 'not-found', `no route for ${url.pathname} on this origin`);
  }

  if (r.length === 2 && r[0] === '.well-known' && r[1] === 'smart-configuration') {
    if (m !== 'GET') return sendOO(res, 405, 'not-supported', 'use GET');
    if (cfg.noWellKnown) return sendOO(res, 404, 'not-found', 'no SMART configuration here');
    return sendJson(res, 200, smartConfiguration(ctx));
  }
  if (r.length === 1 && r[0] === 'metadata') {
    if (m !== 'GET') return sendOO(res, 405, 'not-supported', 'use GET');
    return sendJson(res, 200, capabilityStatement(ctx), {}, 'application/fhir+json');
  }
  if (r.length === 2 && r[0] === 'auth' && r[1] === 'token') return handleToken(req, res, ctx);
  if (r.length === 1 && r[0] === '$export') return handleKickoff(req, res, ctx, 'system');
  if (r.length === 2 && r[0] === 'Patient' && r[1] === '$export') return handleKickoff(req, res, ctx, 'patient');
  if (r.length === 3 && r[0] === 'Group' && r[2] === '$export') {
    if (!/^[A-Za-z0-9\-.]{1,64}$/.test(r[1])) return sendOO(res, 400, 'invalid', 'invalid Group id');
    return handleKickoff(req, res, ctx, 'group', r[1]);
  }
  if (r[0] === 'status' && r.length === 2) return handleStatus(req, res, ctx, r[1], 1);
  if (r[0] === 'status' && r.length === 4 && r[2] === 'page' && /^\d+$/.test(r[3])) {
    return handleStatus(req, res, ctx, r[1], Number(r[3]));
  }
  if (r[0] === 'files' && r.length === 3) return handleFile(req, res, ctx, r[1], r[2]);
  if (r[0] === 'static' && r.length === 2) {
    if (r[1] === 'manifest.json') return handleStaticManifest(req, res, ctx, 1);
    const pm = /^manifest-(\d+)\.json$/.exec(r[1]);
    if (pm) return handleStaticManifest(req, res, ctx, Number(pm[1]));
  }
  if (r[0] === 'Binary' && r.length === 2) return handleBinary(req, res, ctx, r[1]);
  return sendOO(res, 404, 'not-found', `no route for ${m} ${url.pathname}`);
}

function makeHandler(portKind) {
  return async (req, res) => {
    let entry = null;
    try {
      req.rawBody = (req.method === 'GET' || req.method === 'HEAD') ? Buffer.alloc(0) : await readBody(req);
      const p = req.url.split('?')[0];
      if (!(portKind === 'main' && (p === '/__log' || p.startsWith('/__exports')))) {
        entry = {
          port: portKind === 'main' ? ports.main : ports.other,
          origin: portKind,
          method: req.method,
          path: req.url,
          headers: redactHeaders(req.headers),
          body: logBody(req, req.rawBody),
          time: new Date().toISOString(),
        };
        requestLog.push(entry);
        if (requestLog.length > 100000) requestLog.splice(0, requestLog.length - 100000);
        req.logEntry = entry;
        res.on('finish', () => { entry.status = res.statusCode; });
        res.on('close', () => { if (entry.status === undefined) { entry.status = res.statusCode; entry.aborted = true; } });
      }
      await route(req, res, portKind);
    } catch (e) {
      if (!res.headersSent) sendOO(res, e.status || 500, e.status === 413 ? 'too-costly' : 'exception', e.message || 'internal error');
      else res.destroy();
    }
  };
}

// ---------------------------------------------------------------------------
// start

const mainServer = http.createServer(makeHandler('main'));
const otherServer = http.createServer(makeHandler('other'));
for (const s of [mainServer, otherServer]) {
  s.keepAliveTimeout = 5000;
  s.on('clientError', (err, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'); });
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, BIND_HOST, () => resolve(server.address().port));
  });
}

function shutdown() {
  for (const s of [mainServer, otherServer]) {
    s.close();
    s.closeAllConnections?.();
  }
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

try {
  ports.main = await listen(mainServer, MAIN_PORT);
  ports.other = await listen(otherServer, OTHER_PORT);
} catch (e) {
  process.stderr.write(`cannot listen: ${e.message}\n`);
  process.exit(1);
}
process.stdout.write(`LISTENING ${JSON.stringify({ port: ports.main, otherPort: ports.other })}\n`);
