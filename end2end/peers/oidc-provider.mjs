// A real OpenID Connect provider for the tests: panva's certified `oidc-provider`, with a few
// test accounts. Started by the test harness on 127.0.0.1; the issuer is named `localhost` so
// its cookies never mix with the portal's (which is served on 127.0.0.1).
//
//   OIDC_PORT=4010 OIDC_REDIRECT_URIS=http://127.0.0.1:3211/auth/callback \
//   OIDC_POST_LOGOUT_URIS=http://127.0.0.1:3211/signin node peers/oidc-provider.mjs
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT ?? 4010);
const issuer = process.env.OIDC_ISSUER ?? `http://localhost:${port}`;
const list = (v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

// Test accounts: the login name is the account id (any password works in dev interactions).
const accounts = {
  alice: { email: 'alice@example.test', name: 'Alice Admin', department: 'IT', job_title: 'Platform lead', groups: ['qm-admins', 'Engineering'] },
  bob: { email: 'bob@example.test', name: 'Bob Builder', department: 'Engineering', job_title: 'Engineer', groups: ['Engineering'], manager_email: 'alice@example.test' },
  carol: { email: 'carol@example.test', name: 'Carol Clerk', department: 'Finance', job_title: 'Accountant', groups: ['Finance'] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID ?? 'quartermaster',
      client_secret: process.env.OIDC_CLIENT_SECRET ?? 'test-client-secret',
      redirect_uris: list(process.env.OIDC_REDIRECT_URIS),
      post_logout_redirect_uris: list(process.env.OIDC_POST_LOGOUT_URIS),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
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
    profile: ['name', 'department', 'job_title', 'manager_email'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: ['quartermaster-test-cookie-key'] },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} listening on 127.0.0.1:${port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
