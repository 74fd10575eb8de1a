// A real OpenID Connect provider for the tests: panva's certified `oidc-provider`, with a few
// test accounts. Started by the test harness on 127.0.0.1; the issuer is named `localhost` so
// its cookies never mix with the portal's (which is served on 127.0.0.1).
//
//   OIDC_PORT=4010 OIDC_REDIRECT_URIS=http://127.0.0.1:3211/auth/callback \
//   OIDC_POST_LOGOUT_URIS=http://127.0.0.1:3211/signin node peers/oidc-provider.mjs
//
// Test control, on the same port under /test/ (for tests only: anyone who can reach the port
// can change who is who; it listens on 127.0.0.1):
//   POST /test/accounts/{id}  JSON object: merged into the account's claims (the account is
//                             created when new; a claim set to null is removed). Answers the
//                             account's claims. Takes effect at the next token the provider
//                             issues (the login name is the account id).
// OIDC_PROFILE=strict configures the provider unlike the default one: ID tokens signed with
// ES256 (an EC key) and carrying only the protocol claims (`conformIdTokenClaims`: email,
// name and groups come from userinfo only).
//
//   POST /test/rotate-key     Replaces the signing key with a new RSA key with a new `kid`: the
//                             provider is built again with it (same issuer, clients, accounts,
//                             cookie keys and in-memory sessions); the old key is no longer
//                             published. Answers {"kid": "..."}.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT ?? 4010);
const issuer = process.env.OIDC_ISSUER ?? `http://localhost:${port}`;
const list = (v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const strict = process.env.OIDC_PROFILE === 'strict';

// Test accounts: the login name is the account id (any password works in dev interactions).
const accounts = {
  alice: { email: 'alice@example.test', name: 'Alice Admin', department: 'IT', job_title: 'Platform lead', groups: ['qm-admins', 'Engineering'] },
  bob: { email: 'bob@example.test', name: 'Bob Builder', department: 'Engineering', job_title: 'Engineer', groups: ['Engineering'], manager_email: 'alice@example.test' },
  carol: { email: 'carol@example.test', name: 'Carol Clerk', department: 'Finance', job_title: 'Accountant', groups: ['Finance'] },
};

// A fresh RSA signing key as a private JWK set, with a new key id.
function signingKeys() {
  const { privateKey } = strict
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alg = strict ? 'ES256' : 'RS256';
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `test-${randomUUID()}`, use: 'sig', alg };
  return { keys: [jwk] };
}

function build(jwks) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: process.env.OIDC_CLIENT_ID ?? 'quartermaster',
        ...(strict ? { id_token_signed_response_alg: 'ES256' } : {}),
        client_secret: process.env.OIDC_CLIENT_SECRET ?? 'test-client-secret',
        redirect_uris: list(process.env.OIDC_REDIRECT_URIS),
        post_logout_redirect_uris: list(process.env.OIDC_POST_LOGOUT_URIS),
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks,
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email_verified: true, ...account };
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'department', 'job_title', 'manager_email', 'zoneinfo'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    conformIdTokenClaims: strict,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    cookies: { keys: ['quartermaster-test-cookie-key'] },
  });
  provider.proxy = false;
  return provider;
}

let jwks = signingKeys();
let handle = build(jwks).callback();

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

function answer(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

async function control(req, res) {
  const path = new URL(req.url, 'http://control').pathname;
  const account = path.match(/^\/test\/accounts\/([^/]+)$/);
  if (req.method === 'POST' && account) {
    const id = decodeURIComponent(account[1]);
    const changes = await readJson(req);
    if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) {
      return answer(res, 400, { error: 'a JSON object of claims' });
    }
    const claims = { ...(accounts[id] ?? {}) };
    for (const [name, value] of Object.entries(changes)) {
      if (value === null) delete claims[name];
      else claims[name] = value;
    }
    accounts[id] = claims;
    return answer(res, 200, claims);
  }
  if (req.method === 'POST' && path === '/test/rotate-key') {
    jwks = signingKeys();
    handle = build(jwks).callback();
    return answer(res, 200, { kid: jwks.keys[0].kid });
  }
  return answer(res, 404, { error: 'unknown test control' });
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/test/')) {
    control(req, res).catch((e) => answer(res, 400, { error: String(e) }));
  } else {
    handle(req, res);
  }
});
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} listening on 127.0.0.1:${port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
