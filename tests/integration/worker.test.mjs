// Worker robustness: a worker killed mid-import loses its lease and another
// worker finishes the import with identical bytes; SIGHUP reloads; SIGTERM
// drains.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  ROOT, VAR, startProvider, newClient, importParams, ping, pollStatus, importIdFrom, storedFiles, readStored,
  fixture, sql,
} from './harness.mjs';

let provider;
before(async () => { provider = await startProvider(); });
after(() => {
  provider.stop();
  // keep the shared worker alive for other suites
  execFileSync('sh', [path.join(ROOT, 'scripts/services.sh'), 'worker', VAR, 'worker']);
});

// a SIGKILLed daemon may linger as a zombie until something reaps it
const pidAlive = (pid) => {
  try { return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
};
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, limitMs = 60000) {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(100);
  }
}

function startWorker(name) {
  execFileSync('sh', [path.join(ROOT, 'scripts/services.sh'), 'worker', VAR, name]);
  return Number(fs.readFileSync(path.join(VAR, `${name}.pid`), 'utf8'));
}

test('a killed worker loses its lease and another worker completes the import exactly', async () => {
  startWorker('worker-b');
  const c = await newClient(provider, { types: ['Observation', 'Patient', 'Condition'], slowFileMs: 40 });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const id = importIdFrom(r.headers.get('content-location'));
  // wait until a worker is downloading and has stored at least some bytes
  const holder = await until('download in progress', () => {
    const row = sql("SELECT worker_id, bytes FROM imports WHERE id = :'p1' AND state = 'downloading'", id)[0];
    return row && Number(row[1]) > 0 ? row[0] : null;
  });
  const pid = Number(/:(\d+):t\d+$/.exec(holder)[1]);  // worker_id is host:pid:thread
  assert.ok(pidAlive(pid), `lease holder ${holder} is a live process`);
  process.kill(pid, 'SIGKILL');
  await until('worker gone', () => !pidAlive(pid));
  // make sure some worker is alive to take over
  startWorker('worker');
  startWorker('worker-b');
  const { res, body } = await pollStatus(r.headers.get('content-location'), c.token, 120000);
  assert.equal(res.status, 200, JSON.stringify(body));
  const row = sql("SELECT worker_id, attempts FROM imports WHERE id = :'p1'", id)[0];
  assert.notEqual(row[0], holder, 'another worker finished it');
  assert.ok(Number(row[1]) >= 2);
  const files = storedFiles(id);
  for (const t of ['Observation', 'Patient', 'Condition']) {
    const f = files.find((n) => n.endsWith(`.${t}.ndjson`));
    assert.ok(f, `${t} stored`);
    assert.ok(readStored(id, f).equals(fixture(t)), `${t} identical after takeover`);
  }
  assert.deepEqual(files.filter((f) => f.endsWith('.part')), []);
});

test('SIGHUP reloads and the worker keeps working; SIGTERM exits cleanly', async () => {
  const pid = startWorker('worker-c');
  // a ready worker has announced itself for the admin UI
  assert.equal(sql("SELECT count(*) FROM workers WHERE pid = :'p1' AND NOT draining", pid)[0][0], '1');
  process.kill(pid, 'SIGHUP');
  const c = await newClient(provider, { types: ['Device'] });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  const { res } = await pollStatus(r.headers.get('content-location'), c.token);
  assert.equal(res.status, 200);
  assert.ok(pidAlive(pid), 'worker survived SIGHUP');
  process.kill(pid, 'SIGTERM');
  await until('worker exit after SIGTERM', () => !pidAlive(pid), 40000);
  assert.equal(sql("SELECT count(*) FROM workers WHERE pid = :'p1'", pid)[0][0], '0', 'a clean exit removes the row');
  const log = fs.readFileSync(path.join(VAR, 'log', 'worker-c.log'), 'utf8');
  assert.match(log, /reload/i);
});
