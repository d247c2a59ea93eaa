// A small website that logs its users in through wxlogin with OpenID Connect: the code flow
// with PKCE, the id_token checked against the provider's JWKS, and `prompt=none` for a silent
// second login. Node's built-in modules only; not part of wxlogin (the browser test runs it).
//
//   WXLOGIN_ISSUER=http://127.0.0.1:3000 CLIENT_ID=... CLIENT_SECRET=... PORT=8000 \
//     node examples/relying-party.mjs
//
// Register it first: wxlogin client add --name "Example site" --redirect-uri http://127.0.0.1:8000/callback

import http from 'node:http';
import crypto from 'node:crypto';

const ISSUER = (process.env.WXLOGIN_ISSUER ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const CLIENT_ID = process.env.CLIENT_ID ?? '';
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? '';
const PORT = Number(process.env.PORT ?? 8000);
const SELF = `http://127.0.0.1:${PORT}`;
const REDIRECT_URI = `${SELF}/callback`;

if (!CLIENT_ID || !CLIENT_SECRET) {
  console.error('CLIENT_ID and CLIENT_SECRET are required (wxlogin client add prints them)');
  process.exit(2);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const random = () => b64url(crypto.randomBytes(32));

/** Pending logins by `state`, and logged-in sessions by cookie. In memory: an example. */
const pending = new Map();
const sessions = new Map();

let metadata;
async function provider() {
  if (!metadata) {
    const res = await fetch(`${ISSUER}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`discovery: ${res.status}`);
    metadata = await res.json();
    if (metadata.issuer !== ISSUER) throw new Error(`issuer is ${metadata.issuer}, not ${ISSUER}`);
  }
  return metadata;
}

/** Checks an id_token's RS256 signature against the JWKS, then its claims. */
async function verifyIdToken(idToken, nonce) {
  const [head, body, signature] = idToken.split('.');
  const header = JSON.parse(Buffer.from(head, 'base64url'));
  if (header.alg !== 'RS256') throw new Error(`alg ${header.alg}`);
  const jwks = await (await fetch((await provider()).jwks_uri)).json();
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key ${header.kid} in the JWKS`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify(
    'RSA-SHA256',
    Buffer.from(`${head}.${body}`),
    key,
    Buffer.from(signature, 'base64url'),
  );
  if (!ok) throw new Error('bad id_token signature');
  const claims = JSON.parse(Buffer.from(body, 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== ISSUER) throw new Error(`iss ${claims.iss}`);
  if (claims.aud !== CLIENT_ID) throw new Error(`aud ${claims.aud}`);
  if (claims.exp < now) throw new Error('expired id_token');
  if (claims.nonce !== nonce) throw new Error('nonce mismatch');
  return claims;
}

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>` +
    `<body><h1>${title}</h1>${body}</body></html>`);
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function handle(req, res) {
  const url = new URL(req.url, SELF);
  const sid = /(?:^|;\s*)rp_session=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  if (url.pathname === '/') {
    const who = sid && sessions.get(sid);
    if (who) {
      return page(res, 200, 'Example site',
        `<p id="rp-user">Logged in as <span id="rp-phone">${escape(who.phone_number ?? '')}</span>` +
        ` (<code id="rp-sub">${escape(who.sub)}</code>), by` +
        ` <span id="rp-amr">${escape((who.amr ?? []).join(' '))}</span></p>`);
    }
    return page(res, 200, 'Example site', '<p><a id="rp-login" href="/login">Log in with WeChat</a></p>');
  }
  if (url.pathname === '/login') {
    const state = random();
    const nonce = random();
    const verifier = random();
    pending.set(state, { nonce, verifier });
    const authorize = new URL((await provider()).authorization_endpoint);
    const params = {
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT_URI,
      scope: 'openid phone',
      state,
      nonce,
      code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
      code_challenge_method: 'S256',
    };
    if (url.searchParams.get('prompt')) params.prompt = url.searchParams.get('prompt');
    for (const [k, v] of Object.entries(params)) authorize.searchParams.set(k, v);
    res.writeHead(302, { location: authorize.toString() });
    return res.end();
  }
  if (url.pathname === '/callback') {
    const state = url.searchParams.get('state') ?? '';
    const waiting = pending.get(state);
    pending.delete(state);
    if (!waiting) return page(res, 400, 'Unknown login', '<p>No login was started here.</p>');
    if (url.searchParams.get('iss') && url.searchParams.get('iss') !== ISSUER) {
      return page(res, 400, 'Wrong issuer', '');
    }
    const error = url.searchParams.get('error');
    if (error) return page(res, 200, 'Not logged in', `<p id="rp-error">${escape(error)}</p>`);
    const tokenRes = await fetch((await provider()).token_endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: url.searchParams.get('code') ?? '',
        redirect_uri: REDIRECT_URI,
        code_verifier: waiting.verifier,
      }),
    });
    const tokens = await tokenRes.json();
    if (!tokenRes.ok) return page(res, 502, 'Token exchange failed', `<p>${escape(tokens.error)}</p>`);
    const claims = await verifyIdToken(tokens.id_token, waiting.nonce);
    const session = random();
    sessions.set(session, claims);
    res.writeHead(302, { location: '/', 'set-cookie': `rp_session=${session}; HttpOnly; SameSite=Lax; Path=/` });
    return res.end();
  }
  res.writeHead(404);
  res.end();
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => page(res, 500, 'Error', `<p>${escape(e.message)}</p>`));
});
server.listen(PORT, '127.0.0.1', () => console.log(`relying party listening on ${SELF}`));
