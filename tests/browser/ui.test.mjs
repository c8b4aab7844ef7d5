// The admin UI in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): key generator -> register a client with "use this public
// key" -> that client gets a token and pings -> the dashboard follows the
// import to 100 % -> import page -> edit the client, ping a slow export and
// cancel it from its page.  Also: escaping of hostile names and error
// messages, CSRF refusal, 401 without credentials, security headers, tidy-clean
// HTML, labels on every field, a phone-width layout.  Screenshots of every
// page go to tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  BASE, VAR, ROOT, startProvider, newClient, importParams, ping, getToken, sql, importIdFrom,
} from '../integration/harness.mjs';

const ARTIFACTS = path.join(ROOT, 'tests/artifacts');
const HOSTILE_NAME = '<script>alert(1)</script>';
const HOSTILE_ERROR = '<img src=x onerror=alert(2)><b>bold</b> & "quoted"';
const tag = crypto.randomUUID();

let provider, browserDir, ctx, page, stopping = false;
const dialogs = [];
const consoleErrors = [];
const documents = [];   // every HTML page the browser received, for tidy

function password() {
  return fs.readFileSync(path.join(VAR, 'admin-password'), 'utf8').trim();
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  provider = await startProvider();
  provider.child.on('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`test provider exited early: code ${code}, signal ${signal}\n`);
  });
  browserDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulk-import-chromium-'));
  ctx = await chromium.launchPersistentContext(browserDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    httpCredentials: { username: 'admin', password: password() },
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('response', (r) => {
    const req = r.request();
    if (req.resourceType() !== 'document' || !/text\/html/.test(r.headers()['content-type'] || '')) return;
    documents.push({ what: `${req.method()} ${r.url()}`, body: r.text().catch(() => null) });
  });
});

after(async () => {
  stopping = true;
  await ctx?.close();
  provider?.stop();
  if (browserDir) fs.rmSync(browserDir, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, limitMs = 60000) {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(200);
  }
}

// Every visible form field has a label (a <label for>, or aria-label).
async function assertLabelled(where) {
  const unlabelled = await page.$$eval('input:not([type=hidden]), select, textarea',
    (els) => els.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.outerHTML));
  assert.deepEqual(unlabelled, [], `fields without a label on ${where}`);
}

// Shared state of the flow (the tests run in order).
const S = {};

test('without administrator credentials the UI answers 401', async () => {
  for (const p of ['/admin/', '/admin/clients', '/admin/keys', '/admin/imports.json']) {
    const r = await fetch(`${BASE}${p}`);
    assert.equal(r.status, 401, p);
  }
  const wrong = await fetch(`${BASE}/admin/`, { headers: { authorization: 'Basic ' + Buffer.from('admin:nope').toString('base64') } });
  assert.equal(wrong.status, 401);
  const post = await fetch(`${BASE}/admin/clients/new`, { method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=x' });
  assert.equal(post.status, 401);
});

test('server page: provider URLs, the consumer key as JWK and PEM, workers and queue; security headers', async () => {
  const r = await page.goto(`${BASE}/admin/`);
  assert.equal(r.status(), 200);
  const h = r.headers();
  assert.match(h['content-security-policy'], /default-src 'self'/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe-inline/);
  assert.equal(h['x-frame-options'], 'DENY');
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'no-referrer');
  assert.match(h['cache-control'], /no-store/);
  const text = await page.textContent('main');
  for (const u of ['/$import', '/auth/token', '/auth/register', '/jwks', '/.well-known/smart-configuration'])
    assert.ok(text.includes(BASE + u), `server page shows ${u}`);
  const consumerJwks = await (await fetch(`${BASE}/jwks`)).json();
  const jwk = JSON.parse(await page.textContent('#ck-jwk-0'));
  assert.equal(jwk.kid, consumerJwks.keys[0].kid);
  assert.equal(jwk.d, undefined, 'no private member');
  const pem = await page.textContent('#ck-pem-0');
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----/);
  const fromPem = crypto.createPublicKey(pem).export({ format: 'jwk' });
  assert.equal(fromPem.x, consumerJwks.keys[0].x, 'PEM and JWKS are the same key');
  assert.match(await page.textContent('#queue-length'), /\d+ queued/);
  assert.match(await page.textContent('#workers-alive'), /^\d+$/);
  assert.ok(await page.isVisible('button[data-copy="ep-0"]'), 'ui.js shows the copy buttons');
  await shot('server');
});

test('key generator: ES384 pair as JWK and PEM, never cached, private key never in a URL', async () => {
  const r0 = await page.goto(`${BASE}/admin/keys`);
  assert.equal(r0.status(), 200);
  await assertLabelled('key generator');
  await page.selectOption('#kg-alg', 'ES384');
  const [resp] = await Promise.all([
    page.waitForResponse((x) => x.url() === `${BASE}/admin/keys` && x.request().method() === 'POST'),
    page.click('button[type=submit]:has-text("Generate key pair")'),
  ]);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['cache-control'], /no-store/);
  await page.waitForSelector('#generated');
  const priv = JSON.parse(await page.inputValue('#priv-jwk'));
  const pub = JSON.parse(await page.inputValue('#pub-jwk'));
  assert.equal(priv.kty, 'EC');
  assert.equal(priv.crv, 'P-384');
  assert.equal(priv.alg, 'ES384');
  assert.ok(priv.d, 'private JWK has d');
  assert.equal(pub.d, undefined, 'public JWK has no d');
  assert.equal(priv.kid, pub.kid);
  // kid is the RFC 7638 thumbprint
  const tp = crypto.createHash('sha256').update(JSON.stringify({ crv: pub.crv, kty: pub.kty, x: pub.x, y: pub.y })).digest('base64url');
  assert.equal(pub.kid, tp);
  assert.match(await page.inputValue('#priv-pem'), /^-----BEGIN PRIVATE KEY-----/);
  assert.match(await page.inputValue('#pub-pem'), /^-----BEGIN PUBLIC KEY-----/);
  // the PEM and the JWK are the same private key
  const fromPem = crypto.createPrivateKey(await page.inputValue('#priv-pem')).export({ format: 'jwk' });
  assert.equal(fromPem.d, priv.d);
  // the download button hands over the private key as a file
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('button[data-download="priv-jwk"]')]);
  assert.equal(dl.suggestedFilename(), 'private.jwk.json');
  assert.equal(JSON.parse(fs.readFileSync(await dl.path(), 'utf8')).d, priv.d);
  await shot('keys');
  // the key is not kept on the server
  const stored = sql("SELECT count(*) FROM clients WHERE jwks::text LIKE '%' || :'p1' || '%'", priv.d)[0][0];
  assert.equal(stored, '0');
  S.priv = priv;
  S.pub = pub;

  // "use this public key" opens the registration form with the public JWKS only
  await Promise.all([page.waitForURL(/\/admin\/clients\/new\?/), page.click('#use-key')]);
  assert.ok(!page.url().includes(priv.d), 'the private key is not in the URL');
  const prefilled = JSON.parse(await page.inputValue('#reg-jwks'));
  assert.deepEqual(prefilled.keys.map((k) => k.kid), [pub.kid]);
  assert.equal(prefilled.keys[0].d, undefined);
});

test('register form: field-level errors, then the client is registered with the generated key', async () => {
  await assertLabelled('register form');
  await page.fill('#reg-name', HOSTILE_NAME);
  await page.fill('#reg-fhir_base_url', 'not a url');
  const [bad] = await Promise.all([
    page.waitForResponse((x) => x.url() === `${BASE}/admin/clients/new` && x.request().method() === 'POST'),
    page.click('button:has-text("Register client")'),
  ]);
  assert.equal(bad.status(), 422);
  await page.waitForSelector('#reg-fhir_base_url-error');
  assert.match(await page.textContent('#reg-fhir_base_url-error'), /absolute http or https URL/);
  assert.equal(await page.getAttribute('#reg-fhir_base_url', 'aria-invalid'), 'true');
  assert.match(await page.getAttribute('#reg-fhir_base_url', 'aria-describedby'), /reg-fhir_base_url-error/);
  assert.equal(await page.inputValue('#reg-name'), HOSTILE_NAME, 'values are kept');
  await shot('register-errors');

  S.cfg = { tag, polls: 2, slowFileMs: 15, types: ['Patient', 'Condition', 'Encounter', 'Observation'] };
  S.fhirBase = provider.base(S.cfg);
  S.providerClientId = await provider.registerConsumer();
  await page.fill('#reg-fhir_base_url', S.fhirBase);
  await page.fill('#reg-provider_client_id', S.providerClientId);
  await Promise.all([page.waitForURL(/\/admin\/clients\/[A-Za-z0-9_-]+\?done=created$/),
    page.click('button:has-text("Register client")')]);
  assert.match(await page.textContent('.notice'), /Client registered/);
  S.clientId = (await page.textContent('#hand-client-id')).trim();
  assert.match(S.clientId, /^[A-Za-z0-9_-]{20,}$/);
  assert.equal(await page.textContent('#hand-token'), `${BASE}/auth/token`);
  assert.equal(await page.textContent('#hand-import'), `${BASE}/$import`);
  assert.ok((await page.textContent('h2.subtitle')).includes(HOSTILE_NAME), 'hostile name shown as text');
  await shot('client');
  const row = sql("SELECT name, fhir_base_url, provider_client_id, jwks->'keys'->0->>'kid' FROM clients WHERE id = :'p1'", S.clientId)[0];
  assert.deepEqual(row, [HOSTILE_NAME, S.fhirBase, S.providerClientId, S.pub.kid]);
});

test('clients list: search, and the hostile name stays text', async () => {
  await page.goto(`${BASE}/admin/clients?q=${encodeURIComponent('<script>')}`);
  const names = await page.$$eval('#clients tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.ok(names.includes(HOSTILE_NAME));
  assert.equal(await page.$$eval('main script', (s) => s.length), 0, 'no script element was injected');
  await page.goto(`${BASE}/admin/clients?q=${encodeURIComponent('no such client ' + tag)}`);
  assert.match(await page.textContent('main'), /No client matches/);
  await page.goto(`${BASE}/admin/clients`);
  await assertLabelled('clients list');
  await shot('clients');
});

test('the registered client signs with the generated key, pings, and the dashboard reaches 100 %', async () => {
  const privateKey = crypto.createPrivateKey({ key: S.priv, format: 'jwk' });
  S.key = { alg: 'ES384', kid: S.priv.kid, privateKey };
  S.token = await getToken(S.clientId, S.key);
  const r = await ping({ token: S.token }, importParams(S.fhirBase + '/$export'));
  assert.equal(r.status, 202, await r.text());
  S.import1 = importIdFrom(r.headers.get('content-location'));

  await page.goto(`${BASE}/admin/imports`);
  const row = `#imports tr[data-import="${S.import1}"]`;
  await page.waitForSelector(row);
  assert.ok((await page.textContent(row)).includes(HOSTILE_NAME));
  // no reload: static/ui.js polls /admin/imports.json and redraws the rows
  const seen = new Set();
  await until('the dashboard to show 100 %', async () => {
    const v = await page.$eval(`${row} progress`, (p) => Number(p.value)).catch(() => null);
    if (v !== null) seen.add(v);
    return v === 100;
  }, 90000);
  assert.match(await page.textContent(`${row} .state`), /complete/);
  assert.ok(seen.size >= 2, `the bar moved: ${[...seen]}`);
  assert.equal(sql("SELECT state FROM imports WHERE id = :'p1'", S.import1)[0][0], 'complete');
  const cells = await page.$$eval(`${row} td`, (tds) => tds.map((t) => t.textContent.trim()));
  assert.equal(cells[5], `${S.cfg.types.length}/${S.cfg.types.length}`, 'files column');
  assert.match(cells[7], /\d(\.\d)? (kB|MB)/, 'bytes column');
  assert.match(cells[8], /\/s$/, 'throughput column');
});

test('import page: files, outcome entries and the provider status URL', async () => {
  await Promise.all([page.waitForURL(new RegExp(`/admin/imports/${S.import1}$`)),
    page.click(`#imports tr[data-import="${S.import1}"] td:first-child a`)]);
  assert.match(await page.textContent('#import .state'), /complete/);
  assert.equal(await page.$eval('#import progress', (p) => Number(p.value)), 100);
  const files = await page.$$eval('#files tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
  assert.equal(files.length, S.cfg.types.length);
  assert.deepEqual(files.map((f) => f[2]).sort(), [...S.cfg.types].sort());
  assert.ok(files.every((f) => f[4] === 'done'), JSON.stringify(files));
  assert.ok(files.every((f) => f[1].startsWith(provider.origin)), 'file URLs shown');
  const patients = fs.readFileSync(path.join(process.env.FIXTURES_DIR || path.resolve(ROOT, '../shared/fixtures'), 'fhir/Patient.ndjson'), 'utf8')
    .trim().split('\n').length;
  assert.ok(files.some((f) => f[2] === 'Patient' && f[5].startsWith(String(patients))), 'line count of Patient');
  assert.match(await page.textContent('#provider-status-url'), new RegExp(`^${provider.origin}/`));
  const outcomes = await page.$$eval('#outcomes tbody tr', (trs) => trs.length);
  assert.ok(outcomes >= S.cfg.types.length, 'one outcome entry per stored file at least');
  assert.equal(await page.$('button:has-text("Cancel import")'), null, 'no cancel button on a finished import');
  await shot('import');
});

test('edit the client, ping a slow export and cancel it from its page', async () => {
  await page.goto(`${BASE}/admin/clients/${S.clientId}`);
  await assertLabelled('client page');
  S.slowBase = provider.base({ tag, polls: 100 });
  await page.fill('#edit-fhir_base_url', S.slowBase);
  await Promise.all([page.waitForURL(/done=saved$/), page.click('button:has-text("Save changes")')]);
  assert.match(await page.textContent('.notice'), /Changes saved/);
  assert.equal(sql("SELECT fhir_base_url FROM clients WHERE id = :'p1'", S.clientId)[0][0], S.slowBase);

  const r = await ping({ token: S.token }, importParams(S.slowBase + '/$export'));
  assert.equal(r.status, 202, await r.text());
  S.import2 = importIdFrom(r.headers.get('content-location'));

  // the dashboard while one import runs and others have ended (README screenshot)
  await page.goto(`${BASE}/admin/imports`);
  await page.waitForSelector(`#imports tr[data-import="${S.import2}"]`);
  await until('the slow import to be exporting', async () =>
    /exporting/.test(await page.textContent(`#imports tr[data-import="${S.import2}"] .state`)), 60000);
  await shot('dashboard');

  await page.goto(`${BASE}/admin/imports/${S.import2}`);
  await page.waitForSelector('#provider-status-url');   // the provider export exists; cancel must reach it
  const statusUrl = (await page.textContent('#provider-status-url')).trim();
  await shot('import-running');
  await Promise.all([page.waitForURL(/done=cancelled$/), page.click('button:has-text("Cancel import")')]);
  assert.match(await page.textContent('.notice'), /Import cancelled/);
  assert.match(await page.textContent('#import .state'), /cancelled/);
  const [state, requested] = sql("SELECT state, cancel_requested FROM imports WHERE id = :'p1'", S.import2)[0];
  assert.equal(state, 'cancelled');
  assert.equal(requested, 't');
  // same semantics as DELETE /imports/{id}: the API forgets it, the worker stops the provider's export
  const st = await fetch(`${BASE}/imports/${S.import2}`, { headers: { authorization: `Bearer ${S.token}` } });
  assert.equal(st.status, 404);
  await until('the worker to DELETE the provider export', async () =>
    (await provider.log()).some((e) => e.method === 'DELETE' && statusUrl.endsWith(e.path)), 30000);
});

test('an import error message with HTML is shown as text', async () => {
  const c = await newClient(provider, { tag, exportError: { status: 400, code: 'processing', message: HOSTILE_ERROR } },
    { name: `error test ${tag}` });
  const r = await ping(c, importParams(c.fhirBase + '/$export'));
  assert.equal(r.status, 202);
  S.import3 = importIdFrom(r.headers.get('content-location'));
  S.errorClient = c.id;
  await until('the import to fail', () => sql("SELECT state FROM imports WHERE id = :'p1'", S.import3)[0][0] === 'failed', 60000);
  await page.goto(`${BASE}/admin/imports/${S.import3}`);
  const shown = await page.textContent('#import-error');
  assert.ok(shown.includes('<img src=x onerror=alert(2)><b>bold</b>'), shown);
  assert.equal(await page.$$eval('main img, main b', (e) => e.length), 0, 'no element was injected');
  const outcomeText = await page.textContent('#outcomes');
  assert.ok(outcomeText.includes('<img src=x'), 'outcome entry shown as text');
  await shot('import-failed');
  await page.goto(`${BASE}/admin/imports`);
  await page.waitForSelector(`#imports tr[data-import="${S.import3}"]`);
  assert.equal(await page.$$eval('main img', (e) => e.length), 0);
});

test('disable and enable a client; delete another one through the confirmation page', async () => {
  await page.goto(`${BASE}/admin/clients/${S.clientId}`);
  await Promise.all([page.waitForURL(/done=disabled$/), page.click('button:has-text("Disable client")')]);
  assert.match(await page.textContent('h2.subtitle .state'), /disabled/);
  await assert.rejects(getToken(S.clientId, S.key), /invalid_client|401/);
  await Promise.all([page.waitForURL(/done=enabled$/), page.click('button:has-text("Enable client")')]);
  assert.match(await page.textContent('h2.subtitle .state'), /enabled/);
  assert.ok(await getToken(S.clientId, S.key));

  await page.goto(`${BASE}/admin/clients/${S.errorClient}`);
  await Promise.all([page.waitForURL(/\/delete$/), page.click('a:has-text("Delete this client")')]);
  assert.equal(sql("SELECT count(*) FROM clients WHERE id = :'p1'", S.errorClient)[0][0], '1', 'GET does not delete');
  await shot('client-delete');
  await Promise.all([page.waitForURL(/done=deleted$/), page.click('button:has-text("Delete this client")')]);
  assert.match(await page.textContent('.notice'), /Client deleted/);
  assert.equal(sql("SELECT count(*) FROM clients WHERE id = :'p1'", S.errorClient)[0][0], '0');
});

test('form posts without the CSRF token are refused with 403; the JSON API needs application/json', async () => {
  const before_ = sql('SELECT count(*) FROM clients')[0][0];
  const forms = [
    ['/admin/clients/new', { name: 'csrf victim', fhir_base_url: 'https://ehr.example/fhir', jwks: JSON.stringify({ keys: [S.pub] }), provider_auth: 'open' }],
    [`/admin/clients/${S.clientId}/state`, { enabled: '0' }],
    [`/admin/clients/${S.clientId}/delete`, {}],
    [`/admin/imports/${S.import1}/cancel`, {}],
    ['/admin/keys', { alg: 'ES256' }],
  ];
  for (const [p, form] of forms) {
    const none = await ctx.request.post(`${BASE}${p}`, { form, maxRedirects: 0 });
    assert.equal(none.status(), 403, `${p} without a token`);
    const wrong = await ctx.request.post(`${BASE}${p}`, { form: { ...form, csrf: 'A'.repeat(43) }, maxRedirects: 0 });
    assert.equal(wrong.status(), 403, `${p} with a wrong token`);
  }
  assert.equal(sql('SELECT count(*) FROM clients')[0][0], before_, 'nothing was created or deleted');
  assert.equal(sql("SELECT enabled FROM clients WHERE id = :'p1'", S.clientId)[0][0], 't');
  assert.equal(sql("SELECT state FROM imports WHERE id = :'p1'", S.import1)[0][0], 'complete');
  // the registration API: no CSRF token, but only as JSON (a form or text/plain cannot forge it)
  const auth = 'Basic ' + Buffer.from(`admin:${password()}`).toString('base64');
  const body = JSON.stringify({ name: 'x', fhir_base_url: 'https://ehr.example/fhir', jwks: { keys: [S.pub] }, provider_auth: 'open' });
  for (const ct of [null, 'text/plain', 'application/x-www-form-urlencoded']) {
    const r = await fetch(`${BASE}/auth/register`, { method: 'POST', body: Buffer.from(body),
      headers: ct ? { authorization: auth, 'content-type': ct } : { authorization: auth } });
    assert.equal(r.status, 415, `register with Content-Type ${ct}`);
  }
  assert.equal(sql('SELECT count(*) FROM clients')[0][0], before_);
});

test('phone-width layout has no horizontal page scroll', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const p of ['/admin/', '/admin/imports', `/admin/clients/${S.clientId}`, '/admin/keys']) {
    await page.goto(`${BASE}${p}`);
    const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(sw <= cw, `${p}: page is ${sw}px wide in a ${cw}px viewport`);
  }
  await page.goto(`${BASE}/admin/imports`);
  await shot('dashboard-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('no dialog opened, no script or CSP error, and every page is valid HTML (tidy)', async () => {
  assert.deepEqual(dialogs, [], 'no alert() ran');
  const csp = consoleErrors.filter((m) => /Content Security Policy|Refused to/i.test(m));
  assert.deepEqual(csp, [], 'no CSP violation');
  const pageErrors = consoleErrors.filter((m) => !/Failed to load resource/.test(m));
  assert.deepEqual(pageErrors, [], 'no script errors');
  assert.ok(documents.length >= 15, `pages collected: ${documents.length}`);
  const seen = new Set();
  const pages = new Set();
  for (const d of documents) {
    const html = await d.body;
    if (!html || seen.has(html)) continue;
    seen.add(html);
    pages.add(d.what.replace(/[?].*$/, '').replace(/[A-Za-z0-9_-]{20,}/g, '{id}'));
    const t = spawnSync('tidy', ['-q', '-e', '--show-warnings', 'yes'], { input: html, encoding: 'utf8' });
    assert.ok(t.status !== null, 'tidy ran');
    const lines = t.stderr.split('\n').filter(Boolean);
    const errors = lines.filter((l) => /Error:/.test(l));
    // tidy 5.6 predates WAI-ARIA 1.1's aria-current (the current page in the navigation):
    // its one warning, "proprietary attribute", is about tidy's attribute list, not the HTML.
    const warnings = lines.filter((l) => /Warning:/.test(l) && !/proprietary attribute "aria-current"/.test(l));
    assert.deepEqual(errors, [], `${d.what}: tidy errors`);
    assert.deepEqual(warnings, [], `${d.what}: tidy warnings`);
  }
  // every kind of page was checked, including the POST results (key pair, form errors)
  for (const p of ['GET /admin/', 'GET /admin/clients', 'GET /admin/clients/new', 'POST /admin/clients/new',
    'GET /admin/clients/{id}', 'GET /admin/clients/{id}/delete', 'GET /admin/keys', 'POST /admin/keys',
    'GET /admin/imports', 'GET /admin/imports/{id}'])
    assert.ok(pages.has(p.replace(/^(\w+) /, `$1 ${BASE}`)), `tidy checked ${p}: ${[...pages].join(', ')}`);
});
