import { test, expect, TestInfo } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { emails, signIn, settle, shot } from './helpers';

// The admin area, with JavaScript (hydrated) and without (plain forms). The two runs share one
// demo database, so each makes its own catalog.
const suffix = (t: TestInfo) => (t.project.name === 'js' ? 'js' : 'plain');

test('an administrator builds a catalog: settings, a resource, an assignment manager', async ({ page }, t) => {
  await signIn(page, emails.grace);
  await page.goto('/admin');
  await settle(page, t);
  await shot(page, t, 'admin');
  await page.getByRole('link', { name: 'All catalogs, or a new one' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Catalogs' })).toBeVisible();
  await settle(page, t);
  await shot(page, t, 'admin-catalogs');

  const name = `Data Platform ${suffix(t)}`;
  await page.locator('#new-name').fill(name);
  await page.locator('#new-description').fill('Warehouses and pipelines');
  await page.getByRole('button', { name: 'Create catalog' }).click();
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
  await expect(page.locator('.notices')).toContainText('created');
  await settle(page, t);

  await page.locator('#resource-name').fill(`Warehouse ${suffix(t)}`);
  await page.locator('#resource-description').fill('Snowflake');
  await page.locator('#resource-roles').fill('Reader, Writer');
  await page.getByRole('button', { name: 'Add resource' }).click();
  await expect(page.locator('#catalog-resources')).toContainText('Reader, Writer');
  await settle(page, t);

  await page.locator('#grant-role input[name="person"]').fill(emails.lucas);
  await page.locator('#grant-role select[name="role"]').selectOption('assignment_manager');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expect(page.locator('#catalog-roles')).toContainText('Lucas Martin');
  await expect(page.locator('#catalog-roles')).toContainText('Assignment manager');
  await settle(page, t);

  // A typo in the email is a message next to the field, and nobody is added.
  await page.locator('#grant-role input[name="person"]').fill('nobody@quartermaster.example');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expect(page.locator('.field-error').first()).toContainText('no active person with that email');
  await expect(page.locator('#catalog-roles tbody tr')).toHaveCount(2);
  await shot(page, t, 'admin-catalog');
});

test('a catalog owner cannot see or open another catalog, by link either', async ({ page }, t) => {
  await signIn(page, emails.grace);
  await page.goto('/admin/catalogs');
  await settle(page, t);
  const engineering = await page.locator('#catalog-list a', { hasText: 'Engineering' }).getAttribute('href');
  expect(engineering).toMatch(/^\/admin\/catalogs\/\d+$/);

  // Sofia owns Sales & Marketing only.
  await signIn(page, emails.sofia);
  await page.goto('/admin/catalogs');
  await settle(page, t);
  await expect(page.locator('#catalog-list')).toContainText('Sales & Marketing');
  await expect(page.locator('#catalog-list')).not.toContainText('Engineering');
  const res = await page.goto(engineering ?? '');
  expect(res?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1, name: 'Not found' })).toBeVisible();
  await expect(page.locator('body')).not.toContainText('Linus Park');
  await shot(page, t, 'admin-catalog-of-another');
});

test('an assignment manager assigns a person directly, finds and removes them, and exports the list', async ({ page }, t) => {
  // Lucas manages Engineering's assignments. Each run assigns its own person.
  const who = t.project.name === 'js' ? { email: emails.tom, name: 'Tom Becker' } : { email: emails.elena, name: 'Elena Petrova' };
  await signIn(page, emails.lucas);
  await page.goto('/admin/catalogs');
  await settle(page, t);
  await page.locator('#catalog-list a', { hasText: 'Engineering' }).click();
  await settle(page, t);
  await page.locator('#catalog-packages a', { hasText: 'Developer Tools' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Developer Tools' })).toBeVisible();
  await settle(page, t);

  await page.locator('#assign-form input[name="person"]').fill(who.email);
  await page.locator('#assign-form input[name="justification"]').fill('Cover for the quarter');
  await page.getByRole('button', { name: 'Assign', exact: true }).click();
  await expect(page.locator('.notices')).toContainText('is being given access');
  const row = page.locator('#package-assignments tr', { hasText: who.name });
  await expect(row).toHaveCount(1);
  await settle(page, t);
  await shot(page, t, 'admin-package-assignments');

  await page.getByRole('searchbox', { name: 'Person' }).fill(who.email.slice(0, 4));
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.locator('#package-assignments tbody tr')).toHaveCount(1);
  await settle(page, t);
  await page.locator('#package-assignments tr', { hasText: who.name }).getByRole('button', { name: 'Remove' }).click();
  await expect(page.locator('.notices')).toContainText('Assignment removed');

  const href = await page.getByRole('link', { name: 'Export as CSV' }).getAttribute('href');
  const csv = await page.request.get((href ?? '').replace(/state=[a-z_]*/, 'state=all'));
  expect(csv.status()).toBe(200);
  expect(await csv.text()).toContain(`${who.name},${who.email},removed`);
});

test('an administrator finds a person and sees what they have, and why', async ({ page }, t) => {
  await signIn(page, emails.grace);
  await page.goto('/admin');
  await settle(page, t);
  await page.getByRole('link', { name: 'People' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'People' })).toBeVisible();
  await settle(page, t);
  await expect(page.locator('#directory')).toContainText('Maya Chen');
  await expect(page.locator('#groups')).toContainText('Finance');
  await shot(page, t, 'admin-people');
  await page.getByRole('searchbox', { name: 'Name or email' }).fill('omar');
  await page.getByRole('button', { name: 'Find' }).click();
  await page.locator('#people-found a', { hasText: 'Omar Haddad' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Omar Haddad' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'What they have, and why' })).toBeVisible();
  await expect(page.locator('#person-access')).toContainText('Developer Tools');
  await expect(page.locator('#person-access')).toContainText('Requested by themselves');
  await shot(page, t, 'admin-person');
});

test('an administrator connects an organization and names its sponsor', async ({ page }, t) => {
  const name = `Contoso ${suffix(t)}`;
  await signIn(page, emails.grace);
  await page.goto('/admin');
  await settle(page, t);
  await page.getByRole('link', { name: 'Connected organizations' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Connected organizations' })).toBeVisible();
  await settle(page, t);
  await page.locator('#org-name').fill(name);
  await page.locator('#org-domain').fill(`contoso-${suffix(t)}.example`);
  await page.getByRole('button', { name: 'Add organization' }).click();
  const panel = page.locator('section.panel', { has: page.getByRole('heading', { level: 2, name }) });
  await expect(panel).toContainText('Configured');
  await settle(page, t);
  await panel.locator('input[name="person"]').fill(emails.elena);
  await panel.getByRole('button', { name: 'Add sponsor' }).click();
  await expect(page.locator('section.panel', { has: page.getByRole('heading', { level: 2, name }) })).toContainText('Elena Petrova');
  await shot(page, t, 'admin-orgs');
});

test('an administrator adds a connected system and tests it; its secret is never shown', async ({ page }, t) => {
  await signIn(page, emails.grace);
  await page.goto('/admin');
  await settle(page, t);
  await page.getByRole('link', { name: 'Connected systems' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Connected systems' })).toBeVisible();
  await settle(page, t);

  const name = `Payroll hooks ${suffix(t)}`;
  await page.locator('#c-kind').selectOption('webhook');
  await page.locator('#c-name').fill(name);
  await page.locator('#c-url').fill('http://127.0.0.1:9/hooks');
  await page.locator('#c-secret').fill('a shared secret, long enough');
  await page.getByRole('button', { name: 'Add system' }).click();
  await expect(page.locator('.notices')).toContainText(`“${name}” added`);
  const row = page.locator('#connectors tr', { hasText: name });
  await expect(row).toContainText('http://127.0.0.1:9/hooks');
  await expect(page.locator('body')).not.toContainText('a shared secret, long enough');
  await settle(page, t);

  // Nobody listens there: the test says so, in the target's words.
  await row.getByRole('button', { name: 'Test' }).click();
  await expect(page.locator('.notices')).toContainText('webhook receiver unreachable');
  await shot(page, t, 'admin-connectors');

  // Its "payroll-app" bound to Engineering as a resource packages can grant.
  await page.goto('/admin/catalogs/1');
  await settle(page, t);
  await page.locator('#bind-system').selectOption({ label: `${name} (webhook)` });
  await page.locator('#bind-external').fill(`payroll-app-${suffix(t)}`);
  await page.locator('#bind-name').fill(`Payroll ${suffix(t)}`);
  await page.getByRole('button', { name: 'Bind group' }).click();
  await expect(page.locator('.notices')).toContainText('bound');
  await expect(page.locator('#catalog-resources')).toContainText(`Payroll ${suffix(t)}`);
  await expect(page.locator('#catalog-resources tr', { hasText: `Payroll ${suffix(t)}` })).toContainText(name);

  // The system's own page: its queue and failures, in plain words, and no accessibility faults.
  await page.goto('/admin/connectors');
  await settle(page, t);
  await page.getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
  await settle(page, t);
  await expect(page.locator('#queue')).toContainText('Nothing is waiting.');
  await expect(page.locator('#failures')).toContainText('Nothing has failed.');
  await expect(page.locator('#import-groups')).toHaveCount(0); // a webhook has no groups to import
  if (t.project.name === 'js') {
    // axe runs in the page (the markup is the same without JavaScript).
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
    const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(serious.map((v) => `${v.id}: ${v.help}`)).toEqual([]);
  }
  await shot(page, t, 'admin-connector');
});

test('a person makes an API token, sees it once, uses it and revokes it', async ({ page, request }, t) => {
  await signIn(page, emails.linus);
  await page.getByRole('link', { name: 'API tokens' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'API tokens' })).toBeVisible();
  await settle(page, t);
  const name = `deploy script ${suffix(t)}`;
  await page.locator('#token-name').fill(name);
  // Linus owns a catalog: the admin scope is his to give; metrics and SCIM are not.
  await expect(page.locator('input[name="scopes[metrics]"]')).toHaveCount(0);
  await page.locator('input[name="scopes[admin]"]').check();
  await page.getByRole('button', { name: 'Make token' }).click();
  const notice = page.locator('.notices');
  await expect(notice).toContainText('not shown again');
  // With JavaScript the secret is in the answer's notice; without, on the page it goes back to
  // (never in the session store).
  const shown = t.project.name === 'js' ? notice : page.locator('#new-secret');
  const secret = ((await shown.textContent()) ?? '').match(/qm_[A-Za-z0-9_-]+/)?.[0] ?? '';
  expect(secret).not.toBe('');
  const row = page.locator('#tokens tr', { hasText: name });
  await expect(row).toContainText('admin');
  await expect(row).toContainText('Active');
  await shot(page, t, 'api-tokens');

  const me = await request.get('/api/v1/me', { headers: { authorization: `Bearer ${secret}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).email).toBe(emails.linus);

  await settle(page, t);
  await row.getByRole('button', { name: 'Revoke' }).click();
  await expect(page.locator('.notices')).toContainText('Token revoked');
  await expect(page.locator('#tokens tr', { hasText: name })).toContainText('Revoked');
  const after = await request.get('/api/v1/me', { headers: { authorization: `Bearer ${secret}` } });
  expect(after.status()).toBe(401);
});

test('an administrator makes a service account and a token for it, seen once, used and revoked', async ({ page, request }, t) => {
  await signIn(page, emails.grace);
  await page.goto('/admin');
  await page.getByRole('link', { name: 'Service accounts' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Service accounts' })).toBeVisible();
  await settle(page, t);
  const name = `Sync ${suffix(t)}`;
  await page.locator('#account-name').fill(name);
  await page.locator('#account-purpose').fill('reads who has what');
  await page.getByRole('button', { name: 'Make service account' }).click();
  await expect(page.locator('.notices')).toContainText('made');
  const account = page.locator('section', { has: page.getByRole('heading', { level: 2, name }) });
  await expect(account).toContainText('@service-accounts.invalid');
  await expect(account).toContainText('No token yet');

  await settle(page, t);
  await account.getByText('New token').click();
  await account.getByLabel('Name').fill('nightly');
  await account.getByRole('button', { name: 'Make token' }).click();
  const notice = page.locator('.notices');
  await expect(notice).toContainText('not shown again');
  const shown = t.project.name === 'js' ? notice : page.locator('#new-secret');
  const secret = ((await shown.textContent()) ?? '').match(/qm_[A-Za-z0-9_-]+/)?.[0] ?? '';
  expect(secret).not.toBe('');
  const row = account.locator('tr', { hasText: 'nightly' });
  await expect(row).toContainText('Active');
  await shot(page, t, 'service-accounts');

  const me = await request.get('/api/v1/me', { headers: { authorization: `Bearer ${secret}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).name).toBe(name);

  await settle(page, t);
  await row.getByRole('button', { name: 'Revoke' }).click();
  await expect(page.locator('.notices')).toContainText('Token revoked');
  await expect(account.locator('tr', { hasText: 'nightly' })).toContainText('Revoked');
  const after = await request.get('/api/v1/me', { headers: { authorization: `Bearer ${secret}` } });
  expect(after.status()).toBe(401);
});
