import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { emails, signIn, settle, shot } from './helpers';

// Accessibility: every page, checked by axe-core (labels, roles, contrast, landmarks…).
const pages: Array<[string, string, keyof typeof emails]> = [
  ['sign-in', '/signin', 'linus'],
  ['my-access', '/', 'linus'],
  ['package', '/packages/2', 'linus'],
  ['approvals', '/approvals', 'linus'],
  ['my-reviews', '/reviews', 'grace'],
  ['admin-reviews', '/admin/reviews', 'lucas'],
  ['admin', '/admin', 'linus'],
  ['audit-log', '/admin/audit', 'grace'],
  ['admin-catalogs', '/admin/catalogs', 'grace'],
  ['admin-catalog', '/admin/catalogs/1', 'linus'],
  ['admin-package', '/admin/packages/1', 'lucas'],
  ['admin-person', '/admin/people/4', 'grace'],
  ['admin-people', '/admin/people', 'grace'],
  ['admin-orgs', '/admin/orgs', 'grace'],
  ['admin-service-accounts', '/admin/service-accounts', 'grace'],
  ['admin-connectors', '/admin/connectors', 'grace'],
  ['api-tokens', '/tokens', 'grace'],
  ['settings', '/settings', 'maya'],
];

for (const [name, path, who] of pages) {
  test(`${name} has no serious accessibility problems`, async ({ page }, t) => {
    test.skip(t.project.name !== 'js', 'axe runs in the page; the markup is the same without JavaScript');
    if (path !== '/signin') await signIn(page, emails[who]);
    await page.goto(path);
    await settle(page, t);
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
    const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)).toEqual([]);
  });
}

test('a phone-sized screen works', async ({ page }, t) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page, emails.maya);
  await settle(page, t);
  const nav = page.getByRole('navigation', { name: 'Main' });
  if (t.project.name === 'js') {
    // Hydrated: the menu folds behind its button.
    await expect(nav).toBeHidden();
    await page.getByRole('button', { name: 'Menu' }).click();
    await expect(nav).toBeVisible();
  } else {
    // Without JavaScript the menu stays open.
    await expect(nav).toBeVisible();
  }
  await expect(nav.getByRole('link', { name: 'My Access' })).toBeVisible();
  const card = page.locator('#packages .card').first();
  await expect(card).toBeVisible();
  const box = await card.boundingBox();
  expect(box!.width).toBeLessThanOrEqual(390);
  // Nothing wider than the screen.
  for (const region of ['header', 'main', 'footer']) {
    const b = await page.locator(region).first().boundingBox();
    expect(b!.x + b!.width, region).toBeLessThanOrEqual(390.5);
  }
  await shot(page, t, 'phone-my-access');
});
