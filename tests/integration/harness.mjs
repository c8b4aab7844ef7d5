// Shared helpers for the integration suites.  The consumer (PostgreSQL,
// Apache + mod_fcgid, worker) is started by tests/run-all.sh, which passes
// CONSUMER_BASE, VAR_DIR, ROOT_DIR and CONSUMER_DB.  Each suite starts its own
// test provider (tests/provider/server.mjs) so faults never leak between
// suites.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

export const BASE = process.env.CONSUMER_BASE;
export const VAR = process.env.VAR_DIR;
export const ROOT = process.env.ROOT_DIR || path.resolve(import.meta.dirname, '../..');
export const DB = process.env.CONSUMER_DB;
export const FIXTURES = process.env.FIXTURES_DIR || path.resolve(ROOT, '../shared/fixtures');
export const TOKEN_URL = `${BASE}/auth/token`;

if (!BASE || !VAR) throw new Error('run through tests/run-all.sh (CONSUMER_BASE/VAR_DIR unset)');

export function adminAuth() {
  const pw = fs.readFileSync(path.join(VAR, 'admin-password'), 'utf8').trim();
  return 'Basic ' + Buffer.from(`admin:${pw}`).toString('base64');
}

export const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---------------------------------------------------------------- provider
export async function startProvider() {
  const child = spawn(process.execPath, [path.join(ROOT, 'tests/provider/server.mjs'), '--port', '0',
    '--fixtures', FIXTURES], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: child.stdout });
  const info = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`provider exited ${code}`)));
    rl.on('line', (line) => {
      const m = /^LISTENING (.*)$/.exec(line);
      if (m) resolve(JSON.parse(m[1]));
    });
  });
  const origin = `http://127.0.0.1:${info.port}`;
  return {
    child, origin, port: info.port, otherPort: info.otherPort,
    base(cfg) { return cfg ? `${origin}/sim/${b64url(JSON.stringify(cfg))}/fhir` : `${origin}/fhir`; },
    async log() { return (await fetch(`${origin}/__log`)).json(); },
    async clearLog() { await fetch(`${origin}/__log`, { method: 'DELETE' }); },
    // Registers the consumer (its /jwks URL) as a client of this provider.
    async registerConsumer() {
      const r = await fetch(`${origin}/register`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jwks_url: `${BASE}/jwks` }) });
      if (r.status !== 200 && r.status !== 201) throw new Error(`provider register: ${r.status}`);
      return (await r.json()).client_id;
    },
    stop() { child.kill('SIGTERM'); },
  };
}

// ---------------------------------------------------------------- keys & JWT
export function makeKey(alg = 'ES384') {
  const kind = alg.startsWith('ES') ? 'ec' : 'rsa';
  const opts = kind === 'ec' ? { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg] }
    : { modulusLength: 2048 };
  const { privateKey, publicKey } = crypto.generateKeyPairSync(kind, opts);
  const jwk = publicKey.export({ format: 'jwk' });
  jwk.kid = crypto.randomBytes(8).toString('hex');
  jwk.alg = alg;
  return { alg, privateKey, publicKey, jwk, kid: jwk.kid, jwks: { keys: [jwk] } };
}

export function signJwt(header, claims, key, alg) {
  const h = b64url(JSON.stringify(header));
  const p = b64url(JSON.stringify(claims));
  const input = `${h}.${p}`;
  let sig;
  if (alg === 'none') sig = '';
  else if (alg.startsWith('HS')) sig = b64url(crypto.createHmac('sha' + alg.slice(2), key).update(input).digest());
  else {
    const hash = 'sha' + alg.slice(2);
    sig = b64url(crypto.sign(hash, Buffer.from(input), alg.startsWith('ES')
      ? { key, dsaEncoding: 'ieee-p1363' } : key));
  }
  return `${input}.${sig}`;
}

export function assertion(client, key, overrides = {}, headerOverrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: client, sub: client, aud: TOKEN_URL, exp: now + 240, jti: crypto.randomUUID(), ...overrides };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  const header = { alg: key.alg, kid: key.kid, typ: 'JWT', ...headerOverrides };
  return signJwt(header, claims, key.privateKey, header.alg);
}

export async function tokenRequest(fields) {
  return fetch(TOKEN_URL, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString() });
}

export async function getToken(clientId, key, scope = 'system/*.write') {
  const r = await tokenRequest({ grant_type: 'client_credentials', scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion(clientId, key) });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`token: ${r.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

// ---------------------------------------------------------------- consumer
export async function register(body) {
  return fetch(`${BASE}/auth/register`, { method: 'POST',
    headers: { authorization: adminAuth(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

// A provider client registered at the consumer, with its own key and token.
export async function newClient(provider, cfg, extra = {}) {
  const key = makeKey(extra.alg || 'ES384');
  const fhirBase = provider.base(cfg);
  const body = { name: extra.name || 'test provider', fhir_base_url: fhirBase, jwks: key.jwks, ...extra.body };
  if (!body.provider_auth || body.provider_auth === 'smart')
    body.provider_client_id = body.provider_client_id || await provider.registerConsumer();
  const r = await register(body);
  const reg = await r.json();
  if (r.status !== 201) throw new Error(`register: ${r.status} ${JSON.stringify(reg)}`);
  const token = await getToken(reg.client_id, key);
  return { id: reg.client_id, key, token, fhirBase };
}

export function importParams(exportUrl, extra = []) {
  return { resourceType: 'Parameters', parameter: [{ name: 'exportUrl', valueUrl: exportUrl }, ...extra] };
}

export async function ping(client, params, headers = {}) {
  return fetch(`${BASE}/$import`, { method: 'POST', headers: {
    authorization: `Bearer ${client.token}`, 'content-type': 'application/fhir+json',
    accept: 'application/fhir+json', prefer: 'respond-async', ...headers }, body: JSON.stringify(params) });
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls a status URL the way a provider's mediator would: honouring
// Retry-After, until a final answer or the time limit.
export async function pollStatus(url, token, limitMs = 90000) {
  const until = Date.now() + limitMs;
  const progress = [];
  for (;;) {
    const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (r.status !== 202 && r.status !== 429) return { res: r, body: await r.json().catch(() => null), progress };
    progress.push(r.headers.get('x-progress'));
    await r.arrayBuffer();
    if (Date.now() > until) throw new Error(`import still running after ${limitMs} ms: ${progress.at(-1)}`);
    const ra = Number(r.headers.get('retry-after'));
    await delay((Number.isFinite(ra) && ra > 0 ? ra : 1) * 1000);
  }
}

export async function fetchOutcome(statusBody, token) {
  const url = statusBody.outcome[0].url;
  const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await r.text();
  return { res: r, lines: text.split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

export function sql(query, ...params) {
  // psql variables keep test data out of the SQL text as well
  const args = ['-X', '-q', '-tA', '-d', DB, '-v', 'ON_ERROR_STOP=1'];
  params.forEach((p, i) => args.push('-v', `p${i + 1}=${p}`));
  const out = execFileSync('psql', args, { input: query, encoding: 'utf8' });
  return out.trim().split('\n').filter(Boolean).map((l) => l.split('|'));
}

export function importIdFrom(location) {
  return location.split('/').pop();
}

export function storedFiles(importId) {
  const dir = path.join(VAR, 'data', importId);
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort() : [];
}

export function readStored(importId, name) {
  return fs.readFileSync(path.join(VAR, 'data', importId, name));
}

export function fixture(type) {
  return fs.readFileSync(path.join(FIXTURES, 'fhir', `${type}.ndjson`));
}

export function fixtureTypes() {
  return fs.readdirSync(path.join(FIXTURES, 'fhir')).filter((f) => f.endsWith('.ndjson')).map((f) => f.slice(0, -7)).sort();
}
