// The `bulk-data` command against the test provider: downloads byte for
// byte, SMART auth, kick-off options passed through, reporters, log file,
// exit statuses, Ctrl-C, validation policies, manifest, destinations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startProvider, fixture, fixtureTypes, b64url, ROOT } from './harness.mjs';
import {
  BIN, runBulk, tmpDir, cleanupTmp, keyFiles, registerAtProvider, storedByType, fixtureLines, jsonLines, delay,
  startHelper,
} from './bulk_data_helpers.mjs';

let provider;
before(async () => {
  assert.ok(fs.existsSync(BIN), `${BIN} is missing: build first (make BUILD=${process.env.BUILD || 'build'} all)`);
  provider = await startProvider();
});
after(() => { provider.stop(); cleanupTmp(); });

// A provider config of its own for every test, so logs and fault counters
// never mix: the FHIR base and a filter for the provider's request log.
function sim(cfg = {}) {
  const full = { tag: crypto.randomUUID(), ...cfg };
  const prefix = `/sim/${b64url(JSON.stringify(full))}/`;
  return {
    base: provider.base(full),
    async log() { return (await provider.log()).filter((e) => e.path.startsWith(prefix)); },
    async exports() {
      const all = await (await fetch(`${provider.origin}/__exports`)).json();
      return all.filter((e) => e.requestUrl.includes(prefix));
    },
  };
}

const totalLines = (types) => types.reduce((n, t) => n + fixtureLines(t).length, 0);

// ---------------------------------------------------------------- basics

test('--help exits 0 and lists every option with defaults', async () => {
  const r = await runBulk(['--help']);
  assert.equal(r.code, 0, r.out);
  for (const o of ['fhir-url', 'group', 'patient-level', 'type', 'since', 'until', 'elements', 'patient', 'type-filter',
    'include-associated-data', 'output-format', 'post', 'lenient', 'custom', 'destination', 'config', 'reporter',
    'status', 'resume', 'log-file', 'header', 'connect-timeout', 'idle-timeout', 'ca-file', 'insecure', 'proxy',
    'user-agent', 'parallel', 'max-line-bytes', 'on-invalid', 'name-template', 'save-manifest', 'token-origin',
    'poll-max-wait', 'deadline', 'retries', 'inline-attachments', 'inline-max', 'pdf-to-text', 's3-region',
    's3-endpoint', 'http-method', 'client-id', 'private-key', 'alg', 'scope', 'token-url', 'cancel-on-interrupt']) {
    assert.match(r.stdout, new RegExp(`--${o}\\b`), `--help does not list --${o}`);
  }
  assert.match(r.stdout, /-H, --header/);
  // an option's entry runs until the next option (descriptions wrap)
  const entry = (name) => {
    const i = r.stdout.indexOf(`--${name} `);
    const rest = r.stdout.slice(i);
    const next = rest.slice(1).search(/\n {2}(-\w, )?--|\n\n/);
    return rest.slice(0, next + 1).replace(/\s+/g, ' ');
  };
  assert.match(entry('parallel'), /\[default: 4\]/);
  assert.match(entry('destination'), /\[default: \.\/downloads\]/);
  assert.match(entry('scope'), /\[default: system\/\*\.read\]/);
  assert.match(entry('on-invalid'), /\[default: fail\]/);
  assert.match(entry('reporter'), /\[default: cli on a terminal, else text\]/);
});

test('bad options exit 2 with a message', async () => {
  const base = provider.base({ auth: false });
  const cases = [
    [[], /--fhir-url/],
    [['--bogus'], /unknown option --bogus/],
    [['--fhir-url'], /needs a value/],
    [['--fhir-url', 'not a url'], /absolute http/],
    [['--fhir-url', base, 'extra'], /unexpected argument/],
    [['--fhir-url', base, '--parallel', '0'], /--parallel must be a whole number/],
    [['--fhir-url', base, '--parallel', 'four'], /--parallel/],
    [['--fhir-url', base, '--on-invalid', 'maybe'], /--on-invalid must be fail, skip or drop-file/],
    [['--fhir-url', base, '--reporter', 'fancy'], /--reporter/],
    [['--fhir-url', base, '--cancel-on-interrupt', 'perhaps'], /--cancel-on-interrupt/],
    [['--fhir-url', base, '--patient', 'p1'], /--patient needs --patient-level or --group/],
    [['--fhir-url', base, '--group', 'g1', '--patient-level'], /export levels/],
    [['--fhir-url', base, '--group', '../x'], /not a FHIR id/],
    [['--fhir-url', base, '--custom', 'novalue'], /NAME=VALUE/],
    [['--fhir-url', base, '-H', 'no colon here'], /Name: value/],
    [['--fhir-url', base, '--client-id', 'x'], /--client-id and --private-key/],
    [['--fhir-url', base, '--http-method', 'PATCH'], /--http-method/],
    [['--fhir-url', base, '--post=yes'], /takes no value/],
    [['--config', '/nonexistent/bulk-data.json'], /cannot read/],
    [['--fhir-url', base, '--ca-file', '/nonexistent/ca.pem'], /--ca-file/],
    [['--fhir-url', base, '--token-origin', 'ftp://x'], /--token-origin/],
    [['--fhir-url', base, '--resume', '--destination', 'none'], /--resume needs a destination/],
  ];
  for (const [args, re] of cases) {
    const r = await runBulk(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.out}`);
    assert.match(r.stderr, re, args.join(' '));
  }
  // a key that does not fit the algorithm
  const k = keyFiles('ES384');
  const r = await runBulk(['--fhir-url', base, '--client-id', 'c', '--private-key', k.file, '--alg', 'RS384']);
  assert.equal(r.code, 2, r.out);
  assert.match(r.stderr, /does not fit the key/);
  // config files: unknown keys and wrong shapes are refused
  const dir = tmpDir('cfg');
  for (const [body, re] of [['{"fhir-url": ', /config/], ['{"colour": "blue"}', /unknown option "colour"/],
    ['{"post": "yes"}', /true or false/], ['{"since": ["a", "b"]}', /one value/], ['[1]', /JSON object/]]) {
    fs.writeFileSync(path.join(dir, 'c.json'), body);
    const rc = await runBulk(['--config', path.join(dir, 'c.json')]);
    assert.equal(rc.code, 2, `${body}: ${rc.out}`);
    assert.match(rc.stderr, re, body);
  }
});

test('open server: every file lands in the folder byte for byte', async () => {
  const s = sim({ auth: false, polls: 1 });
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir]);
  assert.equal(r.code, 0, r.out);
  const stored = storedByType(dir);
  const types = fixtureTypes();
  assert.deepEqual(Object.keys(stored).sort(), types);
  for (const t of types) assert.ok(stored[t].equals(fixture(t)), `${t} differs from the provider's file`);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.part')), []);
  // the text reporter (stdout is not a terminal) and its summary
  assert.match(r.stdout, /kick-off accepted; status URL http/);
  assert.match(r.stdout, /progress 100%/);
  assert.match(r.stdout, /Export complete/);
  assert.match(r.stdout, new RegExp(`files: +${types.length} stored, 0 failed`));
  assert.match(r.stdout, new RegExp(`resources: +${totalLines(types)}\\b`));
  const bytes = types.reduce((n, t) => n + fixture(t).length, 0);
  assert.match(r.stdout, new RegExp(`bytes: +${bytes} `));
  assert.match(r.stdout, /duration: +\d+:\d\d/);
  assert.ok(r.stdout.includes(`destination: ${dir}`));
  // GET kick-off by default
  const [e] = await s.exports();
  assert.equal(e.method, 'GET');
  assert.equal(e.level, 'system');
});

test('the default destination is ./downloads', async () => {
  const s = sim({ auth: false, types: ['Patient'] });
  const cwd = tmpDir('cwd');
  const r = await runBulk(['--fhir-url', s.base], { cwd });
  assert.equal(r.code, 0, r.out);
  assert.ok(storedByType(path.join(cwd, 'downloads')).Patient.equals(fixture('Patient')));
});

// ---------------------------------------------------------------- SMART auth

test('SMART Backend Services with an ES384 JWK', async () => {
  const s = sim({ types: ['Patient', 'Condition'] });
  const k = keyFiles('ES384');
  const clientId = await registerAtProvider(provider, k.jwks);
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--client-id', clientId, '--private-key', k.file, '--destination', dir]);
  assert.equal(r.code, 0, r.out);
  const stored = storedByType(dir);
  assert.ok(stored.Patient.equals(fixture('Patient')));
  assert.ok(stored.Condition.equals(fixture('Condition')));
  const log = await s.log();
  const tok = log.filter((e) => e.path.endsWith('/auth/token'));
  assert.ok(tok.length >= 1, 'no token request');
  assert.equal(tok[0].status, 200);
  assert.equal(tok[0].body.client_assertion.header.alg, 'ES384');
  assert.equal(tok[0].body.client_assertion.header.kid, k.kid);
  assert.equal(tok[0].body.scope, 'system/*.read');
  const files = log.filter((e) => e.path.includes('/files/'));
  assert.ok(files.length >= 2 && files.every((e) => e.headers.authorization === 'present'));
});

test('SMART Backend Services with an RS384 PEM key and an explicit scope', async () => {
  const s = sim({ types: ['Patient'] });
  const k = keyFiles('RS384', 'pem');
  const clientId = await registerAtProvider(provider, k.jwks);
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--client-id', clientId, '--private-key', k.file, '--alg', 'RS384',
    '--scope', 'system/Patient.read', '--destination', dir]);
  assert.equal(r.code, 0, r.out);
  assert.ok(storedByType(dir).Patient.equals(fixture('Patient')));
  const tok = (await s.log()).filter((e) => e.path.endsWith('/auth/token'));
  assert.equal(tok[0].body.client_assertion.header.alg, 'RS384');
  assert.equal(tok[0].body.scope, 'system/Patient.read');
});

test('a SMART failure exits 1 and says why', async () => {
  const s = sim({ types: ['Patient'] });
  const k = keyFiles('ES384');   // never registered
  const r = await runBulk(['--fhir-url', s.base, '--client-id', 'nobody', '--private-key', k.file,
    '--destination', tmpDir()]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /Export failed: .*(401|invalid_client)/);
});

// ---------------------------------------------------------------- kick-off options

test('kick-off options reach the server as GET query parameters', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition', 'Observation'] });
  const r = await runBulk(['--fhir-url', s.base, '--type', 'Patient,Condition', '--type', 'Observation',
    '--since', '2020-01-01T00:00:00Z', '--until', '2030-01-01T00:00:00Z',
    '--type-filter', 'Patient?active=true', '--type-filter', 'Condition?clinical-status=active,recurrence',
    '--elements', 'id,meta', '--include-associated-data', 'LatestProvenanceResources',
    '--output-format', 'application/fhir+ndjson', '--custom', 'organizeOutputBy=Patient',
    '--custom', 'x-note=a=b', '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  const [e] = await s.exports();
  assert.equal(e.method, 'GET');
  assert.deepEqual(e.params._type, ['Patient', 'Condition', 'Observation']);
  assert.equal(e.params._since, '2020-01-01T00:00:00Z');
  assert.equal(e.params._until, '2030-01-01T00:00:00Z');
  assert.deepEqual(e.params._typeFilter, ['Patient?active=true', 'Condition?clinical-status=active,recurrence']);
  assert.deepEqual(e.params._elements, ['id', 'meta']);
  assert.deepEqual(e.params.includeAssociatedData, ['LatestProvenanceResources']);
  assert.equal(e.params._outputFormat, 'application/fhir+ndjson');
  assert.equal(e.params.organizeOutputBy, 'Patient');
  assert.deepEqual(e.rawParams.filter(([n]) => n === 'x-note'), [['x-note', 'a=b']], 'values keep their "="');
  assert.match(r.stdout, new RegExp(`resources: +${totalLines(['Patient', 'Condition', 'Observation'])}\\b`));
});

test('--post sends a Parameters body; --patient implies it; levels pick the URL', async () => {
  const s = sim({ auth: false, types: ['Patient'] });
  let r = await runBulk(['--fhir-url', s.base, '--post', '--type', 'Patient', '--since', '2020-01-01T00:00:00Z',
    '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  r = await runBulk(['--fhir-url', s.base, '--patient-level', '--patient', 'p1', '--patient', 'Patient/p2',
    '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  r = await runBulk(['--fhir-url', s.base + '/', '--group', 'grp-1', '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  const ex = await s.exports();
  assert.equal(ex.length, 3);
  const [sys, pat, grp] = ex.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  assert.equal(sys.method, 'POST');
  assert.equal(sys.level, 'system');
  assert.deepEqual(sys.params._type, ['Patient']);
  assert.equal(sys.params._since, '2020-01-01T00:00:00Z');
  assert.equal(pat.method, 'POST');
  assert.equal(pat.level, 'patient');
  assert.deepEqual(pat.params.patient, ['Patient/p1', 'Patient/p2']);
  assert.equal(grp.method, 'GET');
  assert.equal(grp.level, 'group');
  assert.equal(grp.groupId, 'grp-1');
  const posts = (await s.log()).filter((e) => e.method === 'POST' && e.path.endsWith('/$export'));
  assert.equal(posts[0].body.resourceType, 'Parameters');
});

test('--lenient sends Prefer: handling=lenient', async () => {
  const s = sim({ auth: false, types: ['Patient'], strictParams: true });
  const r = await runBulk(['--fhir-url', s.base, '--lenient', '--custom', 'unknownThing=1', '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  const [e] = await s.exports();
  assert.match(e.prefer, /handling=lenient/);
  assert.match(e.prefer, /respond-async/);
});

test('--config supplies options; the command line overrides it', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'] });
  const dir = tmpDir();
  const cfg = path.join(tmpDir('cfg'), 'bulk.json');
  fs.writeFileSync(cfg, JSON.stringify({
    'fhir-url': s.base, type: ['Patient'], header: ['X-From-Config: yes'], destination: '/nonexistent/overridden',
    parallel: 2, post: true, reporter: 'text',
  }));
  const r = await runBulk(['--config', cfg, '--type', 'Condition', '--destination', dir]);
  assert.equal(r.code, 0, r.out);
  const [e] = await s.exports();
  assert.deepEqual(e.params._type, ['Condition']);
  assert.equal(e.method, 'POST');
  assert.deepEqual(Object.keys(storedByType(dir)), ['Condition']);
  const kick = (await s.log()).find((x) => x.path.endsWith('/$export'));
  assert.equal(kick.headers['x-from-config'], 'yes');
});

test('-H headers reach kick-off, status and downloads', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'], polls: 1 });
  const r = await runBulk(['--fhir-url', s.base, '-H', 'X-Bulk-Test: hello', '--header', 'X-Second:  two words',
    '--user-agent', 'bulk-data-test/1', '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  const log = await s.log();
  const kick = log.filter((e) => e.path.endsWith('/$export'));
  const status = log.filter((e) => e.path.includes('/status/'));
  const files = log.filter((e) => e.path.includes('/files/'));
  assert.ok(kick.length && status.length && files.length >= 2);
  for (const e of [...kick, ...status, ...files]) {
    assert.equal(e.headers['x-bulk-test'], 'hello', `${e.method} ${e.path}`);
    assert.equal(e.headers['x-second'], 'two words');
    assert.equal(e.headers['user-agent'], 'bulk-data-test/1');
  }
});

test('the token goes to another origin only when --token-origin lists it', async () => {
  const s = sim({ types: ['Patient'], redirectFiles: true });
  const k = keyFiles('ES384');
  const clientId = await registerAtProvider(provider, k.jwks);
  const auth = ['--client-id', clientId, '--private-key', k.file, '--destination', 'none'];
  let r = await runBulk(['--fhir-url', s.base, ...auth]);
  assert.equal(r.code, 0, r.out);
  let other = (await s.log()).filter((e) => e.origin === 'other');
  assert.ok(other.length >= 1, 'the download was not redirected');
  assert.ok(other.every((e) => e.headers.authorization === undefined), 'token sent to another origin');
  await provider.clearLog();
  r = await runBulk(['--fhir-url', s.base, ...auth, '--token-origin', `http://127.0.0.1:${provider.otherPort}`]);
  assert.equal(r.code, 0, r.out);
  other = (await s.log()).filter((e) => e.origin === 'other');
  assert.ok(other.length >= 1 && other.every((e) => e.headers.authorization === 'present'));
});

test('--parallel and --max-line-bytes reach the engine', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition', 'Observation'] });
  const logFile = path.join(tmpDir('log'), 'p.ndjson');
  let r = await runBulk(['--fhir-url', s.base, '--parallel', '1', '--destination', 'none', '--log-file', logFile]);
  assert.equal(r.code, 0, r.out);
  const req = jsonLines(fs.readFileSync(logFile, 'utf8')).filter((e) => e.eventId === 'download_request');
  assert.ok(req.length === 3 && req.every((e) => e.eventDetail.concurrency === 1), JSON.stringify(req));
  const longest = Math.max(...fixtureLines('Patient').map((l) => Buffer.byteLength(l)));
  r = await runBulk(['--fhir-url', s.base, '--max-line-bytes', String(longest - 1), '--on-invalid', 'drop-file',
    '--destination', 'none']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.stdout, /Failed files:\n(.*\n)* +\S*Patient[^\n]*line/);
});

// ---------------------------------------------------------------- reporters and log

test('--reporter json prints one JSON event per line (CLI events)', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'], polls: 1 });
  const r = await runBulk(['--fhir-url', s.base, '--reporter', 'json', '--destination', 'none',
    '-H', 'Authorization: Bearer not-for-logs', '-H', 'X-Api-Key: k-123', '-H', 'X-Plain: visible']);
  assert.equal(r.code, 0, r.out);
  const ev = jsonLines(r.stdout);
  const ids = new Set(ev.map((e) => e.exportId));
  assert.equal(ids.size, 1);
  assert.ok([...ids][0].length >= 8);
  const names = ev.map((e) => e.eventId);
  assert.equal(names[0], 'start');
  assert.equal(names.at(-1), 'summary');
  assert.ok(names.includes('progress'));
  for (const e of ev) assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const start = ev[0].eventDetail;
  assert.equal(start.method, 'GET');
  assert.deepEqual(start.headers, ['Authorization: [redacted]', 'X-Api-Key: [redacted]', 'X-Plain: visible']);
  assert.ok(!r.stdout.includes('not-for-logs') && !r.stdout.includes('k-123'));
  const sum = ev.at(-1).eventDetail;
  assert.equal(sum.outcome, 'complete');
  assert.equal(sum.files.total, 2);
  assert.equal(sum.resources, totalLines(['Patient', 'Condition']));
  const dl = ev.filter((e) => e.eventId === 'progress' && e.eventDetail.phase === 'download').at(-1);
  assert.equal(dl.eventDetail.percent, 100);
});

test('--reporter json includes the engine events kickoff, download_complete, export_complete', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'], polls: 1 });
  const r = await runBulk(['--fhir-url', s.base, '--reporter', 'json', '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  const names = jsonLines(r.stdout).map((e) => e.eventId);
  for (const n of ['kickoff', 'status_progress', 'status_complete', 'manifest_complete', 'download_request',
    'download_complete', 'export_complete']) assert.ok(names.includes(n), `no ${n} event in ${names.join(' ')}`);
  assert.equal(names.filter((n) => n === 'download_complete').length, 2);
});

test('--log-file: NDJSON events with one exportId, UTC timestamps and no secrets', async () => {
  const s = sim({ types: ['Patient'], polls: 1 });
  const k = keyFiles('ES384');
  const clientId = await registerAtProvider(provider, k.jwks);
  const logFile = path.join(tmpDir('log'), 'export.ndjson');
  const r = await runBulk(['--fhir-url', s.base, '--client-id', clientId, '--private-key', k.file,
    '--log-file', logFile, '--destination', 'none', '-H', 'X-Api-Key: secret-api-key']);
  assert.equal(r.code, 0, r.out);
  const text = fs.readFileSync(logFile, 'utf8');
  const ev = jsonLines(text);
  assert.ok(ev.length >= 4, text);
  assert.equal(new Set(ev.map((e) => e.exportId)).size, 1);
  for (const e of ev) {
    assert.deepEqual(Object.keys(e).sort(), ['eventDetail', 'eventId', 'exportId', 'timestamp']);
    assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.ok(Math.abs(Date.parse(e.timestamp) - Date.now()) < 120000);
  }
  const names = ev.map((e) => e.eventId);
  for (const n of ['kickoff', 'status_complete', 'manifest_complete', 'download_complete', 'export_complete'])
    assert.ok(names.includes(n), `no ${n} in ${names.join(' ')}`);
  assert.ok(!text.includes(k.privateD), 'private key in the log');
  assert.ok(!/eyJ[\w-]+\.[\w-]+\./.test(text), 'a JWT in the log');
  assert.ok(!/access_token"\s*:\s*"[^[]/.test(text), 'an access token in the log');
  assert.ok(!/Bearer [A-Za-z0-9]/.test(text), 'a bearer token in the log');
  assert.ok(!text.includes('secret-api-key'));
  // appending: a second run adds lines with another exportId
  const r2 = await runBulk(['--fhir-url', s.base, '--client-id', clientId, '--private-key', k.file,
    '--log-file', logFile, '--destination', 'none']);
  assert.equal(r2.code, 0, r2.out);
  assert.equal(new Set(jsonLines(fs.readFileSync(logFile, 'utf8')).map((e) => e.exportId)).size, 2);
});

test('--reporter cli redraws one line in place and ends with the summary', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'], polls: 1 });
  const r = await runBulk(['--fhir-url', s.base, '--reporter', 'cli', '--destination', 'none']);
  assert.equal(r.code, 0, r.out);
  assert.ok(r.stdout.includes('\r\x1b[K'), 'no in-place redraw');
  assert.match(r.stdout, /\[[#-]{20}\] +\d+% +\d+\/2 files/);
  assert.match(r.stdout, /Export complete/);
});

// ---------------------------------------------------------------- failures and Ctrl-C

test('a failed export exits 1 with the server\'s reason', async () => {
  const s = sim({ auth: false, polls: 1, exportError: { status: 500, code: 'exception', message: 'the export ran out of disk' } });
  const r = await runBulk(['--fhir-url', s.base, '--destination', tmpDir()]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.stdout, /Export failed: .*the export ran out of disk/);
  const j = await runBulk(['--fhir-url', s.base, '--destination', 'none', '--reporter', 'json']);
  assert.equal(j.code, 1, j.out);
  assert.match(j.stderr, /export failed: .*the export ran out of disk/);
  assert.equal(jsonLines(j.stdout).at(-1).eventDetail.outcome, 'failed');
});

test('a file that keeps failing is listed with its reason; exit 1', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'], fileStatus: { type: 'Patient', status: 404 } });
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir, '--retries', '1']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.stdout, /Failed files:\n +.*Patient.*404/);
  assert.ok(storedByType(dir).Condition.equals(fixture('Condition')));
});

async function interruptDuringPolling(policy, extraArgs = [], signal = 'SIGINT') {
  const s = sim({ auth: false, types: ['Patient'], polls: 100, retryAfter: { style: 'seconds', value: 1 } });
  let sent = false;
  const r = await runBulk(['--fhir-url', s.base, '--destination', tmpDir(), '--cancel-on-interrupt', policy, ...extraArgs], {
    onStdoutLine(line, child) {
      if (!sent && /export in progress/.test(line)) {
        sent = true;
        child.kill(signal);
      }
    },
  });
  assert.ok(sent, r.out);
  return { r, s };
}

test('Ctrl-C while polling with --cancel-on-interrupt yes sends DELETE and exits non-zero', async () => {
  const { r, s } = await interruptDuringPolling('yes');
  assert.equal(r.code, 130, r.out);
  assert.match(r.stdout, /interrupted/i);
  assert.match(r.stdout, /deleted at the server/);
  const del = (await s.log()).filter((e) => e.method === 'DELETE' && e.path.includes('/status/'));
  assert.equal(del.length, 1, 'expected one DELETE of the status URL');
  assert.equal(del[0].status, 202);
});

test('Ctrl-C with --cancel-on-interrupt no leaves the export and says how to continue', async () => {
  const { r, s } = await interruptDuringPolling('no');
  assert.equal(r.code, 130, r.out);
  assert.match(r.stdout, /left at the server/);
  assert.match(r.stdout, /--status '?http/);
  const del = (await s.log()).filter((e) => e.method === 'DELETE');
  assert.equal(del.length, 0);
});

test('SIGTERM stops cleanly too (here with DELETE)', async () => {
  const { r, s } = await interruptDuringPolling('yes', [], 'SIGTERM');
  assert.equal(r.code, 130, r.out);
  assert.equal((await s.log()).filter((e) => e.method === 'DELETE').length, 1);
});

test('--status attaches to an export started elsewhere', async () => {
  const s = sim({ auth: false, types: ['Patient'], polls: 1 });
  const k = await fetch(`${s.base}/$export`, { headers: { accept: 'application/fhir+json', prefer: 'respond-async' } });
  assert.equal(k.status, 202);
  const dir = tmpDir();
  const r = await runBulk(['--status', k.headers.get('content-location'), '--destination', dir]);
  assert.equal(r.code, 0, r.out);
  assert.ok(storedByType(dir).Patient.equals(fixture('Patient')));
  assert.equal((await s.log()).filter((e) => e.path.endsWith('/$export')).length, 1, 'no second kick-off');
});

// ---------------------------------------------------------------- validation and output

test('--destination none validates and counts, stores nothing', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Observation'] });
  const cwd = tmpDir('cwd');
  const r = await runBulk(['--fhir-url', s.base, '--destination', 'none'], { cwd });
  assert.equal(r.code, 0, r.out);
  assert.match(r.stdout, new RegExp(`resources: +${totalLines(['Patient', 'Observation'])}\\b`));
  assert.match(r.stdout, /files: +2 stored/);
  assert.deepEqual(fs.readdirSync(cwd), []);
  // invalid content is still caught
  const bad = sim({ auth: false, types: ['Patient'], wrongType: { type: 'Patient', line: 2 } });
  const rb = await runBulk(['--fhir-url', bad.base, '--destination', 'none', '--on-invalid', 'drop-file']);
  assert.equal(rb.code, 1, rb.out);
  assert.match(rb.out, /line 2/);
});

const MALFORMED = { auth: false, types: ['Patient', 'Condition'], malformedLine: { type: 'Patient', line: 3 } };

test('--on-invalid fail stops the export and says where', async () => {
  const s = sim(MALFORMED);
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir, '--on-invalid', 'fail']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.stdout, /Export failed/);
  assert.match(r.out, /Patient[^\n]*line 3|line 3[^\n]*Patient/);
  assert.equal(storedByType(dir).Patient, undefined);
});

test('--on-invalid skip drops the bad line, keeps the rest and reports it', async () => {
  const s = sim(MALFORMED);
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir, '--on-invalid', 'skip']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /line 3/);
  const want = fixtureLines('Patient').filter((_, i) => i !== 2);
  const got = storedByType(dir).Patient.toString('utf8').split('\n').filter(Boolean);
  assert.deepEqual(got, want);
  assert.ok(storedByType(dir).Condition.equals(fixture('Condition')));
});

test('--on-invalid drop-file fails that file only', async () => {
  const s = sim(MALFORMED);
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir, '--on-invalid', 'drop-file']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.stdout, /Failed files:\n +.*Patient.*line 3/);
  const stored = storedByType(dir);
  assert.equal(stored.Patient, undefined);
  assert.ok(stored.Condition.equals(fixture('Condition')));
});

test('--save-manifest writes manifest.json last, with destination, size, sha256 and lines', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'], deleted: true });
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir, '--save-manifest']);
  assert.equal(r.code, 0, r.out);
  const mpath = path.join(dir, 'manifest.json');
  assert.ok(fs.existsSync(mpath), `no manifest.json in ${fs.readdirSync(dir)}`);
  const m = JSON.parse(fs.readFileSync(mpath, 'utf8'));
  assert.ok(m.transactionTime);
  const entries = [...(m.output || []), ...(m.deleted || [])];
  assert.equal(entries.length, 3);
  const mtime = fs.statSync(mpath).mtimeMs;
  for (const e of entries) {
    assert.equal(typeof e.destination, 'string', JSON.stringify(e));
    const file = path.join(dir, e.destination);
    const body = fs.readFileSync(file);
    assert.equal(e.size, body.length);
    assert.equal(e.sha256, crypto.createHash('sha256').update(body).digest('hex'));
    assert.equal(e.lines, body.toString('utf8').split('\n').filter(Boolean).length);
    assert.ok(fs.statSync(file).mtimeMs <= mtime, `${e.destination} is newer than the manifest`);
  }
});

test('--name-template names the files', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Condition'] });
  const dir = tmpDir();
  const r = await runBulk(['--fhir-url', s.base, '--destination', dir, '--name-template', '{type}-{n}.ndjson']);
  assert.equal(r.code, 0, r.out);
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.ndjson')).sort();
  assert.equal(names.length, 2, names.join(' '));
  for (const n of names) {
    const m = /^(Patient|Condition)-\d+\.ndjson$/.exec(n);
    assert.ok(m, n);
    assert.ok(fs.readFileSync(path.join(dir, n)).equals(fixture(m[1])));
  }
});

test('Ctrl-C with --resume, then the same command continues byte for byte (Range)', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Observation'], slowFileMs: 40, range: true });
  const dir = tmpDir();
  const args = ['--fhir-url', s.base, '--destination', dir, '--resume', '--cancel-on-interrupt', 'no'];
  let sent = false;
  const r1 = await runBulk([...args, '--reporter', 'json'], {
    onStdoutLine(line, child) {
      const e = JSON.parse(line);
      if (!sent && e.eventId === 'progress' && e.eventDetail.phase === 'download' && e.eventDetail.bytes > 50000) {
        sent = true;
        child.kill('SIGINT');
      }
    },
  });
  assert.ok(sent, r1.out);
  assert.equal(r1.code, 130, r1.out);
  const sum = jsonLines(r1.stdout).at(-1).eventDetail;
  assert.equal(sum.outcome, 'interrupted');
  assert.equal(sum.deletedAtServer, false);
  assert.ok(sum.statusUrl, 'the summary has the status URL');
  await provider.clearLog();
  const r2 = await runBulk(args);
  assert.equal(r2.code, 0, r2.out);
  const stored = storedByType(dir);
  assert.ok(stored.Patient.equals(fixture('Patient')));
  assert.ok(stored.Observation.equals(fixture('Observation')));
  const log = await s.log();
  assert.equal(log.filter((e) => e.path.endsWith('/$export')).length, 0, 'no second kick-off');
  assert.ok(log.some((e) => e.path.includes('/files/') && e.headers.range), 'the partial file continued with Range');
});

test('killed mid-download (SIGKILL), the same command with --resume continues byte for byte', async () => {
  const s = sim({ auth: false, types: ['Patient', 'Observation'], slowFileMs: 40, range: true });
  const dir = tmpDir();
  const logFile = path.join(tmpDir('log'), 'resume.ndjson');
  const args = ['--fhir-url', s.base, '--destination', dir, '--resume', '--log-file', logFile];
  let sent = false;
  const r1 = await runBulk([...args, '--reporter', 'json'], {
    onStdoutLine(line, child) {
      const e = JSON.parse(line);
      // past the engine's 2 s state checkpoint, well before the end
      if (!sent && e.eventId === 'progress' && e.eventDetail.phase === 'download' && e.eventDetail.bytes > 1200000) {
        sent = true;
        child.kill('SIGKILL');
      }
    },
  });
  assert.ok(sent, r1.out);
  assert.equal(r1.signal, 'SIGKILL');
  await provider.clearLog();
  const r2 = await runBulk(args);
  assert.equal(r2.code, 0, r2.out);
  const stored = storedByType(dir);
  assert.ok(stored.Patient.equals(fixture('Patient')));
  assert.ok(stored.Observation.equals(fixture('Observation')));
  const log = await s.log();
  assert.equal(log.filter((e) => e.path.endsWith('/$export')).length, 0, 'no second kick-off');
  assert.ok(log.some((e) => e.path.endsWith('Observation.ndjson') && /^bytes=[1-9]\d*-/.test(e.headers.range || '')),
    'Observation continued with Range');
  // both runs log under the one exportId of the export
  const ev = jsonLines(fs.readFileSync(logFile, 'utf8'));
  assert.equal(new Set(ev.map((e) => e.exportId)).size, 1);
  assert.ok(ev.some((e) => e.eventId === 'export_complete'));
});

test('--status with --resume continues in the same destination', async () => {
  const s = sim({ auth: false, types: ['Patient'], polls: 1 });
  const k = await fetch(`${s.base}/$export`, { headers: { accept: 'application/fhir+json', prefer: 'respond-async' } });
  const statusUrl = k.headers.get('content-location');
  const dir = tmpDir();
  const r1 = await runBulk(['--status', statusUrl, '--destination', dir, '--resume']);
  assert.equal(r1.code, 0, r1.out);
  const r2 = await runBulk(['--status', statusUrl, '--destination', dir, '--resume']);
  assert.equal(r2.code, 0, r2.out);
  assert.ok(storedByType(dir).Patient.equals(fixture('Patient')));
});

// ---------------------------------------------------------------- other destinations

const RECEIVER = path.join(ROOT, 'tests/receiver/server.mjs');
const S3_START = path.join(ROOT, 'tests/s3/start.mjs');
const S3_READY = fs.existsSync(path.join(ROOT, 'tests/s3/node_modules/s3rver'));

test('--destination http://... uploads every file', { skip: !fs.existsSync(RECEIVER) && 'no tests/receiver' }, async () => {
  const script = RECEIVER;
  const rcv = await startHelper(script);
  try {
    const s = sim({ auth: false, types: ['Patient', 'Condition'] });
    const r = await runBulk(['--fhir-url', s.base, '--destination', `http://127.0.0.1:${rcv.info.port}/in/`,
      '--http-method', 'POST']);
    assert.equal(r.code, 0, r.out);
    const got = await (await fetch(`http://127.0.0.1:${rcv.info.port}/__received`)).json();
    for (const t of ['Patient', 'Condition']) {
      const e = got.find((x) => x.path.startsWith('/in/') && x.path.endsWith(`${t}.ndjson`));
      assert.ok(e, `${t} not received: ${JSON.stringify(got.map((x) => x.path))}`);
      assert.equal(e.method, 'POST');
      assert.equal(e.sha256, crypto.createHash('sha256').update(fixture(t)).digest('hex'));
    }
  } finally {
    rcv.stop();
  }
});

test('--destination s3://bucket/prefix stores objects', { skip: !S3_READY && 's3rver not installed (cd tests/s3 && npm ci)' }, async () => {
  const s3 = await startHelper(S3_START);
  try {
    const s = sim({ auth: false, types: ['Patient'] });
    const endpoint = `http://127.0.0.1:${s3.info.port}`;
    const r = await runBulk(['--fhir-url', s.base, '--destination', 's3://bulk-test/cli-run', '--s3-endpoint', endpoint,
      '--s3-region', 'us-east-1'], { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } });
    assert.equal(r.code, 0, r.out);
    const obj = await fetch(`${endpoint}/bulk-test/cli-run/1.Patient.ndjson`);
    assert.equal(obj.status, 200);
    assert.ok(Buffer.from(await obj.arrayBuffer()).equals(fixture('Patient')));
  } finally {
    s3.stop();
  }
});

test('names that collide after uniquifying never overwrite each other', async () => {
  // a server whose file basenames anticipate the "-<n>" suffixes
  const http = await import('node:http');
  const names = ['a.ndjson', 'a-7.ndjson', 'a-7-7.ndjson', 'a-7-7-7.ndjson', 'a-7-7-7-7.ndjson',
    'a-7-7-7-7-7.ndjson', 'a.ndjson'];
  const body = (i) => Array.from({ length: i + 1 }, (_, k) => JSON.stringify({ resourceType: 'Patient', id: `f${i}-${k}` }) + '\n').join('');
  const server = http.createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}`;
    if (req.url.includes('$export')) { res.writeHead(202, { 'content-location': `${base}/status` }); return res.end(); }
    if (req.url === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ transactionTime: '2024-01-01T00:00:00Z', request: `${base}/$export`,
        requiresAccessToken: false, output: names.map((n, i) => ({ type: 'Patient', url: `${base}/d${i}/${n}` })), error: [] }));
    }
    const m = /^\/d(\d+)\//.exec(req.url);
    if (m) { res.writeHead(200, { 'content-type': 'application/fhir+ndjson' }); return res.end(body(Number(m[1]))); }
    res.writeHead(404); res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const dir = tmpDir();
    const r = await runBulk(['--fhir-url', `http://127.0.0.1:${server.address().port}`, '--destination', dir,
      '--name-template', '{basename}', '--parallel', '1', '--save-manifest']);
    assert.equal(r.code, 0, r.out);
    const stored = fs.readdirSync(dir).filter((n) => n.endsWith('.ndjson'));
    assert.equal(stored.length, names.length, stored.join(' '));
    const lines = stored.map((n) => fs.readFileSync(path.join(dir, n), 'utf8').split('\n').filter(Boolean).length);
    assert.equal(lines.reduce((a, b) => a + b, 0), names.reduce((a, _, i) => a + i + 1, 0), 'every resource kept');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    assert.equal(new Set(manifest.output.map((e) => e.destination)).size, names.length, 'distinct destinations');
  } finally {
    server.close();
  }
});

test('a token endpoint redirecting with 307 to another origin never gets the assertion re-sent', async () => {
  const http = await import('node:http');
  const seen = [];
  const other = http.createServer((req, res) => { seen.push(req.method); req.resume(); res.writeHead(400); res.end(); });
  await new Promise((r) => other.listen(0, '127.0.0.1', r));
  const main = http.createServer((req, res) => {
    const base = `http://127.0.0.1:${main.address().port}`;
    if (req.url === '/.well-known/smart-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ token_endpoint: `${base}/token` }));
    }
    if (req.url === '/token') {
      res.writeHead(307, { location: `http://127.0.0.1:${other.address().port}/token` });
      return res.end();
    }
    res.writeHead(404); res.end();
  });
  await new Promise((r) => main.listen(0, '127.0.0.1', r));
  try {
    const key = keyFiles('ES384');
    const r = await runBulk(['--fhir-url', `http://127.0.0.1:${main.address().port}`, '--destination', tmpDir(),
      '--client-id', 'c', '--private-key', key.file]);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /another origin/);
    assert.deepEqual(seen, [], 'the other origin received nothing');
  } finally {
    main.close();
    other.close();
  }
});
