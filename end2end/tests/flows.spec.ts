import { test, expect, Page, Browser, TestInfo } from '@playwright/test';
import { emails, signIn, settle, shot } from './helpers';

// Each flow runs twice: with JavaScript (hydrated) and without (plain forms). The two runs
// share one demo database, so each uses its own people where a flow leaves lasting state.
const cast = {
  js: { twoStage: 'maya', stage1: 'linus', deny: 'priya', denier: 'sofia', cancel: 'lucas', race: 'omar' },
  'no-js': { twoStage: 'linus', stage1: 'grace', deny: 'elena', denier: 'grace', cancel: 'hana', race: 'kai' },
} as const;
type Who = keyof typeof emails;
const names: Record<string, string> = {
  maya: 'Maya Chen', linus: 'Linus Park', priya: 'Priya Nair', elena: 'Elena Petrova', lucas: 'Lucas Martin',
  hana: 'Hana Sato', omar: 'Omar Haddad', kai: 'Kai Müller', grace: 'Grace Hopper', sofia: 'Sofia Rossi',
};
const people = (t: TestInfo) => cast[t.project.name as keyof typeof cast];

async function as(page: Page, who: Who, t: TestInfo) {
  await signIn(page, emails[who]);
  await settle(page, t);
}

async function requestPackage(page: Page, t: TestInfo, pkg: string, opts: { justification?: string; service?: string } = {}) {
  await page.goto('/');
  await settle(page, t);
  await page.locator('#packages .card', { hasText: pkg }).getByRole('link', { name: pkg }).click();
  await expect(page.getByRole('heading', { level: 1, name: pkg })).toBeVisible();
  await settle(page, t);
  if (opts.service) await page.locator('#q_service').selectOption(opts.service);
  await page.locator('#justification').fill(opts.justification ?? 'Needed for my work');
  await page.getByRole('button', { name: 'Submit request' }).click();
}

async function decide(page: Page, t: TestInfo, pkg: string, target: string, decision: 'Approve' | 'Deny', reason: string) {
  await page.goto('/approvals');
  await settle(page, t);
  const card = page.locator('li.approval', { hasText: pkg }).filter({ hasText: target });
  await expect(card).toHaveCount(1);
  await card.locator('textarea').fill(reason);
  await card.getByRole('button', { name: decision, exact: true }).click();
}

async function notice(page: Page) {
  return page.locator('.notices .notice').first();
}

test('a two-stage request is approved by the manager, then Security, and delivered', async ({ page }, t) => {
  const p = people(t);
  await as(page, p.twoStage, t);
  await requestPackage(page, t, 'Production Access', { service: 'Web storefront', justification: 'Joining the on-call rotation' });
  await expect(await notice(page)).toContainText('waiting for approval');
  await shot(page, t, 'package-page');

  await as(page, p.stage1, t);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Approvals/ })).toContainText(/\d/);
  await page.goto('/approvals');
  await shot(page, t, 'approvals');
  await decide(page, t, 'Production Access', names[p.twoStage], 'Approve', 'Rotation confirmed');
  await expect(await notice(page)).toContainText('stage 2 is next');

  await as(page, 'hana', t);
  await decide(page, t, 'Production Access', names[p.twoStage], 'Approve', 'Security reviewed');
  await expect(await notice(page)).toContainText('Approved');

  await as(page, p.twoStage, t);
  // Delivery runs in the background worker: give it a moment.
  await expect(async () => {
    await page.goto('/');
    await expect(page.locator('#my-access tr', { hasText: 'Production Access' })).toContainText('Active');
  }).toPass({ timeout: 20_000 });
  const timeline = page.locator('li.request', { hasText: 'Production Access' }).first();
  await expect(timeline).toContainText('Rotation confirmed');
  await expect(timeline).toContainText('Production Servers · Operator: delivered');
  await shot(page, t, 'my-access-delivered');

  await as(page, 'grace', t);
  await page.goto('/admin');
  await expect(page.locator('#builtin-groups tr', { hasText: 'Production Servers' })).toContainText(names[p.twoStage]);
  await shot(page, t, 'admin');
});

test('a denial and its reason reach the requester', async ({ page }, t) => {
  const p = people(t);
  await as(page, p.deny, t);
  await requestPackage(page, t, 'Sales CRM', { justification: 'Helping with renewals' });
  await expect(await notice(page)).toContainText('waiting for approval');
  await as(page, p.denier, t);
  await decide(page, t, 'Sales CRM', names[p.deny], 'Deny', 'Use the shared renewals dashboard instead');
  await expect(await notice(page)).toContainText('Denied');
  await as(page, p.deny, t);
  const item = page.locator('li.request', { hasText: 'Sales CRM' }).first();
  await expect(item).toContainText('Denied');
  await expect(item).toContainText('Use the shared renewals dashboard instead');
});

test('a pending request can be canceled by its requester', async ({ page }, t) => {
  const p = people(t);
  await as(page, p.cancel, t);
  await requestPackage(page, t, 'Sales CRM');
  await expect(await notice(page)).toContainText('waiting for approval');
  await page.goto('/');
  await settle(page, t);
  const item = page.locator('li.request', { hasText: 'Sales CRM' }).first();
  await expect(item).toContainText('Pending approval');
  await item.getByRole('button', { name: 'Cancel request' }).click();
  await expect(await notice(page)).toContainText('canceled');
  await expect(page.locator('li.request', { hasText: 'Sales CRM' }).first()).toContainText('Canceled');
});

test('the audit log filtered to one request shows its whole story, and the CSV export holds the same rows', async ({ page }, t) => {
  const p = people(t);
  await as(page, p.cancel, t);
  await requestPackage(page, t, 'Sales CRM', { justification: 'For the audit trail' });
  await expect(await notice(page)).toContainText('waiting for approval');
  await page.goto('/');
  await settle(page, t);
  const item = page.locator('li.request', { hasText: 'Sales CRM' }).first();
  const id = (await item.getAttribute('id'))?.replace('request-', '') ?? '';
  expect(id).toMatch(/^\d+$/);
  await item.getByRole('button', { name: 'Cancel request' }).click();
  await expect(await notice(page)).toContainText('canceled');

  await as(page, 'grace', t);
  await page.goto('/admin');
  await settle(page, t);
  await page.getByRole('link', { name: 'Audit log' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Audit log' })).toBeVisible();
  await settle(page, t);
  await page.locator('#object_type').fill('request');
  await page.locator('#object_id').fill(id);
  await page.getByRole('button', { name: 'Filter' }).click();
  const rows = page.locator('#audit-log tbody tr');
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(0)).toContainText('request.canceled');
  await expect(rows.nth(1)).toContainText('request.submitted');
  await expect(rows.nth(0)).toContainText(names[p.cancel]);
  await shot(page, t, 'audit-log');
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.id.replace('event-', '')));
  const href = await page.getByRole('link', { name: 'Export as CSV' }).getAttribute('href');
  const csv = await page.request.get(href ?? '');
  expect(csv.status()).toBe(200);
  const lines = (await csv.text()).split('\r\n').filter((l) => l.length > 0);
  expect(lines[0]).toContain('id,at,actor_id,actor,action');
  expect(lines.slice(1).map((l) => l.split(',')[0])).toEqual(shown);
});

test('an approver is not offered their own request, and a forged decision is refused', async ({ page, baseURL }, t) => {
  // Grace has no manager: her Sales CRM request falls back to the catalog owner, Sofia.
  await as(page, 'grace', t);
  await requestPackage(page, t, 'Sales CRM', { justification: 'Board demo' });
  await expect(await notice(page)).toContainText('waiting for approval');
  await page.goto('/');
  const mine = page.locator('li.request', { hasText: 'Sales CRM' }).filter({ hasText: 'Pending approval' }).first();
  const id = (await mine.getAttribute('id'))!.replace('request-', '');
  await page.goto('/approvals');
  await expect(page.locator('li.approval', { hasText: 'Sales CRM' }).filter({ hasText: 'Grace Hopper' })).toHaveCount(0);
  const forged = await page.request.post('/api/decide', {
    form: { request_id: id, decision: 'approve', justification: 'me' },
    headers: { Origin: baseURL!, Accept: 'application/json' },
  });
  expect(forged.status()).toBe(403);
  await page.goto('/');
  await expect(page.locator(`#request-${id}`)).toContainText('Pending approval');
  // Tidy up so the other project can ask again.
  await page.locator(`#request-${id}`).getByRole('button', { name: 'Cancel request' }).click();
  await expect(page.locator(`#request-${id}`)).toContainText('Canceled');
});

async function approverPage(browser: Browser, t: TestInfo, who: Who) {
  const context = await browser.newContext({ javaScriptEnabled: t.project.name === 'js' });
  const page = await context.newPage();
  await as(page, who, t);
  return page;
}

test('two approvers deciding at once: one wins, the other is told who did', async ({ browser, page }, t) => {
  const p = people(t);
  if (p.race === 'kai') {
    await as(page, 'kai', t);
    await requestPackage(page, t, 'Production Access', { service: 'Data platform', justification: 'Pipeline migration' });
    await expect(await notice(page)).toContainText('waiting for approval');
  }
  // Stage 1: the requester's manager.
  await as(page, 'linus', t);
  await decide(page, t, 'Production Access', names[p.race], 'Approve', 'ok');
  await expect(await notice(page)).toContainText('stage 2 is next');

  // Stage 2 belongs to Security: Hana and Grace both open it and approve at once.
  const hana = await approverPage(browser, t, 'hana');
  const grace = await approverPage(browser, t, 'grace');
  for (const ap of [hana, grace]) {
    await ap.goto('/approvals');
    await settle(ap, t);
    await ap.locator('li.approval', { hasText: 'Production Access' }).filter({ hasText: names[p.race] }).locator('textarea').fill('Looks right');
  }
  const button = (ap: Page) =>
    ap.locator('li.approval', { hasText: 'Production Access' }).filter({ hasText: names[p.race] }).getByRole('button', { name: 'Approve', exact: true });
  await Promise.all([button(hana).click(), button(grace).click()]);
  const texts = await Promise.all(
    [hana, grace].map(async (ap) => {
      const n = ap.locator('.notices .notice').first();
      await expect(n).toBeVisible();
      return (await n.textContent()) ?? '';
    }),
  );
  const lost = texts.filter((x) => x.includes('Already decided'));
  const won = texts.filter((x) => x.startsWith('Approved'));
  expect(won, texts.join(' | ')).toHaveLength(1);
  expect(lost, texts.join(' | ')).toHaveLength(1);
  expect(lost[0]).toMatch(/(Hana Sato|Grace Hopper) approved this request first/);
  await hana.context().close();
  await grace.context().close();
});

test('a person turns the optional emails off and on in their settings', async ({ page }, t) => {
  // Each run its own person: the choice is kept on the person.
  const who: Who = t.project.name === 'js' ? 'tom' : 'jamal';
  await as(page, who, t);
  // Their name in the menu leads to their settings (the menu folds away on narrow screens).
  await page.goto('/settings');
  await settle(page, t);
  await expect(page.getByRole('heading', { name: 'Your settings' })).toBeVisible();
  const box = page.locator('#email-settings input[name="optional"]');
  await expect(box).toBeChecked();
  await box.uncheck();
  await page.getByRole('button', { name: 'Save email settings' }).click();
  await expect(await notice(page)).toContainText('you are emailed only what needs you');
  await page.reload();
  await settle(page, t);
  await expect(page.locator('#email-settings input[name="optional"]')).not.toBeChecked();
  await page.locator('#email-settings input[name="optional"]').check();
  await page.getByRole('button', { name: 'Save email settings' }).click();
  await expect(await notice(page)).toContainText('you are also emailed');
  await page.reload();
  await expect(page.locator('#email-settings input[name="optional"]')).toBeChecked();

  // The time zone of the times in their emails: chosen, kept, and back to automatic.
  await settle(page, t);
  const zone = page.locator('#email-settings select[name="time_zone"]');
  await expect(zone).toHaveValue('automatic');
  await zone.selectOption('Europe/Paris');
  await page.getByRole('button', { name: 'Save email settings' }).click();
  await expect(await notice(page)).toContainText('Times in your emails are in Europe/Paris');
  await page.reload();
  await settle(page, t);
  await expect(zone).toHaveValue('Europe/Paris');
  if (t.project.name === 'js') {
    // The hydrated page offers the browser's own zone.
    const hint = page.locator('#email-settings').getByText(/This browser is set to/);
    await expect(hint).toBeVisible();
    const browserZone = ((await hint.textContent()) ?? '').match(/set to (\S+)\./)?.[1] ?? '';
    await page.locator('#email-settings').getByRole('button', { name: 'Choose it' }).click();
    await expect(zone).toHaveValue(browserZone);
  }
  await zone.selectOption('automatic');
  await page.getByRole('button', { name: 'Save email settings' }).click();
  await expect(await notice(page)).toContainText('Times in your emails are in UTC');
});

test('a reviewer answers an access review, and its owners follow its progress', async ({ page }, t) => {
  // The demo's running review of Developer Tools: Linus reviews Maya's and Omar's, Grace
  // reviews Linus's. Each run answers a different item.
  const [who, holder, answer]: [Who, string, 'Keep' | 'Remove'] =
    t.project.name === 'js' ? ['linus', 'Omar Haddad', 'Remove'] : ['grace', 'Linus Park', 'Keep'];
  await as(page, who, t);
  await expect(page.locator('#my-reviews')).toContainText('waits for your review');
  const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Reviews/ });
  await expect(link).toContainText(/\d/);
  await link.click();
  await expect(page.getByRole('heading', { level: 1, name: 'My reviews' })).toBeVisible();
  await settle(page, t);
  const card = page.locator('li.approval', { hasText: 'Developer Tools' }).filter({ hasText: holder });
  await expect(card).toHaveCount(1);
  await expect(card).toContainText('Recommended: keep');
  await card.locator('textarea').fill('Checked with the team');
  await card.getByRole('button', { name: answer, exact: true }).click();
  await expect(await notice(page)).toContainText(`Answered “${answer.toLowerCase()}”`);
  await expect(page.locator('li.approval', { hasText: holder })).toContainText(`answered by ${names[who]}`);
  await shot(page, t, 'my-reviews');

  // Lucas (Engineering's assignment manager) sees the answers counted.
  await as(page, 'lucas', t);
  await page.goto('/admin/reviews');
  await settle(page, t);
  const row = page.locator('#reviews tr', { hasText: 'Developer Tools' });
  await expect(row).toContainText(/[12] of 3/);
  await expect(row.getByRole('button', { name: 'End now' })).toBeVisible();
});
