// POST $import validation, status, cancel and ownership.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, VAR, BASE, startProvider, newClient, importParams, ping, pollStatus, importIdFrom, sql, getToken,
} from './harness.mjs';

let provider, client, other;

before(async () => {
  provider = await startProvider();
  client = await newClient(provider, { polls: 1 });
  other = await newClient(provider, { polls: 1 });
});
after(() => provider.stop());

async function expectOO(res, status, re) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.resourceType, 'OperationOutcome');
  assert.match(res.headers.get('content-type'), /application\/fhir\+json/);
  if (re) assert.match(body.issue[0].diagnostics, re, JSON.stringify(body));
  return body;
}

test('ping without or with a bad token is refused', async () => {
  const params = importParams(client.fhirBase + '/$export');
  const r1 = await fetch(`${BASE}/$import`, { method: 'POST', headers: { 'content-type': 'application/fhir+json',
    prefer: 'respond-async' }, body: JSON.stringify(params) });
  await expectOO(r1, 401);
  await expectOO(await ping({ token: 'not-a-token' }, params), 401);
});

test('malformed pings get 400 OperationOutcomes that say what is wrong', async () => {
  const url = client.fhirBase + '/$export';
  const cases = [
    [importParams(url), { prefer: 'respond-sync' }, /Prefer/],
    [importParams(url), { accept: 'text/html' }, /Accept/],
    [{ resourceType: 'Patient' }, {}, /Parameters/],
    [{ resourceType: 'Parameters', parameter: [] }, {}, /exportUrl/],
    [importParams('not a url'), {}, /exportUrl/],
    [importParams(url, [{ name: 'exportType', valueCode: 'sideways' }]), {}, /exportType/],
    [importParams(url, [{ name: 'bogus', valueString: 'x' }]), {}, /bogus/],
    [importParams(url, [{ name: '_since', valueInstant: 'yesterday' }]), {}, /_since/],
  ];
  for (const [params, headers, re] of cases) await expectOO(await ping(client, params, headers), 400, re);
  const raw = await fetch(`${BASE}/$import`, { method: 'POST', headers: { authorization: `Bearer ${client.token}`,
    'content-type': 'application/fhir+json', prefer: 'respond-async' }, body: '{"resourceType": "Param' });
  await expectOO(raw, 400, /JSON/);
});

test('exportUrl outside the registered provider base is refused and never contacted', async () => {
  await provider.clearLog();
  const outside = [
    `${provider.origin}/elsewhere/$export`,
    `${provider.base()}x/$export`,
    `${client.fhirBase}/../../admin/$export`,
    'http://127.0.0.1:1/fhir/$export',
  ];
  for (const u of outside) await expectOO(await ping(client, importParams(u)), 403, /exportUrl/);
  const log = await provider.log();
  assert.deepEqual(log.filter((e) => !e.path.startsWith('/__log')), [], 'no request reached the provider');
});

test('a ping is accepted at once and the import completes', async () => {
  const r = await ping(client, importParams(client.fhirBase + '/$export',
    [{ name: '_type', valueString: 'Patient' }]));
  assert.equal(r.status, 202, await r.clone().text());
  const loc = r.headers.get('content-location');
  assert.match(loc, new RegExp(`^${BASE.replace(/[.]/g, '\\.')}/imports/[A-Za-z0-9_-]{22,}$`));
  const { res, body } = await pollStatus(loc, client.token);
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.ok(body.transactionTime);
  assert.equal(body.outcome[0].type, 'OperationOutcome');
});

test('status: 202 with X-Progress and Retry-After, 429 when polled too fast', async () => {
  const c = await newClient(provider, { polls: 50, retryAfter: { style: 'seconds', value: 1 } });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const loc = r.headers.get('content-location');
  // the worker has to get to the provider's 202s; poll until the first status answers 202
  let s = await fetch(loc, { headers: { authorization: `Bearer ${c.token}` } });
  assert.equal(s.status, 202);
  assert.ok(s.headers.get('x-progress').length < 100);
  assert.ok(Number(s.headers.get('retry-after')) >= 1);
  const fast = await fetch(loc, { headers: { authorization: `Bearer ${c.token}` } });
  await expectOO(fast, 429);
  assert.ok(Number(fast.headers.get('retry-after')) >= 1);
  await fetch(loc, { method: 'DELETE', headers: { authorization: `Bearer ${c.token}` } });
});

test('another client cannot see, read or cancel an import; unknown ids are 404', async () => {
  const c = await newClient(provider, { polls: 50 });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const loc = r.headers.get('content-location');
  const auth = { authorization: `Bearer ${other.token}` };
  await expectOO(await fetch(loc, { headers: auth }), 404);
  await expectOO(await fetch(`${loc}/outcome.ndjson`, { headers: auth }), 404);
  await expectOO(await fetch(loc, { method: 'DELETE', headers: auth }), 404);
  await expectOO(await fetch(loc, { headers: {} }), 401);
  await expectOO(await fetch(`${BASE}/imports/doesnotexist`, { headers: { authorization: `Bearer ${c.token}` } }), 404);
  // still running for its owner
  const id = importIdFrom(loc);
  assert.notEqual(sql("SELECT state FROM imports WHERE id = :'p1'", id)[0][0], 'cancelled');
  await fetch(loc, { method: 'DELETE', headers: { authorization: `Bearer ${c.token}` } });
});

test('cancel: 202, the provider export is deleted, files removed, then 404', async () => {
  const c = await newClient(provider, { polls: 3, slowFileMs: 200 });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const loc = r.headers.get('content-location');
  const id = importIdFrom(loc);
  // wait until the worker knows the provider's status URL, so the DELETE must reach it
  let statusUrl;
  for (let i = 0; i < 200 && !statusUrl; i++) {
    statusUrl = sql("SELECT provider_status_url FROM imports WHERE id = :'p1'", id)[0]?.[0];
    if (!statusUrl) await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(statusUrl, 'worker kicked off the export');
  const d = await fetch(loc, { method: 'DELETE', headers: { authorization: `Bearer ${c.token}` } });
  const oo = await expectOO(d, 202);
  assert.equal(oo.issue[0].severity, 'information');
  await expectOO(await fetch(loc, { headers: { authorization: `Bearer ${c.token}` } }), 404);
  await expectOO(await fetch(loc, { method: 'DELETE', headers: { authorization: `Bearer ${c.token}` } }), 404);
  // the worker finishes its clean-up: DELETE at the provider
  for (let i = 0; i < 300; i++) {
    if (sql("SELECT cancel_done FROM imports WHERE id = :'p1'", id)[0][0] === 't') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(sql("SELECT cancel_done FROM imports WHERE id = :'p1'", id)[0][0], 't');
  const log = await provider.log();
  const path = new URL(statusUrl).pathname;
  assert.ok(log.some((e) => e.method === 'DELETE' && e.path === path), 'DELETE sent to the provider status URL');
  assert.ok(!fs.existsSync(`${VAR}/data/${id}`) || fs.readdirSync(`${VAR}/data/${id}`).length === 0,
    'stored files removed (cancel_delete_files)');
});

test('too many running imports get 429 with Retry-After', async () => {
  const c = await newClient(provider, { polls: 100 });
  const locs = [];
  for (let i = 0; i < 3; i++) {
    const r = await ping(c, importParams(c.fhirBase + '/$export'));
    assert.equal(r.status, 202);
    locs.push(r.headers.get('content-location'));
  }
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  await expectOO(r, 429);
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  for (const l of locs) await fetch(l, { method: 'DELETE', headers: { authorization: `Bearer ${c.token}` } });
  const again = await ping(c, importParams(c.fhirBase + '/$export'));
  assert.equal(again.status, 202);
  await fetch(again.headers.get('content-location'), { method: 'DELETE', headers: { authorization: `Bearer ${c.token}` } });
});

test('a fresh token of the same client still sees its import', async () => {
  const r = await ping(client, importParams(client.fhirBase + '/$export', [{ name: '_type', valueString: 'Device' }]));
  const loc = r.headers.get('content-location');
  const token2 = await getToken(client.id, client.key);
  const { res } = await pollStatus(loc, token2);
  assert.equal(res.status, 200);
});

test('token-less status access works only when the switch is on', async () => {
  const c = await newClient(provider, { types: ['Device'] });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const loc = r.headers.get('content-location');
  const { res } = await pollStatus(loc, c.token);
  assert.equal(res.status, 200);
  // the shared Apache runs with the switch off
  await expectOO(await fetch(loc), 401);
  // a second instance of the FastCGI program with the switch on, spoken to
  // over its own FastCGI socket (libfcgi's cgi-fcgi plays the web server)
  const sock = path.join(os.tmpdir(), `bulk-import-tokenless-${process.pid}.sock`);
  fs.rmSync(sock, { force: true });
  const bin = path.join(ROOT, process.env.BUILD || 'build', 'bin', 'bulk-import.fcgi');
  const app = spawn(bin, ['-c', path.join(VAR, 'bulk-import.conf'), '-l', sock], {
    env: { ...process.env, BULK_IMPORT_STATUS_ALLOW_TOKENLESS: 'true' }, stdio: 'ignore' });
  try {
    for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((res2) => setTimeout(res2, 50));
    const call = (method, p) => execFileSync('cgi-fcgi', ['-bind', '-connect', sock], {
      encoding: 'utf8', env: { REQUEST_METHOD: method, PATH_INFO: p, SCRIPT_NAME: '', QUERY_STRING: '',
        SERVER_NAME: '127.0.0.1', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1' } });
    const id = importIdFrom(loc);
    // keep to the advertised polling interval (status_retry_after = 1 in tests)
    await new Promise((res2) => setTimeout(res2, 1100));
    const out = call('GET', `/imports/${id}`);
    assert.match(out, /^Status: 200/, out);
    const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
    assert.equal(body.requiresAccessToken, false);
    const unknown = call('GET', '/imports/no-such-import-id');
    assert.match(unknown, /^Status: 404/, unknown);
  } finally {
    app.kill('SIGTERM');
    fs.rmSync(sock, { force: true });
  }
});

test('a read-only token cannot start imports; a disabled client loses its tokens at once', async () => {
  const c = await newClient(provider, { types: ['Device'] });
  const readOnly = await getToken(c.id, c.key, 'system/Patient.read');
  const r = await ping({ token: readOnly }, importParams(c.fhirBase + '/$export'));
  await expectOO(r, 403, /scope/);
  const v2 = await getToken(c.id, c.key, 'system/*.cruds');
  const ok = await ping({ token: v2 }, importParams(c.fhirBase + '/$export'));
  assert.equal(ok.status, 202, 'SMART v2 create permission may start imports');
  sql("UPDATE clients SET enabled = false WHERE id = :'p1'", c.id);
  await expectOO(await fetch(ok.headers.get('content-location'), { headers: { authorization: `Bearer ${v2}` } }), 401);
  await expectOO(await ping({ token: v2 }, importParams(c.fhirBase + '/$export')), 401);
});
