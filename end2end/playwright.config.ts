import { defineConfig } from '@playwright/test';

// The portal under test: the debug binary scripts/build.sh made, on a fresh SQLite file with
// the demo organisation. Debian's Chromium drives it (no browser download).
const port = Number(process.env.E2E_PORT ?? 3210);
const baseURL = `http://127.0.0.1:${port}`;
// A second portal that signs people in through a real OpenID provider (npm oidc-provider).
const oidcPortalPort = Number(process.env.E2E_OIDC_PORTAL_PORT ?? 3211);
const providerPort = Number(process.env.E2E_OIDC_PROVIDER_PORT ?? 4010);
export const oidcPortal = `http://127.0.0.1:${oidcPortalPort}`;

export default defineConfig({
  testDir: './tests',
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 60_000,
  reporter: [['list'], ['html', { open: 'never' }]],
  outputDir: 'test-results',
  use: {
    baseURL,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    },
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
  },
  projects: [
    { name: 'js', use: { javaScriptEnabled: true } },
    { name: 'no-js', use: { javaScriptEnabled: false } },
  ],
  webServer: [
    {
      // The demo organisation, and a hundred new hires for the bulk assignment test (in the
      // demo's domain: demo sign-in refuses a database holding anyone else).
      command: `rm -rf ../target/e2e && mkdir -p ../target/e2e && ../target/debug/quartermaster seed-demo --database-url sqlite://../target/e2e/qm.db && ../target/debug/quartermaster import-users fixtures/new-hires.csv --apply --database-url sqlite://../target/e2e/qm.db && QM_SECRET_KEY=${'7e'.repeat(32)} ../target/debug/quartermaster serve --demo --addr 127.0.0.1:${port} --database-url sqlite://../target/e2e/qm.db --site-root ../target/site`,
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      command: `node peers/oidc-provider.mjs`,
      env: {
        OIDC_PORT: String(providerPort),
        OIDC_REDIRECT_URIS: `${oidcPortal}/auth/callback`,
        OIDC_POST_LOGOUT_URIS: `${oidcPortal}/signin`,
      },
      url: `http://127.0.0.1:${providerPort}/.well-known/openid-configuration`,
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      command: `rm -rf ../target/e2e-oidc && mkdir -p ../target/e2e-oidc && ../target/debug/quartermaster seed-demo && ../target/debug/quartermaster serve --addr 127.0.0.1:${oidcPortalPort} --site-root ../target/site`,
      env: {
        QM_DATABASE_URL: 'sqlite://../target/e2e-oidc/qm.db',
        QM_OIDC_ISSUER: `http://localhost:${providerPort}`,
        QM_OIDC_CLIENT_ID: 'quartermaster',
        QM_OIDC_CLIENT_SECRET: 'test-client-secret',
        QM_OIDC_SCOPES: 'openid email profile groups',
        QM_OIDC_DISPLAY_NAME: 'Example IdP',
        QM_ADMIN_GROUP: 'qm-admins',
      },
      url: `${oidcPortal}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
});
