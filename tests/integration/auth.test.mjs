// Registration and the SMART Backend Services token endpoint of the consumer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  BASE, TOKEN_URL, startProvider, makeKey, assertion, tokenRequest, register, newClient, signJwt, adminAuth, sql,
} from './harness.mjs';

let provider, client;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

before(async () => {
  provider = await startProvider();
  client = await newClient(provider);
});
after(() => provider.stop());

function form(clientAssertion, extra = {}) {
  return { grant_type: 'client_credentials', scope: 'system/*.write', client_assertion_type: ASSERTION_TYPE,
    client_assertion: clientAssertion, ...extra };
}

async function expectTokenError(fields, status, error, descRe) {
  const r = await tokenRequest(fields);
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assert.equal(body.error, error);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  if (descRe) assert.match(body.error_description, descRe);
  return body;
}

test('token endpoint issues a bearer token for a valid assertion', async () => {
  const r = await tokenRequest(form(assertion(client.id, client.key)));
  const body = await r.json();
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(body.token_type, 'bearer');
  assert.ok(body.access_token.length >= 32);
  assert.ok(body.expires_in > 0 && body.expires_in <= 3600);
  assert.equal(body.scope, 'system/*.write');
  // only a hash of the token is stored
  const rows = sql("SELECT count(*) FROM access_tokens WHERE token_sha256 = :'p1'",
    crypto.createHash('sha256').update(body.access_token).digest('hex'));
  assert.equal(rows[0][0], '1');
  assert.equal(sql("SELECT count(*) FROM access_tokens WHERE token_sha256 = :'p1'", body.access_token)[0][0], '0');
});

test('token endpoint works for every RS and ES algorithm', async () => {
  for (const alg of ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512']) {
    const c = await newClient(provider, undefined, { alg });
    assert.ok(c.token, alg);
  }
});

test('alg none is rejected', async () => {
  const a = assertion(client.id, client.key, {}, { alg: 'none' });
  await expectTokenError(form(a), 401, 'invalid_client', /alg/i);
});

test('HS256 signed with the public key as secret is rejected', async () => {
  const rsa = makeKey('RS256');
  const r = await register({ name: 'rsa', fhir_base_url: provider.base(), jwks: rsa.jwks, provider_client_id: 'x' });
  const id = (await r.json()).client_id;
  const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt({ alg: 'HS256', kid: rsa.kid, typ: 'JWT' },
    { iss: id, sub: id, aud: TOKEN_URL, exp: now + 60, jti: crypto.randomUUID() }, pem, 'HS256');
  await expectTokenError(form(token), 401, 'invalid_client', /alg/i);
});

test('expired assertion is rejected', async () => {
  const now = Math.floor(Date.now() / 1000);
  await expectTokenError(form(assertion(client.id, client.key, { exp: now - 10 })), 401, 'invalid_client', /exp/);
});

test('assertion expiring more than 5 minutes ahead is rejected', async () => {
  const now = Math.floor(Date.now() / 1000);
  await expectTokenError(form(assertion(client.id, client.key, { exp: now + 600 })), 401, 'invalid_client', /exp/);
});

test('wrong aud is rejected', async () => {
  await expectTokenError(form(assertion(client.id, client.key, { aud: `${BASE}/other` })), 401, 'invalid_client', /aud/);
});

test('replayed jti is rejected', async () => {
  const a = assertion(client.id, client.key);
  const first = await tokenRequest(form(a));
  assert.equal(first.status, 200);
  await expectTokenError(form(a), 401, 'invalid_client', /jti/);
});

test('unknown kid is rejected', async () => {
  await expectTokenError(form(assertion(client.id, client.key, {}, { kid: 'no-such-kid' })), 401, 'invalid_client', /kid/);
});

test('bad signature is rejected', async () => {
  const other = makeKey('ES384');
  other.kid = client.key.kid;   // right kid, wrong key
  await expectTokenError(form(assertion(client.id, other)), 401, 'invalid_client', /signature/);
});

test('iss different from sub, unknown client and grant errors', async () => {
  await expectTokenError(form(assertion(client.id, client.key, { sub: 'someone-else' })), 401, 'invalid_client');
  await expectTokenError(form(assertion('no-such-client', client.key, {})), 401, 'invalid_client');
  await expectTokenError(form(assertion(client.id, client.key), { grant_type: 'password' }), 400, 'unsupported_grant_type');
  await expectTokenError(form(assertion(client.id, client.key), { client_assertion_type: 'x' }), 400, 'invalid_request');
  await expectTokenError(form(''), 400, 'invalid_request');
});

test('registration requires administrator credentials', async () => {
  const r = await fetch(`${BASE}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'x', fhir_base_url: provider.base(), jwks: makeKey().jwks }) });
  assert.equal(r.status, 401);
  const wrong = await fetch(`${BASE}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json',
    authorization: 'Basic ' + Buffer.from('admin:wrong').toString('base64') }, body: '{}' });
  assert.equal(wrong.status, 401);
});

test('registration rejects bad keys and URLs with a clear message', async () => {
  const good = { name: 'ok', fhir_base_url: provider.base(), jwks: makeKey().jwks, provider_client_id: 'c' };
  const small = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  const priv = makeKey('ES256').privateKey.export({ format: 'jwk' });
  const cases = [
    [{ ...good, jwks: { keys: [{ ...small, kid: 'k' }] } }, /1024/],
    [{ ...good, jwks: { keys: [{ ...priv, kid: 'k' }] } }, /private/i],
    [{ ...good, jwks: { keys: [] } }, /keys/],
    [{ ...good, jwks: 'nope' }, /jwks/],
    [{ ...good, jwks: undefined }, /jwks/],
    [{ ...good, fhir_base_url: 'ftp://x/fhir' }, /fhir_base_url/],
    [{ ...good, fhir_base_url: 'not a url' }, /fhir_base_url/],
    [{ ...good, fhir_base_url: 'http://user:pw@host/fhir' }, /fhir_base_url/],
    [{ ...good, name: '' }, /name/],
    [{ ...good, provider_client_id: undefined }, /provider_client_id/],
    [{ ...good, jwks: undefined, jwks_uri: 'http://127.0.0.1:1/jwks' }, /jwks_uri/],
    [{ ...good, jwks: undefined, jwks_uri: 'http://keys.example.org/jwks' }, /jwks_uri.*https/],
  ];
  for (const [body, re] of cases) {
    const r = await register(body);
    const out = await r.json();
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(out.error_description, re, JSON.stringify(out));
  }
  const bad = await fetch(`${BASE}/auth/register`, { method: 'POST',
    headers: { authorization: adminAuth(), 'content-type': 'application/json' }, body: '{not json' });
  assert.equal(bad.status, 400);
});

test('a client with a jwks_uri gets its keys fetched', async () => {
  // the test provider serves the consumer JWKS? no: use the consumer's own /jwks as a URL that exists;
  // tokens signed by our test key must then fail (kid not in that JWKS), proving the URI is used.
  const r = await register({ name: 'uri', fhir_base_url: provider.base(), jwks_uri: `${BASE}/jwks`, provider_client_id: 'c' });
  assert.equal(r.status, 201, await r.clone().text());
  const id = (await r.json()).client_id;
  await expectTokenError(form(assertion(id, client.key)), 401, 'invalid_client', /kid/);
});

test('discovery documents', async () => {
  const sc = await (await fetch(`${BASE}/.well-known/smart-configuration`)).json();
  assert.equal(sc.token_endpoint, TOKEN_URL);
  assert.ok(sc.token_endpoint_auth_signing_alg_values_supported.includes('ES384'));
  assert.ok(!sc.token_endpoint_auth_signing_alg_values_supported.includes('HS256'));
  const jwks = await (await fetch(`${BASE}/jwks`)).json();
  assert.ok(jwks.keys.length >= 1);
  for (const k of jwks.keys) assert.equal(k.d, undefined, 'no private members in /jwks');
  const cs = await (await fetch(`${BASE}/metadata`)).json();
  assert.equal(cs.resourceType, 'CapabilityStatement');
  assert.ok(JSON.stringify(cs).includes('import'));
});
