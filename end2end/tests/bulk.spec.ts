import { test, expect } from '@playwright/test';
import { emails, signIn, settle, shot } from './helpers';

// Bulk assignment from a CSV file, with JavaScript and without (the upload is a plain form
// either way): 50 rows, 2 of them bad, assign 48 and name the 2 with why. The new hires come
// from end2end/fixtures/new-hires.csv (imported before the server starts); each run assigns
// them to a package of its own.
test('a bulk CSV of 50 people with 2 bad rows assigns 48 and names the 2', async ({ page }, t) => {
  const first = 1;
  const pkg = t.project.name === 'js' ? 'Developer Tools' : 'Production Access';
  const id = (n: number) => `new.hire${String(n).padStart(3, '0')}@quartermaster.example`;
  const lines = ['email,end'];
  for (let n = first; n < first + 48; n++) lines.push(id(n));
  lines.splice(10, 0, `ghost.${t.project.name}@quartermaster.example`);
  lines.push(`${id(first + 48)},31/12/2027`);

  await signIn(page, emails.lucas);
  await page.goto('/admin/catalogs');
  await settle(page, t);
  await page.locator('#catalog-list a', { hasText: 'Engineering' }).click();
  await settle(page, t);
  await page.locator('#catalog-packages a', { hasText: pkg }).click();
  await expect(page.getByRole('heading', { level: 1, name: pkg })).toBeVisible();
  await settle(page, t);
  await page.locator('#bulk-file').setInputFiles({ name: 'new-hires.csv', mimeType: 'text/csv', buffer: Buffer.from(lines.join('\n')) });
  await page.locator('#bulk-justification').fill('Onboarding week');
  await page.getByRole('button', { name: 'Assign from file' }).click();
  await expect(page).toHaveURL(/\/admin\/bulk\/\d+$/);
  // The page refreshes itself while the rows are assigned.
  await expect(page.locator('#bulk-summary')).toContainText('50 of 50 rows: 48 assigned, 2 skipped', { timeout: 30_000 });
  const skipped = page.locator('#bulk-skipped tbody tr');
  await expect(skipped).toHaveCount(2);
  await expect(skipped.nth(0)).toContainText(`ghost.${t.project.name}@quartermaster.example`);
  await expect(skipped.nth(0)).toContainText('no active person');
  await expect(skipped.nth(1)).toContainText(id(first + 48));
  await expect(skipped.nth(1)).toContainText('a date like');
  await shot(page, t, 'admin-bulk');

  // The package's list has them.
  await page.locator('.crumbs a', { hasText: pkg }).click();
  await settle(page, t);
  await expect(page.locator('body')).toContainText('New Hire 048');
});
