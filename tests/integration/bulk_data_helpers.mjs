// Helpers for the `bulk-data` command suite (bulk_data.test.mjs): run the
// binary, make key files, read what landed in a folder destination.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, FIXTURES, makeKey } from './harness.mjs';

export const BIN = path.join(ROOT, process.env.BUILD || 'build', 'bin', 'bulk-data');

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'bulk-data-test-'));
let tmpN = 0;
export function tmpDir(name = 'd') {
  const d = path.join(tmpRoot, `${name}-${++tmpN}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}
export function cleanupTmp() {
  fs.rmSync(tmpRoot, { recursive: true, force: true });
}

// Runs bulk-data to its end.  opts.onStdoutLine(line, child) sees stdout as
// it arrives (e.g. to send SIGINT at the right moment).
export function runBulk(args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env || {}) },
      cwd: opts.cwd || tmpRoot,
    });
    let stdout = '';
    let stderr = '';
    let pending = '';
    const limit = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs || 60000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!opts.onStdoutLine) return;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        opts.onStdoutLine(line, child);
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr, out: stdout + stderr });
    });
  });
}

// A key pair for SMART Backend Services: the private key as a JWK file (with
// kid and alg) or PEM, and the public JWKS for registering at the provider.
export function keyFiles(alg, format = 'jwk') {
  const key = makeKey(alg);
  const dir = tmpDir('key');
  const file = path.join(dir, format === 'pem' ? 'key.pem' : 'key.jwk');
  if (format === 'pem') {
    // a PEM has no kid: bulk-data uses the RFC 7638 thumbprint, so register that
    const j = key.jwk;
    const req = j.kty === 'RSA' ? { e: j.e, kty: j.kty, n: j.n } : { crv: j.crv, kty: j.kty, x: j.x, y: j.y };
    j.kid = crypto.createHash('sha256').update(JSON.stringify(req)).digest('base64url');
    key.kid = j.kid;
    fs.writeFileSync(file, key.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  } else {
    const jwk = { ...key.privateKey.export({ format: 'jwk' }), kid: key.kid, alg };
    fs.writeFileSync(file, JSON.stringify(jwk));
  }
  const priv = key.privateKey.export({ format: 'jwk' });
  return { ...key, file, privateD: priv.d };
}

export async function registerAtProvider(provider, jwks) {
  const r = await fetch(`${provider.origin}/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jwks }),
  });
  if (r.status !== 201) throw new Error(`provider register: ${r.status} ${await r.text()}`);
  return (await r.json()).client_id;
}

// {Type: Buffer} for the `{n}.{Type}.ndjson` files of a folder destination.
export function storedByType(dir) {
  const out = {};
  for (const f of fs.readdirSync(dir)) {
    const m = /^\d+\.([A-Za-z]+)\.ndjson$/.exec(f);
    if (m) out[m[1]] = fs.readFileSync(path.join(dir, f));
  }
  return out;
}

export function fixtureLines(type) {
  return fs.readFileSync(path.join(FIXTURES, 'fhir', `${type}.ndjson`), 'utf8').split('\n').filter(Boolean);
}

export function jsonLines(text) {
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts a node helper server that prints `LISTENING {json}` (tests/receiver,
// tests/s3); resolves to {child, info, stop()}.
export function startHelper(script, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let buf = '';
    child.once('exit', (code) => reject(new Error(`${path.basename(script)} exited ${code}`)));
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /LISTENING (.*)\n/.exec(buf);
      if (m) resolve({ child, info: JSON.parse(m[1]), stop() { child.kill('SIGTERM'); } });
    });
  });
}
