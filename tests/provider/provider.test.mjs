// Self-test of the FHIR Bulk Data test provider.  Run: node --test tests/provider/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import http from 'node:http';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(here, 'server.mjs');
const FIXTURES = path.resolve(process.env.FIXTURES_DIR || path.join(here, '../../../shared/fixtures'));
const FHIR_DIR = path.join(FIXTURES, 'fhir');
const fixture = (type) => fs.readFileSync(path.join(FHIR_DIR, `${type}.ndjson`));
const ALL_TYPES = fs.readdirSync(FHIR_DIR).filter((f) => f.endsWith('.ndjson')).map((f) => f.slice(0, -7)).sort();

let proc;
let port;
let otherPort;
let root;

// ---------------------------------------------------------------------------
// helpers

function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const h = { ...headers };
    if (payload) h['content-length'] = payload.length;
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent: false }, (res) => {
      const chunks = [];
      let done = false;
      const finish = (complete) => {
        if (done) return;
        done = true;
        const buf = Buffer.concat(chunks);
        let json;
        try { json = JSON.parse(buf.toString('utf8')); } catch { /* not json */ }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, json, complete });
      };
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish(res.complete));
      res.on('aborted', () => finish(false));
      res.on('error', () => finish(false));
      res.on('close', () => finish(res.complete));
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

function cfgBase(cfg) {
  if (!cfg) return `${root}/fhir`;
  const s = Buffer.from(JSON.stringify({ tag: crypto.randomUUID(), ...cfg })).toString('base64url');
  return `${root}/sim/${s}/fhir`;
}

function genKeys() {
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecJwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES384', use: 'sig' };
  const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS384', use: 'sig' };
  return { ec, rsa, ecJwk, rsaJwk };
}

function signJwt(header, payload, privateKey) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc(header)}.${enc(payload)}`;
  let sig;
  if (header.alg === 'ES384') sig = crypto.sign('sha384', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  else if (header.alg === 'RS384') sig = crypto.sign('sha384', Buffer.from(input), privateKey);
  else if (header.alg === 'HS256') sig = crypto.createHmac('sha256', privateKey).update(input).digest();
  else sig = Buffer.alloc(0);
  return `${input}.${sig.toString('base64url')}`;
}

let keys;
let clientId;

function assertion(base, { alg = 'ES384', kid, key, claims = {}, header = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const k = key || (alg === 'RS384' ? keys.rsa.privateKey : keys.ec.privateKey);
  return signJwt(
    { alg, typ: 'JWT', kid: kid || (alg === 'RS384' ? 'rsa-1' : 'ec-1'), ...header },
    { iss: clientId, sub: clientId, aud: `${base}/auth/token`, exp: now + 240, jti: crypto.randomUUID(), ...claims },
    k);
}

function tokenRequest(base, jwt, scope = 'system/*.read') {
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: jwt,
    scope,
  });
  return request(`${base}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  });
}

async function getToken(base, alg = 'ES384') {
  const r = await tokenRequest(base, assertion(base, { alg }));
  assert.equal(r.status, 200, r.body.toString());
  return r.json.access_token;
}

const KICK_HEADERS = { accept: 'application/fhir+json', prefer: 'respond-async' };

async function kickoff(base, token, { query = '', method = 'GET', parameters, path: p = '/$export', headers = {} } = {}) {
  const h = { ...KICK_HEADERS, ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let body;
  if (parameters) {
    h['content-type'] = 'application/fhir+json';
    body = JSON.stringify({ resourceType: 'Parameters', parameter: parameters });
  }
  return request(`${base}${p}${query}`, { method, headers: h, body });
}

// Polls until the manifest is ready (the provider counts polls, no waiting needed).
async function pollManifest(statusUrl, token, maxPolls = 20) {
  const headers = token ? { authorization: `Bearer ${token}`, accept: 'application/json' } : { accept: 'application/json' };
  const seen = [];
  for (let i = 0; i < maxPolls; i++) {
    const r = await request(statusUrl, { headers });
    seen.push(r);
    if (r.status !== 202) return { final: r, seen };
  }
  throw new Error('export did not finish');
}

async function runExport(base, token, opts) {
  const k = await kickoff(base, token, opts);
  assert.equal(k.status, 202, k.body.toString());
  const loc = k.headers['content-location'];
  assert.match(loc, /^http:\/\//);
  const { final, seen } = await pollManifest(loc, token);
  return { loc, final, seen, manifest: final.json };
}

const auth = (token) => (token ? { authorization: `Bearer ${token}` } : {});

// ---------------------------------------------------------------------------
// lifecycle

before(async () => {
  proc = spawn(process.execPath, [SERVER, '--port', '0', '--fixtures', FIXTURES], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: proc.stdout });
  const line = await new Promise((resolve, reject) => {
    rl.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
  const m = /^LISTENING (\{.*\})$/.exec(line);
  assert.ok(m, `unexpected first line: ${line}`);
  ({ port, otherPort } = JSON.parse(m[1]));
  root = `http://127.0.0.1:${port}`;
  keys = genKeys();
  const reg = await request(`${root}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jwks: { keys: [keys.ecJwk, keys.rsaJwk] } }),
  });
  assert.equal(reg.status, 201);
  clientId = reg.json.client_id;
  assert.ok(clientId);
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
});

// ---------------------------------------------------------------------------
// discovery and auth

test('discovery: smart-configuration, metadata, noWellKnown', async () => {
  const base = cfgBase();
  const sc = await request(`${base}/.well-known/smart-configuration`);
  assert.equal(sc.status, 200);
  assert.equal(sc.json.token_endpoint, `${base}/auth/token`);
  assert.deepEqual(sc.json.token_endpoint_auth_methods_supported, ['private_key_jwt']);
  assert.ok(sc.json.token_endpoint_auth_signing_alg_values_supported.includes('ES384'));
  assert.ok(sc.json.capabilities.includes('client-confidential-asymmetric'));
  const md = await request(`${base}/metadata`);
  assert.equal(md.json.resourceType, 'CapabilityStatement');
  const ext = md.json.rest[0].security.extension[0];
  assert.equal(ext.url, 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
  assert.equal(ext.extension.find((e) => e.url === 'token').valueUri, `${base}/auth/token`);
  const nb = cfgBase({ noWellKnown: true });
  assert.equal((await request(`${nb}/.well-known/smart-configuration`)).status, 404);
});

test('token endpoint accepts ES384 and RS384 assertions', async () => {
  const base = cfgBase({ tokenLifetime: 120 });
  for (const alg of ['ES384', 'RS384']) {
    const r = await tokenRequest(base, assertion(base, { alg }), 'system/Patient.read system/Observation.rs');
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.json.token_type, 'bearer');
    assert.equal(r.json.expires_in, 120);
    assert.equal(r.json.scope, 'system/Patient.read system/Observation.rs');
    assert.ok(r.json.access_token.length >= 32);
  }
});

test('token endpoint rejects bad assertions', async () => {
  const base = cfgBase();
  const now = Math.floor(Date.now() / 1000);
  const pem = keys.ec.publicKey.export({ format: 'pem', type: 'spki' });
  const replayed = assertion(base);
  assert.equal((await tokenRequest(base, replayed)).status, 200);
  const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const good = assertion(base);
  const [h, p] = good.split('.');
  const tamperedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url')), jti: 'changed' })).toString('base64url');
  const cases = [
    ['alg none', assertion(base, { alg: 'none' }), /alg/],
    ['HS256 with public key as secret', assertion(base, { alg: 'HS256', key: pem }), /alg/],
    ['expired exp', assertion(base, { claims: { exp: now - 10 } }), /expired/],
    ['exp more than 5 minutes ahead', assertion(base, { claims: { exp: now + 600 } }), /five minutes/],
    ['wrong aud', assertion(base, { claims: { aud: `${root}/fhir/token` } }), /aud/],
    ['replayed jti', replayed, /replay/],
    ['unknown kid', assertion(base, { kid: 'nope' }), /kid/],
    ['bad signature (other key)', assertion(base, { key: other.privateKey }), /signature/],
    ['bad signature (tampered payload)', `${h}.${tamperedPayload}.${good.split('.')[2]}`, /signature/],
    ['iss != sub', assertion(base, { claims: { sub: 'other' } }), /sub/],
    ['missing jti', assertion(base, { claims: { jti: undefined } }), /jti/],
    ['RSA kid used with ES384', assertion(base, { kid: 'rsa-1' }), /cannot be used/],
  ];
  for (const [name, jwt, why] of cases) {
    const r = await tokenRequest(base, jwt);
    assert.equal(r.status, 401, `${name}: status ${r.status}`);
    assert.ok(r.json && r.json.error === 'invalid_client' && !r.json.access_token, `${name}: ${r.body}`);
    assert.match(r.json.error_description, why, name);
  }
  const badGrant = await request(`${base}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=password&scope=system/*.read',
  });
  assert.equal(badGrant.status, 400);
  assert.equal(badGrant.json.error, 'unsupported_grant_type');
  // no token -> 401 on kick-off
  const k = await kickoff(base, null);
  assert.equal(k.status, 401);
  assert.equal(k.json.resourceType, 'OperationOutcome');
});

// ---------------------------------------------------------------------------
// export flows

test('POST kick-off: full export, bytes identical to fixtures', async () => {
  const base = cfgBase({ polls: 2 });
  const token = await getToken(base);
  const { seen, final, manifest, loc } = await runExport(base, token, {
    method: 'POST',
    parameters: [{ name: '_outputFormat', valueString: 'application/fhir+ndjson' }, { name: '_since', valueInstant: '2000-01-01T00:00:00Z' }],
  });
  assert.equal(seen.length, 3);
  assert.equal(seen[0].status, 202);
  assert.match(seen[0].headers['x-progress'], /exporting \d+%/);
  assert.equal(seen[0].headers['retry-after'], '1');
  assert.equal(final.status, 200);
  assert.equal(manifest.requiresAccessToken, true);
  assert.deepEqual(manifest.output.map((o) => o.type), ALL_TYPES);
  for (const o of manifest.output) {
    const r = await request(o.url, { headers: { ...auth(token), accept: 'application/fhir+ndjson' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/fhir+ndjson');
    const fx = fixture(o.type);
    assert.ok(r.body.equals(fx), `${o.type} differs`);
    assert.equal(o.count, fx.toString().split('\n').filter(Boolean).length);
  }
  // download without token is refused
  assert.equal((await request(manifest.output[0].url)).status, 401);
  // the kick-off was recorded
  const id = loc.split('/').pop();
  const rec = (await request(`${root}/__exports/${id}`)).json;
  assert.equal(rec.method, 'POST');
  assert.equal(rec.params._since, '2000-01-01T00:00:00Z');
  // DELETE the export, then it is gone
  const del = await request(loc, { method: 'DELETE', headers: auth(token) });
  assert.equal(del.status, 202);
  assert.equal((await request(loc, { headers: auth(token) })).status, 404);
  assert.equal((await request(manifest.output[0].url, { headers: auth(token) })).status, 404);
});

test('GET kick-off: _type filter, parameters pass-through, validation errors', async () => {
  const base = cfgBase({ polls: 0 });
  const token = await getToken(base);
  const { manifest, loc } = await runExport(base, token, {
    path: '/Group/g1/$export',
    query: '?_type=Patient,Condition&_type=Encounter&_typeFilter=Condition%3Fclinical-status%3Dactive&_outputFormat=ndjson',
  });
  assert.deepEqual(manifest.output.map((o) => o.type), ['Condition', 'Encounter', 'Patient']);
  const rec = (await request(`${root}/__exports/${loc.split('/').pop()}`)).json;
  assert.equal(rec.level, 'group');
  assert.equal(rec.groupId, 'g1');
  assert.deepEqual(rec.params._typeFilter, ['Condition?clinical-status=active']);
  const log = (await request(`${root}/__log`)).json;
  assert.ok(log.some((e) => e.path.includes('/Group/g1/$export') && e.headers.authorization === 'present' && e.status === 202));

  assert.equal((await kickoff(base, token, { query: '?_type=Nope' })).status, 400);
  assert.equal((await kickoff(base, token, { query: '?_outputFormat=text/csv' })).status, 400);
  assert.equal((await kickoff(base, token, { headers: { prefer: '' } })).status, 400);
  assert.equal((await kickoff(base, token, { headers: { accept: 'text/html' } })).status, 400);
  // scopes restrict what can be exported
  const narrow = (await tokenRequest(base, assertion(base), 'system/Patient.read')).json.access_token;
  assert.equal((await kickoff(base, narrow, { query: '?_type=Condition' })).status, 403);
});

test('fault: cutFile cuts the connection mid-file, then serves normally', async () => {
  const base = cfgBase({ polls: 0, types: ['Patient'], cutFile: { type: 'Patient', afterBytes: 1000, times: 1 } });
  const token = await getToken(base);
  const { manifest } = await runExport(base, token);
  const url = manifest.output[0].url;
  const r1 = await request(url, { headers: auth(token) });
  assert.equal(r1.complete, false);
  assert.equal(r1.body.length, 1000);
  assert.equal(Number(r1.headers['content-length']), fixture('Patient').length);
  const r2 = await request(url, { headers: auth(token) });
  assert.equal(r2.complete, true);
  assert.ok(r2.body.equals(fixture('Patient')));
});

test('fault: malformedLine and wrongType', async () => {
  const base = cfgBase({ polls: 0, types: ['Condition'], malformedLine: { type: 'Condition', line: 3 }, wrongType: { type: 'Condition', line: 2 } });
  const token = await getToken(base);
  const { manifest } = await runExport(base, token);
  const got = (await request(manifest.output[0].url, { headers: auth(token) })).body.toString().split('\n');
  const want = fixture('Condition').toString().split('\n');
  assert.equal(got.length, want.length);
  assert.equal(got[2], '{"resourceType":"Condition", broken');
  assert.equal(got[1], want[1].replace('"resourceType":"Condition"', '"resourceType":"Observation"'));
  assert.equal(got[0], want[0]);
  assert.deepEqual(got.slice(3), want.slice(3));
});

test('fault: 429 on kick-off with Retry-After HTTP-date, then accepted', async () => {
  const base = cfgBase({ kickoffFault: { status: 429, retryAfter: { style: 'date', value: 30 }, times: 1 } });
  const token = await getToken(base);
  const r1 = await kickoff(base, token);
  assert.equal(r1.status, 429);
  assert.equal(r1.json.issue[0].code, 'throttled');
  const when = Date.parse(r1.headers['retry-after']);
  assert.ok(when > Date.now() + 20e3 && when < Date.now() + 40e3);
  assert.equal((await kickoff(base, token)).status, 202);
});

test('fault: status 503, export error, expireTokenOnce, fileStatus', async () => {
  let base = cfgBase({ polls: 0, statusFault: { status: 503, retryAfter: { style: 'seconds', value: 2 } } });
  let token = await getToken(base);
  const k = await kickoff(base, token);
  const s1 = await request(k.headers['content-location'], { headers: auth(token) });
  assert.equal(s1.status, 503);
  assert.equal(s1.headers['retry-after'], '2');
  assert.equal(s1.json.issue[0].code, 'transient');
  assert.equal((await request(k.headers['content-location'], { headers: auth(token) })).status, 200);

  base = cfgBase({ polls: 1, exportError: { status: 500, code: 'exception', message: 'boom' } });
  token = await getToken(base);
  const { final } = await runExport(base, token);
  assert.equal(final.status, 500);
  assert.equal(final.json.issue[0].diagnostics, 'boom');

  base = cfgBase({ polls: 0, types: ['Device', 'Encounter'], expireTokenOnce: true, fileStatus: { type: 'Encounter', status: 500, times: 1 } });
  token = await getToken(base);
  const { manifest } = await runExport(base, token);
  const dev = manifest.output.find((o) => o.type === 'Device').url;
  const enc = manifest.output.find((o) => o.type === 'Encounter').url;
  const e1 = await request(dev, { headers: auth(token) });
  assert.equal(e1.status, 401);
  assert.match(e1.headers['www-authenticate'], /invalid_token/);
  assert.equal((await request(dev, { headers: auth(token) })).status, 401); // revoked
  token = await getToken(base);
  assert.ok((await request(dev, { headers: auth(token) })).body.equals(fixture('Device')));
  assert.equal((await request(enc, { headers: auth(token) })).status, 500);
  assert.ok((await request(enc, { headers: auth(token) })).body.equals(fixture('Encounter')));
});

test('paging: pageSize with next links, and allowPartialManifests', async () => {
  const base = cfgBase({ polls: 1, pageSize: 5, deleted: true, errorFile: true });
  const token = await getToken(base);
  const { manifest } = await runExport(base, token);
  const all = [...manifest.output];
  let page = manifest;
  let pages = 1;
  while (page.link) {
    const next = page.link.find((l) => l.relation === 'next').url;
    const r = await request(next, { headers: auth(token) });
    assert.equal(r.status, 200);
    page = r.json;
    pages++;
    all.push(...page.output);
    assert.equal(page.transactionTime, manifest.transactionTime);
  }
  assert.equal(pages, Math.ceil(ALL_TYPES.length / 5));
  assert.deepEqual(all.map((o) => o.type), ALL_TYPES);
  assert.equal(page.deleted.length, 1);
  assert.equal(manifest.error.length, 1);
  const del = await request(page.deleted[0].url, { headers: auth(token) });
  const bundle = JSON.parse(del.body.toString().split('\n')[0]);
  assert.equal(bundle.type, 'transaction');
  assert.equal(bundle.entry[0].request.method, 'DELETE');

  // allowPartialManifests: the in-progress 202 carries a partial manifest
  const b2 = cfgBase({ polls: 1, pageSize: 5 });
  const t2 = await getToken(b2);
  const { seen } = await runExport(b2, t2, { method: 'POST', parameters: [{ name: 'allowPartialManifests', valueBoolean: true }] });
  assert.equal(seen[0].status, 202);
  assert.equal(seen[0].json.output.length, 5);
  assert.equal(seen[0].json.link, undefined);
  assert.equal(seen[1].status, 200);
  assert.ok(seen[1].json.link);
});

test('gzip, range and static manifest', async () => {
  const base = cfgBase({ gzip: 'header', range: true, types: ['Patient'] });
  const token = await getToken(base);
  const m = (await request(`${base}/static/manifest.json`)).json;
  assert.equal(m.output.length, 1);
  const url = m.output[0].url;
  const gz = await request(url, { headers: { ...auth(token), 'accept-encoding': 'gzip' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.ok(zlib.gunzipSync(gz.body).equals(fixture('Patient')));
  const plain = await request(url, { headers: auth(token) });
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.ok(plain.body.equals(fixture('Patient')));
  const part = await request(url, { headers: { ...auth(token), range: 'bytes=1000-' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 1000-${fixture('Patient').length - 1}/${fixture('Patient').length}`);
  assert.ok(part.body.equals(fixture('Patient').subarray(1000)));
  // range disabled -> full 200
  const b2 = cfgBase({ types: ['Patient'] });
  const t2 = await getToken(b2);
  const m2 = (await request(`${b2}/static/manifest.json`)).json;
  const full = await request(m2.output[0].url, { headers: { ...auth(t2), range: 'bytes=1000-' } });
  assert.equal(full.status, 200);
  assert.ok(full.body.equals(fixture('Patient')));
});

test('redirectFiles: 302 to other origin, no Authorization forwarded there', async () => {
  const base = cfgBase({ polls: 0, types: ['Practitioner'], redirectFiles: true, filesPerType: 3 });
  const token = await getToken(base);
  const { manifest } = await runExport(base, token);
  assert.equal(manifest.output.length, 3);
  const parts = [];
  for (const o of manifest.output) {
    const r = await request(o.url, { headers: auth(token) });
    assert.equal(r.status, 302);
    const loc = new URL(r.headers.location);
    assert.equal(Number(loc.port), otherPort);
    const f = await request(loc.href); // a correct client does not forward the token
    assert.equal(f.status, 200);
    assert.equal(f.body.toString().split('\n').filter(Boolean).length, o.count);
    parts.push(f.body);
  }
  assert.ok(Buffer.concat(parts).equals(fixture('Practitioner')));
  const log = (await request(`${root}/__log`)).json;
  const otherHits = log.filter((e) => e.port === otherPort && e.path.includes(manifest.output[0].url.split('/sim/')[1].split('/')[0]));
  assert.equal(otherHits.length, 3);
  assert.ok(otherHits.every((e) => e.headers.authorization === undefined));
});

test('attachments: DocumentReference and Binary endpoints', async () => {
  const base = cfgBase({ polls: 0, attachments: true, types: ['DocumentReference'] });
  const token = await getToken(base);
  const { manifest } = await runExport(base, token, { query: '?_type=DocumentReference' });
  const docs = (await request(manifest.output[0].url, { headers: auth(token) })).body.toString().trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(docs.length, manifest.output[0].count);
  const urls = docs.map((d) => d.content[0].attachment.url).filter(Boolean);
  assert.ok(urls.includes(`${base}/Binary/pdf`));
  assert.ok(urls.includes('Binary/jpg'));
  const pdf = await request(`${base}/Binary/pdf`, { headers: auth(token) });
  assert.equal(pdf.headers['content-type'], 'application/pdf');
  assert.ok(pdf.body.equals(fs.readFileSync(path.join(FIXTURES, 'attachments/document.pdf'))));
  const bin = await request(`${base}/Binary/dicom`, { headers: { ...auth(token), accept: 'application/fhir+json' } });
  assert.equal(bin.json.resourceType, 'Binary');
  assert.ok(Buffer.from(bin.json.data, 'base64').equals(fs.readFileSync(path.join(FIXTURES, 'attachments/DICOM.jpg'))));
  assert.equal((await request(`${base}/Binary/pdf`)).status, 401);
});

test('client registered with jwks_url (fetched, re-fetched on unknown kid)', async () => {
  const first = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const second = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let jwks = { keys: [{ ...first.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' }] };
  let fetches = 0;
  const jwksServer = http.createServer((req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(jwks));
  });
  await new Promise((r) => jwksServer.listen(0, '127.0.0.1', r));
  try {
    const jwksUrl = `http://127.0.0.1:${jwksServer.address().port}/jwks.json`;
    const reg = await request(`${root}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jwks_url: jwksUrl, client_id: `jwks-url-client-${crypto.randomUUID()}` }),
    });
    assert.equal(reg.status, 201);
    const cid = reg.json.client_id;
    const base = cfgBase();
    const mk = (kid, key) => {
      const now = Math.floor(Date.now() / 1000);
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${enc({ alg: 'ES256', typ: 'JWT', kid, jku: jwksUrl })}.${enc({ iss: cid, sub: cid, aud: `${base}/auth/token`, exp: now + 60, jti: crypto.randomUUID() })}`;
      return `${input}.${crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    assert.equal((await tokenRequest(base, mk('k1', first.privateKey))).status, 200);
    assert.equal(fetches, 1);
    // key rotation: the provider re-fetches the JWKS when the kid is unknown
    jwks = { keys: [...jwks.keys, { ...second.publicKey.export({ format: 'jwk' }), kid: 'k2', alg: 'ES256' }] };
    assert.equal((await tokenRequest(base, mk('k2', second.privateKey))).status, 200);
    assert.equal(fetches, 2);
  } finally {
    jwksServer.close();
  }
});
