import { expect, Page, TestInfo } from '@playwright/test';

export const emails = {
  grace: 'grace@quartermaster.example',
  linus: 'linus@quartermaster.example',
  maya: 'maya@quartermaster.example',
  omar: 'omar@quartermaster.example',
  sofia: 'sofia@quartermaster.example',
  jamal: 'jamal@quartermaster.example',
  priya: 'priya@quartermaster.example',
  elena: 'elena@quartermaster.example',
  tom: 'tom@quartermaster.example',
  hana: 'hana@quartermaster.example',
  lucas: 'lucas@quartermaster.example',
  kai: 'kai@quartermaster.example',
};

/** Sign in through the demo sign-in page (a plain form: works with and without JavaScript). */
export async function signIn(page: Page, email: string) {
  await page.goto('/signin');
  await page.locator(`button.person[data-email="${email}"]`).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator('.who-name')).toBeAttached();
}

export async function signOut(page: Page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/signin$/);
}

/** With JavaScript on, wait until the page has hydrated (the app marks <body>). */
export async function settle(page: Page, testInfo: TestInfo) {
  if (testInfo.project.name === 'js') {
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  }
}

export async function shot(page: Page, testInfo: TestInfo, name: string) {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
  await testInfo.attach(name, { path: testInfo.outputPath(`${name}.png`), contentType: 'image/png' });
}
