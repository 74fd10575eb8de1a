import { test, expect } from '@playwright/test';
import { emails, signIn, signOut, settle, shot } from './helpers';

test('pages are rendered on the server with their data', async ({ page }, testInfo) => {
  await signIn(page, emails.maya);
  // Whatever the browser does with scripts, the first response already holds the data.
  const html = await (await page.request.get('/')).text();
  expect(html).toContain('Developer Tools');
  expect(html).toContain('Maya Chen');
  await expect(page.locator('#packages .card').first()).toBeVisible();
  await shot(page, testInfo, 'my-access');
});

test('the page hydrates and a click does what only hydration can', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'js', 'needs JavaScript');
  await signIn(page, emails.maya);
  await settle(page, testInfo);
  const card = page.locator('#packages .card', { hasText: 'Developer Tools' });
  await expect(card.locator('.resource-list')).toHaveCount(0);
  await card.getByRole('button', { name: /Show 2 resources/ }).click();
  await expect(card.locator('.resource-list')).toContainText('GitHub Developers');
  await expect(card.getByRole('button', { name: 'Hide resources' })).toHaveAttribute('aria-expanded', 'true');
});

test('navigation follows the role, and sign-out ends the session', async ({ page }, testInfo) => {
  await signIn(page, emails.grace);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin', exact: true })).toBeVisible();
  await signOut(page);
  await signIn(page, emails.tom);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin', exact: true })).toHaveCount(0);
  await page.goto('/admin');
  await expect(page.getByRole('heading', { name: "You don't have access to this" })).toBeVisible();
  await signOut(page);
  await page.goto('/approvals');
  await expect(page).toHaveURL(/\/signin\?return_to=%2Fapprovals$/);
  // The landing page offers sign-in in place.
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Sign in to Quartermaster' })).toBeVisible();
  await shot(page, testInfo, 'signin');
});

test('an unknown address gets a page a person understands', async ({ page }) => {
  const res = await page.goto('/no/such/page');
  expect(res?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
});

test('a person loads only the main part of the client; an admin page fetches its own part and hydrates', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'js', 'needs JavaScript');
  const wasm: string[] = [];
  page.on('request', (r) => {
    const name = new URL(r.url()).pathname.split('/').pop()!;
    if (name.endsWith('.wasm')) wasm.push(name);
  });
  await signIn(page, emails.maya);
  await settle(page, testInfo);
  await page.goto('/approvals');
  await settle(page, testInfo);
  expect(wasm.filter((n) => n !== 'quartermaster_bg.wasm'), 'My Access and Approvals need no lazy part').toEqual([]);
  await signOut(page);

  await signIn(page, emails.grace);
  await settle(page, testInfo);
  wasm.length = 0;
  await page.goto('/admin/audit');
  await settle(page, testInfo);
  expect(wasm.filter((n) => n.startsWith('split___audit_log_view')), 'the audit log page\'s own module').toHaveLength(1);
  console.log(`wasm modules for /admin/audit: ${wasm.length}`);
  // Hydrated: the router follows a link without loading a document, fetching that page's part.
  let documents = 0;
  page.on('request', (r) => { if (r.resourceType() === 'document') documents += 1; });
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin', exact: true }).click();
  await expect(page).toHaveURL(/\/admin$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Admin', exact: true })).toBeVisible();
  expect(wasm.filter((n) => n.startsWith('split___admin_view'))).toHaveLength(1);
  expect(documents, 'a client-side navigation').toBe(0);
});
