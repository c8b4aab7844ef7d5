// End-to-end imports: dynamic and static, stored byte for byte, outcome file,
// kick-off parameters passed through, and provider faults.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  BASE, VAR, FIXTURES, startProvider, newClient, importParams, ping, pollStatus, fetchOutcome, importIdFrom, storedFiles,
  readStored, fixture, fixtureTypes, sql,
} from './harness.mjs';

let provider;
before(async () => { provider = await startProvider(); });
after(() => provider.stop());

// Runs one import to its end; returns what a mediator would see.
async function runImport(cfg, extraParams = [], opts = {}) {
  const c = opts.client || await newClient(provider, cfg, opts.clientExtra || {});
  const url = opts.exportUrl ? opts.exportUrl(c) : c.fhirBase + '/$export';
  const r = await ping(c, importParams(url, extraParams));
  assert.equal(r.status, 202, await r.clone().text());
  const loc = r.headers.get('content-location');
  const st = await pollStatus(loc, c.token);
  const id = importIdFrom(loc);
  return { c, loc, id, ...st };
}

function storedByType(id) {
  const out = {};
  for (const f of storedFiles(id).filter((n) => n.endsWith('.ndjson'))) {
    const m = /^\d+\.([A-Za-z]+)\.ndjson$/.exec(f);
    assert.ok(m, `unexpected stored name ${f}`);
    out[m[1]] = readStored(id, f);
  }
  return out;
}

test('dynamic import stores every file byte for byte', async () => {
  const { res, body, id, c, progress } = await runImport({ polls: 2 });
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.requiresAccessToken, true);
  const stored = storedByType(id);
  const types = fixtureTypes();
  assert.deepEqual(Object.keys(stored).sort(), types);
  for (const t of types) assert.ok(stored[t].equals(fixture(t)), `${t} differs from the provider's file`);
  assert.ok(progress.length >= 1 && progress.every((p) => p && p.length < 100));
  const { res: ores, lines } = await fetchOutcome(body, c.token);
  assert.equal(ores.status, 200);
  assert.match(ores.headers.get('content-type'), /application\/fhir\+ndjson/);
  assert.equal(lines.length, body.outcome[0].count);
  assert.ok(lines.every((l) => l.resourceType === 'OperationOutcome'));
  assert.ok(lines.every((l) => l.issue[0].severity === 'information'), JSON.stringify(lines));
  const patients = fixture('Patient').toString().trim().split('\n').length;
  assert.ok(lines.some((l) => l.issue[0].diagnostics.includes(`${patients}`) && l.issue[0].diagnostics.includes('Patient')));
  // nothing half-written is left behind
  assert.deepEqual(storedFiles(id).filter((f) => f.endsWith('.part')), []);
  // manifest.json is written last and describes every stored file
  const manifest = JSON.parse(readStored(id, 'manifest.json'));
  assert.equal(manifest.output.length, types.length);
  for (const e of manifest.output) {
    const bytes = readStored(id, e.destination);
    assert.equal(e.size, bytes.length);
    assert.equal(e.sha256, crypto.createHash('sha256').update(bytes).digest('hex'));
    assert.equal(e.lines, bytes.toString().split('\n').filter(Boolean).length);
  }
});

test('a partial import writes no manifest.json', async () => {
  const { res, id } = await runImport({ types: ['Patient', 'Device'], malformedLine: { type: 'Device', line: 1 } });
  assert.equal(res.status, 200);
  assert.ok(!storedFiles(id).includes('manifest.json'));
});

test('attachments are put inline or saved beside the file, per configuration', async () => {
  // the test consumer inlines image/jpeg and application/pdf up to 100 kB (tests/run-all.sh)
  const { res, body, id } = await runImport({ types: ['Patient', 'DocumentReference'], attachments: true });
  assert.equal(res.status, 200, JSON.stringify(body));
  const docName = storedFiles(id).find((f) => f.endsWith('.DocumentReference.ndjson'));
  assert.ok(docName, 'DocumentReference file stored');
  const docs = readStored(id, docName).toString().trim().split('\n').map((l) => JSON.parse(l));
  const atts = docs.flatMap((d) => d.content.map((c) => c.attachment));
  const jpg = fs.readFileSync(path.join(FIXTURES, 'attachments', 'portrait-1.jpg'));
  const pdf = fs.readFileSync(path.join(FIXTURES, 'attachments', 'document.pdf'));
  const inlined = atts.filter((a) => a.data);
  assert.ok(inlined.some((a) => Buffer.from(a.data, 'base64').equals(jpg) && a.size === jpg.length && !a.url),
    'small image inline');
  const saved = atts.filter((a) => a.url && a.url.startsWith('attachments/') && a.contentType === 'application/pdf');
  assert.ok(saved.length >= 1, JSON.stringify(atts.map((a) => a.url)));
  assert.ok(fs.readFileSync(path.join(VAR, 'data', id, saved[0].url)).equals(pdf), 'large PDF saved byte for byte');
});

test('downloads of early manifest pages start while later pages are still produced', async () => {
  const tag = crypto.randomUUID();
  const { res, body, id, c } = await runImport({ pageSize: 5, partialStatus: 200, polls: 3, tag },
    [{ name: 'allowPartialManifests', valueBoolean: true }]);
  assert.equal(res.status, 200, JSON.stringify(body));
  const stored = storedByType(id);
  for (const t of fixtureTypes()) assert.ok(stored[t] && stored[t].equals(fixture(t)), `${t} stored exactly`);
  const prefix = new URL(c.fhirBase).pathname;   // this test's sim config
  const log = (await provider.log()).filter((e) => e.method === 'GET' && e.path.startsWith(prefix));
  const firstFile = log.findIndex((e) => e.path.includes('/files/'));
  const lastPage = log.findLastIndex((e) => e.path.includes('/page/') && e.status === 200);
  assert.ok(firstFile >= 0 && lastPage >= 0, 'paged export seen');
  assert.ok(firstFile < lastPage, `first download (#${firstFile}) before the last page (#${lastPage})`);
  const rows = sql("SELECT count(*), count(DISTINCT seq) FROM import_files WHERE import_id = :'p1' AND state = 'done'", id);
  assert.equal(rows[0][0], String(fixtureTypes().length));
  assert.equal(rows[0][1], rows[0][0]);
});

test('static import reads the manifest and stores the files', async () => {
  const { res, body, id } = await runImport({ types: ['Patient', 'Condition'] },
    [{ name: 'exportType', valueCode: 'static' }], { exportUrl: (c) => c.fhirBase + '/static/manifest.json' });
  assert.equal(res.status, 200, JSON.stringify(body));
  const stored = storedByType(id);
  assert.deepEqual(Object.keys(stored).sort(), ['Condition', 'Patient']);
  assert.ok(stored.Patient.equals(fixture('Patient')));
  assert.ok(stored.Condition.equals(fixture('Condition')));
  const log = await provider.log();
  assert.ok(!log.some((e) => e.path.includes('$export') && e.path.includes(new URL(body.outcome[0].url).pathname)));
});

test('kick-off parameters are passed through to the provider', async () => {
  await provider.clearLog();
  const params = [
    { name: '_type', valueString: 'Patient,Condition' },
    { name: '_since', valueInstant: '2010-01-01T00:00:00Z' },
    { name: '_outputFormat', valueString: 'application/fhir+ndjson' },
    { name: '_typeFilter', valueString: 'Condition?clinical-status=active' },
    { name: '_typeFilter', valueString: 'Patient?gender=female' },
    { name: 'includeAssociatedData', valueCode: 'LatestProvenanceResources' },
  ];
  const { res, id } = await runImport({}, params);
  assert.equal(res.status, 200);
  const log = await provider.log();
  const kick = log.find((e) => e.method === 'POST' && e.path.endsWith('/$export'));
  assert.ok(kick, 'POST kick-off seen');
  assert.equal(kick.headers.prefer, 'respond-async');
  // provider_headers (tests/run-all.sh) go with every request to the provider
  const mine = log.filter((e) => e.path.startsWith(new URL(kick.path, provider.origin).pathname.split('/fhir')[0]));
  assert.ok(mine.filter((e) => e.path.includes('/files/') || e.path.includes('$export'))
    .every((e) => e.headers['x-consumer-test'] === 'yes'), 'configured headers sent');
  assert.match(kick.headers.accept, /application\/fhir\+json/);
  const sent = kick.body.parameter;
  for (const p of params) assert.ok(sent.some((s) => JSON.stringify(s) === JSON.stringify(p)), JSON.stringify(p));
  assert.ok(!sent.some((s) => s.name === 'exportUrl' || s.name === 'exportType'));
  assert.deepEqual(Object.keys(storedByType(id)).sort(), ['Condition', 'Patient']);
});

test('GET kick-off when the client is configured for it, and Patient-level exports', async () => {
  await provider.clearLog();
  const { res } = await runImport({}, [{ name: '_type', valueString: 'Patient' }], {
    clientExtra: { body: { kickoff_method: 'get' } }, exportUrl: (c) => c.fhirBase + '/Patient/$export' });
  assert.equal(res.status, 200);
  const kick = (await provider.log()).find((e) => e.path.includes('/Patient/$export'));
  assert.equal(kick.method, 'GET');
  assert.match(kick.path, /_type=Patient/);
});

test('open providers need no authorization', async () => {
  await provider.clearLog();
  const { res, id } = await runImport({ auth: false, types: ['Device'] }, [], {
    clientExtra: { body: { provider_auth: 'open' } } });
  assert.equal(res.status, 200);
  assert.ok(storedByType(id).Device.equals(fixture('Device')));
  assert.ok(!(await provider.log()).some((e) => e.path.endsWith('/auth/token')));
});

test('token endpoint discovered from the CapabilityStatement when smart-configuration is missing', async () => {
  const { res } = await runImport({ noWellKnown: true, types: ['Patient'] });
  assert.equal(res.status, 200);
});

test('429 and 503 with Retry-After (seconds and HTTP date) are waited out', async () => {
  const { res, body } = await runImport({
    types: ['Patient'],
    kickoffFault: { status: 429, retryAfter: { style: 'date', value: 1 }, times: 1 },
    statusFault: { status: 503, retryAfter: { style: 'seconds', value: 1 }, times: 2 },
  });
  assert.equal(res.status, 200, JSON.stringify(body));
});

test('odd Retry-After values are survived', async () => {
  for (const style of ['garbage', 'huge', 'negative', 'none']) {
    const { res } = await runImport({ types: ['Device'], polls: 2, retryAfter: { style, value: 1 } });
    assert.equal(res.status, 200, style);
  }
});

test('a connection cut mid-file is retried and the file is still exact', async () => {
  const { res, id } = await runImport({ types: ['Observation'], cutFile: { type: 'Observation', afterBytes: 5000, times: 1 } });
  assert.equal(res.status, 200);
  assert.ok(storedByType(id).Observation.equals(fixture('Observation')));
});

test('an expired token (401) on download is refreshed once', async () => {
  const { res, id } = await runImport({ types: ['Patient'], expireTokenOnce: true });
  assert.equal(res.status, 200);
  assert.ok(storedByType(id).Patient.equals(fixture('Patient')));
});

test('bad files become outcome errors while other files are stored (partial success)', async () => {
  const { res, body, id, c } = await runImport({
    types: ['Patient', 'Condition', 'Encounter', 'Device'],
    malformedLine: { type: 'Condition', line: 3 },
    wrongType: { type: 'Encounter', line: 2 },
    countDelta: { type: 'Device', delta: 1 },
  });
  assert.equal(res.status, 200, 'partial success is still 200');
  const stored = storedByType(id);
  assert.deepEqual(Object.keys(stored), ['Patient']);
  assert.ok(stored.Patient.equals(fixture('Patient')));
  const { lines } = await fetchOutcome(body, c.token);
  const errors = lines.filter((l) => l.issue[0].severity === 'error').map((l) => l.issue[0].diagnostics);
  assert.ok(errors.some((d) => /Condition/.test(d) && /line 3/.test(d)), errors.join('\n'));
  assert.ok(errors.some((d) => /Encounter/.test(d) && /line 2/.test(d) && /Observation/.test(d)), errors.join('\n'));
  assert.ok(errors.some((d) => /Device/.test(d) && /count/i.test(d) && /manifest/.test(d)), errors.join('\n'));
  const rows = sql("SELECT type, state FROM import_files WHERE import_id = :'p1' ORDER BY type", id);
  assert.deepEqual(rows.map((r) => r.join(':')), ['Condition:failed', 'Device:failed', 'Encounter:failed', 'Patient:done']);
});

test('a file answering 500 fails alone after retries', async () => {
  const { res, body, id, c } = await runImport({ types: ['Patient', 'Device'], fileStatus: { type: 'Device', status: 500 } });
  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(storedByType(id)), ['Patient']);
  const { lines } = await fetchOutcome(body, c.token);
  assert.ok(lines.some((l) => l.issue[0].severity === 'error' && /Device/.test(l.issue[0].diagnostics)));
});

test('a failed export fails the import with an OperationOutcome', async () => {
  const { res, body } = await runImport({ exportError: { status: 500, code: 'exception', message: 'disk on fire' } });
  assert.ok(res.status >= 400, `status ${res.status}`);
  assert.equal(body.resourceType, 'OperationOutcome');
  assert.match(body.issue[0].diagnostics, /disk on fire/);
});

test('an unreachable provider fails the import as transient', async () => {
  // register a base on a closed port; the worker cannot connect
  const dead = { base: () => 'http://127.0.0.1:9/fhir', registerConsumer: async () => 'x' };
  const c = await newClient(dead);
  const r = await ping(c, importParams('http://127.0.0.1:9/fhir/$export'));
  const { res, body } = await pollStatus(r.headers.get('content-location'), c.token);
  assert.ok(res.status >= 500, `status ${res.status}`);
  assert.equal(body.issue[0].code, 'transient');
  assert.match(body.issue[0].diagnostics, /127\.0\.0\.1:9|connect/i);
});

test('failed authorization at the provider fails the import', async () => {
  const c = await newClient(provider, { types: ['Patient'] }, { body: { provider_client_id: 'not-registered-there' } });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const { res, body } = await pollStatus(r.headers.get('content-location'), c.token);
  assert.ok(res.status >= 400);
  assert.match(body.issue[0].diagnostics, /auth|token|invalid_client/i);
});

test('the bearer token never goes to another origin', async () => {
  await provider.clearLog();
  const { res, id } = await runImport({ types: ['Patient'], redirectFiles: true });
  assert.equal(res.status, 200);
  assert.ok(storedByType(id).Patient.equals(fixture('Patient')));
  const other = (await provider.log()).filter((e) => e.port === provider.otherPort);
  assert.ok(other.length >= 1, 'download went to the other origin');
  assert.ok(other.every((e) => !e.headers.authorization), 'no Authorization header reached the other origin');
});

test('status URL of a completed import is owned: outcome needs the token', async () => {
  const { body } = await runImport({ types: ['Device'] });
  const r = await fetch(body.outcome[0].url);
  assert.equal(r.status, 401);
  assert.match(body.outcome[0].url, new RegExp(`^${BASE}`));
});
