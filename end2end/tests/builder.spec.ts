import { test, expect, Page, TestInfo } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { emails, signIn, settle, shot } from './helpers';

// The access package builder, with JavaScript (hydrated) and without (plain forms): Engineering's
// owner builds a package step by step (two resource roles, two approval stages, 30 days, one
// required question), a reload in the middle loses nothing, and a member requests it: approved
// through both stages and delivered. The two runs share one demo database, so each builds its
// own package and has its own requester.
const run = (t: TestInfo) => (t.project.name === 'js' ? { tag: 'js', requester: 'tom' as const, name: 'Tom Becker' } : { tag: 'plain', requester: 'kai' as const, name: 'Kai Müller' });

/** Every step is checked by axe-core (with JavaScript on; the markup is the same without). */
async function accessible(page: Page, t: TestInfo) {
  if (t.project.name !== 'js') return;
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)).toEqual([]);
}

async function next(page: Page, t: TestInfo, step: string) {
  await page.locator('#wizard-next').click();
  await expect(page).toHaveURL(new RegExp(`/admin/drafts/\\d+/${step}$`));
  await settle(page, t);
  await accessible(page, t);
}

test('an administrator builds a package in the builder; it is requested, approved in two stages and delivered', async ({ page }, t) => {
  const r = run(t);
  const pkg = `Cloud Lab ${r.tag}`;
  await signIn(page, emails.linus);
  await page.goto('/admin/catalogs');
  await settle(page, t);
  await page.locator('#catalog-list a', { hasText: 'Engineering' }).click();
  await settle(page, t);
  await page.getByRole('button', { name: 'New access package' }).click();
  await expect(page).toHaveURL(/\/admin\/drafts\/\d+\/basics$/);
  await settle(page, t);
  const draft = page.url().replace(/\/basics$/, '');
  await accessible(page, t);

  // Basics. Next with no name: the message is next to the field, and the step stays.
  await page.locator('#f-policy_name').fill('Engineers');
  await page.locator('#wizard-next').click();
  await expect(page.locator('.field-error').first()).toContainText('the package needs a name');
  await expect(page).toHaveURL(/\/basics(\?.*)?$/);
  await settle(page, t);
  await page.locator('#f-name').fill(pkg);
  await page.locator('#f-description').fill('GPU machines for experiments');
  await page.locator('#f-policy_name').fill('Engineers');
  await shot(page, t, 'wizard-basics');
  await next(page, t, 'roles');

  const roles = page.locator('input[name^="f[role_"]');
  expect(await roles.count()).toBeGreaterThanOrEqual(2);
  await roles.nth(0).check();
  await roles.nth(1).check();
  await shot(page, t, 'wizard-roles');
  await next(page, t, 'requestors');

  await page.locator('input[name="f[scope]"][value="all_members"]').check();
  await page.locator('input[name="f[justification_required]"]').check();
  await shot(page, t, 'wizard-requestors');
  await next(page, t, 'approval');

  await page.locator('#f-stages').selectOption('2');
  await page.locator('#f-s1_approver').selectOption('people');
  if (t.project.name === 'js') {
    // With JavaScript, people are found by name as one types and added with Enter.
    const find = page.locator('input[list="f-s1_people-found"]');
    await expect(find).toBeVisible();
    await find.fill('Hana');
    await expect(page.locator(`#f-s1_people-found option[value="${emails.hana}"]`)).toHaveCount(1);
    await find.fill(emails.hana);
    await find.press('Enter');
    await expect(page).toHaveURL(/\/approval$/);
    await expect(find).toHaveValue('');
  } else {
    await expect(page.locator('input[list="f-s1_people-found"]')).toBeHidden();
    await page.locator('#f-s1_people').fill(emails.hana);
  }
  await expect(page.locator('#f-s1_people')).toHaveValue(emails.hana);
  await page.locator('#f-s1_timeout').fill('7');
  await page.locator('#f-s2_approver').selectOption('catalog_owners');
  await page.locator('#f-s2_timeout').fill('3');
  await shot(page, t, 'wizard-approval');
  await next(page, t, 'lifecycle');

  // A reload in the middle loses nothing: back on the approval step, everything is as entered.
  await page.reload();
  await settle(page, t);
  await expect(page).toHaveURL(/\/lifecycle$/);
  await page.goto(`${draft}/approval`);
  await settle(page, t);
  await expect(page.locator('#f-stages')).toHaveValue('2');
  await expect(page.locator('#f-s1_people')).toHaveValue(emails.hana);
  await expect(page.locator('#f-s2_approver')).toHaveValue('catalog_owners');
  await page.goto(`${draft}/basics`);
  await expect(page.locator('#f-name')).toHaveValue(pkg);
  await page.goto(`${draft}/lifecycle`);
  await settle(page, t);

  await page.locator('input[name="f[expires]"][value="after_days"]').check();
  await page.locator('#f-exp_days').fill('30');
  await shot(page, t, 'wizard-lifecycle');
  await next(page, t, 'questions');

  await page.locator('#f-q1_prompt').fill('Which project?');
  await page.locator('input[name="f[q1_required]"]').check();
  await shot(page, t, 'wizard-questions');
  await next(page, t, 'review');

  const summary = page.locator('#wizard-summary');
  await expect(summary).toContainText(pkg);
  await expect(summary).toContainText('Hana Sato');
  await expect(summary).toContainText("the catalog's owners");
  await expect(summary).toContainText('ends after 30 days');
  await expect(summary).toContainText('Which project? (text, required)');
  await shot(page, t, 'wizard-review');
  await page.getByRole('button', { name: 'Create access package' }).click();
  await expect(page.getByRole('heading', { level: 1, name: pkg })).toBeVisible();
  await expect(page.locator('.notices')).toContainText('Access package created');
  await settle(page, t);
  await shot(page, t, 'admin-package-built');

  // A member requests it, answering the question.
  await signIn(page, emails[r.requester]);
  await page.goto('/');
  await settle(page, t);
  await page.locator('#packages .card', { hasText: pkg }).getByRole('link', { name: pkg }).click();
  await expect(page.getByRole('heading', { level: 1, name: pkg })).toBeVisible();
  await settle(page, t);
  await page.locator('#q_q1').fill('Forecasting');
  await page.locator('#justification').fill('Training models');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await expect(page.locator('.notices .notice').first()).toContainText('waiting for approval');

  // Stage 1: Hana; stage 2: the catalog's owner.
  for (const [approver, after] of [['hana', 'stage 2 is next'], ['linus', 'Approved']] as const) {
    await signIn(page, emails[approver]);
    await page.goto('/approvals');
    await settle(page, t);
    const card = page.locator('li.approval', { hasText: pkg }).filter({ hasText: r.name });
    await expect(card).toHaveCount(1);
    await card.locator('textarea').fill('ok');
    await card.getByRole('button', { name: 'Approve', exact: true }).click();
    await expect(page.locator('.notices .notice').first()).toContainText(after);
  }

  await signIn(page, emails[r.requester]);
  await expect(async () => {
    await page.goto('/');
    await expect(page.locator('#my-access tr', { hasText: pkg })).toContainText('Active');
  }).toPass({ timeout: 20_000 });
});
