import { expect, test, type Page } from "@playwright/test";
import { consistentSid, openReady, waitReady } from "./helpers";

const PW = "correct horse battery";

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEnabled();
  await composer.fill(text);
  await composer.press("Enter");
  await expect(page.locator("[data-testid=message][data-role=assistant]").last()).toHaveAttribute(
    "data-status",
    "done",
    { timeout: 15_000 },
  );
}

async function signIn(page: Page, user: string, register = false) {
  await openReady(page, "/login");
  if (register) await page.getByTestId("toggle-register").click();
  await page.getByTestId("username").fill(user);
  await page.getByTestId("password").fill(PW);
  await page.getByTestId("sign-in-submit").click();
  await expect(page.getByTestId("user-name")).toHaveText(user);
  await waitReady(page);
}

test("password sign-in renews the session, follows the user, and sessions can be ended", async ({ browser }) => {
  const alice = `alice${Date.now()}`;
  const a = await (await browser.newContext()).newPage();
  await openReady(a);
  await send(a, "asked before signing in");
  const anonSid = await consistentSid(a);

  await signIn(a, alice, true);
  const userSid = await consistentSid(a);
  expect(userSid).not.toBe(anonSid);
  await expect(a.getByTestId("thread-list")).toContainText("asked before signing in");

  // The same user in a second browser sees the same threads.
  const b = await (await browser.newContext()).newPage();
  await signIn(b, alice);
  await expect(b.getByTestId("thread-list")).toContainText("asked before signing in");

  // Someone else sees none of them.
  const c = await (await browser.newContext()).newPage();
  await signIn(c, `bob${Date.now()}`, true);
  await expect(c.getByTestId("empty-state")).toBeVisible();
  await expect(c.getByTestId("thread-list")).not.toContainText("asked before signing in");

  // "My sessions" in the first browser lists both; ending the other signs it out.
  await a.goto("/account");
  await waitReady(a);
  await expect(a.getByTestId("session-row")).toHaveCount(2);
  await expect(a.locator("[data-testid=session-row][data-current=true]")).toHaveCount(1);
  await a.getByTestId("end-session").click();
  await expect(a.getByTestId("session-row")).toHaveCount(1);
  await b.reload();
  await waitReady(b);
  await expect(b.getByTestId("sign-in-link")).toBeVisible();
  await expect(b.getByTestId("thread-list")).not.toContainText("asked before signing in");

  // Sign-out: a new anonymous session.
  await a.goto("/");
  await waitReady(a);
  await a.getByTestId("sign-out").click();
  await expect(a.getByTestId("sign-in-link")).toBeVisible();
  await waitReady(a);
  expect(await consistentSid(a)).not.toBe(userSid);
});

test("a wrong password says so without saying which part was wrong", async ({ page }) => {
  await openReady(page, "/login");
  await page.getByTestId("username").fill(`nobody${Date.now()}`);
  await page.getByTestId("password").fill("wrong password");
  await page.getByTestId("sign-in-submit").click();
  await expect(page.getByTestId("sign-in-error")).toHaveText("wrong username or password");
  await expect(page.getByTestId("sign-in-link")).toBeVisible();
});

test("OpenID Connect sign-in through the provider's page", async ({ page }) => {
  await openReady(page, "/login");
  const before = await consistentSid(page);
  await page.getByTestId("provider-fake").click();
  // The provider's own sign-in page, on its own origin.
  await expect(page).toHaveURL(/127\.0\.0\.1:\d+\/authorize/);
  const sub = `oidc${Date.now()}`;
  await page.locator("#sub").fill(sub);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText(`${sub}@example.com`);
  await waitReady(page);
  expect(await consistentSid(page)).not.toBe(before);
});

test("an expired ID token is refused on the callback page", async ({ page }) => {
  await openReady(page, "/login");
  const before = await consistentSid(page);
  await page.getByTestId("provider-fake").click();
  await page.locator("#sub").fill("late");
  await page.locator("#trick").selectOption("expired");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("sign-in-error")).toContainText("expired");
  expect(await consistentSid(page)).toBe(before);
  await expect(page.getByTestId("sign-in-link")).toBeVisible();
});
