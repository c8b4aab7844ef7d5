// Local S3 for the S3 destination tests: s3rver (npm) on 127.0.0.1 behind a
// thin front that does what s3rver 3.7 does not:
//  * verifies AWS SigV4 header signatures like S3 does (s3rver accepts any
//    V4 signature), against the account S3RVER / S3RVER, so a wrong secret
//    fails with SignatureDoesNotMatch and every x-amz-* header must be signed;
//  * answers AbortMultipartUpload (s3rver says MethodNotAllowed);
//  * answers ListObjectsV2 itself from s3rver's store: s3rver's continuation
//    tokens use DES, which Node 20's OpenSSL 3 no longer has;
//  * test switches: POST /__fault?status=500&match=partNumber%3D2&count=1
//    fails the next matching request(s); POST /__listmaxkeys?n=2 pages
//    ListObjectsV2 by 2 keys; GET /__stats.
// Buckets: $S3_TEST_BUCKETS (comma separated), default "bulk-test".
// Prints `LISTENING {"port":P,"buckets":[...]}` when ready; exits on SIGTERM,
// SIGINT or when stdin closes (the test process died), removing its data.
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');

const SECRETS = { S3RVER: 'S3RVER' };
const buckets = (process.env.S3_TEST_BUCKETS || 'bulk-test').split(',').filter(Boolean);
const dir = mkdtempSync(path.join(os.tmpdir(), 's3rver-test-'));
const s3 = new S3rver({
  silent: true,
  directory: dir,
  configureBuckets: buckets.map(name => ({ name })),
});
await s3.configureBuckets();
const app = s3.callback();

const stats = { requests: 0, signed: 0, sigFailures: 0, aborts: [], withToken: 0, faults: 0, listPages: 0, partSizes: [] };
let fault = null;            // { status, match, method, count }
let listMaxKeys = 0;

// RFC 3986 encoding as SigV4 wants it
const enc = s => encodeURIComponent(s).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const dec = s => { try { return decodeURIComponent(s); } catch { return s; } };
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();
const sha256 = data => createHash('sha256').update(data).digest('hex');

function xmlError(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

// null when the signature is right, else [status, code, message]
function checkSignature(req) {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/,]+)\/(\d{8})\/([^/,]+)\/([^/,]+)\/aws4_request, *SignedHeaders=([^, ]+), *Signature=([0-9a-f]{64})$/
    .exec(req.headers.authorization);
  if (!m)
    return [400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed.'];
  const [, accessKey, date, region, service, signedList, signature] = m;
  const secret = SECRETS[accessKey];
  if (secret === undefined)
    return [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  const signed = signedList.split(';');
  const amzDate = req.headers['x-amz-date'] || '';
  if (!amzDate.startsWith(date) || service !== 's3')
    return [403, 'SignatureDoesNotMatch', 'Credential scope does not match the request.'];
  for (const h of ['host', 'x-amz-date', 'x-amz-content-sha256', ...Object.keys(req.headers).filter(h => h.startsWith('x-amz-'))])
    if (!signed.includes(h))
      return [403, 'AccessDenied', `Header ${h} must be signed.`];
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
  const canonicalUri = rawPath.split('/').map(s => enc(dec(s))).join('/');
  const canonicalQuery = rawQuery.split('&').filter(Boolean).map(p => {
    const i = p.indexOf('=');
    return [enc(dec(i < 0 ? p : p.slice(0, i))), enc(dec(i < 0 ? '' : p.slice(i + 1)))];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const canonicalHeaders = signed.map(h => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonicalRequest = [req.method, canonicalUri, canonicalQuery, canonicalHeaders, signedList,
    req.headers['x-amz-content-sha256']].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256(canonicalRequest)}`;
  const key = hmac(hmac(hmac(hmac('AWS4' + secret, date), region), service), 'aws4_request');
  if (hmac(key, toSign).toString('hex') !== signature)
    return [403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
  return null;
}

function control(req, res, url) {
  const p = url.searchParams;
  if (url.pathname === '/__stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify(stats));
  }
  if (url.pathname === '/__fault') {
    fault = { status: Number(p.get('status') || 500), match: p.get('match') || '', method: p.get('method') || '',
      count: Number(p.get('count') || 1) };
  } else if (url.pathname === '/__listmaxkeys') {
    listMaxKeys = Number(p.get('n') || 0);
  } else if (url.pathname === '/__reset') {
    fault = null;
    listMaxKeys = 0;
    Object.assign(stats, { requests: 0, signed: 0, sigFailures: 0, aborts: [], withToken: 0, faults: 0, listPages: 0, partSizes: [] });
  } else {
    return xmlError(res, 404, 'NoSuchControl', 'unknown control path');
  }
  res.writeHead(204);
  res.end();
}

const xmlEsc = s => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// ListObjectsV2 (path-style, no delimiter) with base64url(last key) tokens
async function listV2(res, url) {
  const bucket = decodeURIComponent(url.pathname.split('/')[1] || '');
  if (!(await s3.store.getBucket(bucket)))
    return xmlError(res, 404, 'NoSuchBucket', 'The specified bucket does not exist');
  const p = url.searchParams;
  const prefix = p.get('prefix') || '';
  const token = p.get('continuation-token');
  const startAfter = token ? Buffer.from(token, 'base64url').toString() : (p.get('start-after') || '');
  const maxKeys = Math.min(1000, Number(p.get('max-keys') || listMaxKeys || 1000));
  const r = await s3.store.listObjects(bucket, { prefix, startAfter, maxKeys });
  stats.listPages++;
  const contents = r.objects.map(o => `<Contents><Key>${xmlEsc(o.key)}</Key><ETag>${xmlEsc(o.metadata.etag || '')}</ETag>` +
    `<Size>${o.metadata['content-length'] || 0}</Size><StorageClass>STANDARD</StorageClass></Contents>`).join('');
  const next = r.isTruncated && r.objects.length
    ? `<NextContinuationToken>${Buffer.from(r.objects[r.objects.length - 1].key).toString('base64url')}</NextContinuationToken>` : '';
  res.writeHead(200, { 'Content-Type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `<Name>${xmlEsc(bucket)}</Name><Prefix>${xmlEsc(prefix)}</Prefix><KeyCount>${r.objects.length}</KeyCount>` +
    `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${r.isTruncated ? 'true' : 'false'}</IsTruncated>` +
    (token ? `<ContinuationToken>${xmlEsc(token)}</ContinuationToken>` : '') + next + contents + '</ListBucketResult>');
}

// answer only after the request body is read, so the connection stays usable
function afterBody(req, fn) {
  req.on('data', () => {});
  req.on('end', fn);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname.startsWith('/__'))
    return afterBody(req, () => control(req, res, url));
  stats.requests++;
  if (req.headers.authorization) {
    const bad = checkSignature(req);
    if (bad) {
      stats.sigFailures++;
      return afterBody(req, () => xmlError(res, ...bad));
    }
    stats.signed++;
    if (req.headers['x-amz-security-token'])
      stats.withToken++;
  }
  if (fault && fault.count > 0 && req.url.includes(fault.match) && (!fault.method || fault.method === req.method)) {
    fault.count--;
    stats.faults++;
    return afterBody(req, () => xmlError(res, fault.status, fault.status >= 500 ? 'InternalError' : 'InvalidRequest',
      'injected fault'));
  }
  if (req.method === 'PUT' && url.searchParams.has('partNumber'))
    stats.partSizes.push(Number(req.headers['content-length']));
  if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
    stats.aborts.push({ path: url.pathname, uploadId: url.searchParams.get('uploadId') });
    return afterBody(req, () => { res.writeHead(204); res.end(); });
  }
  if (req.method === 'GET' && url.searchParams.get('list-type') === '2')
    return afterBody(req, () => listV2(res, url).catch(e => xmlError(res, 500, 'InternalError', String(e.message))));
  app(req, res);
});

let stopping = false;
function stop() {
  if (stopping)
    return;
  stopping = true;
  server.close();
  server.closeAllConnections?.();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

server.listen(Number(process.env.S3_TEST_PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${JSON.stringify({ port: server.address().port, buckets })}\n`);
});
