import { expect, test, type Browser, type Page } from "@playwright/test";
import { consistentSid, openReady, waitReady } from "./helpers";

const PW = "correct horse battery";

const replies = (page: Page) => page.locator("[data-testid=message][data-role=assistant]");

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable();
  await composer.fill(text);
  await composer.press("Enter");
  await expect(replies(page).last()).toHaveAttribute(
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

/** A user name no other test (or earlier run against the same store) has taken. */
const fresh = (name: string) => `${name}${Date.now()}${Math.floor(Math.random() * 1e6)}`;

/** Two browsers signed in as one new user: `a` registered it. */
async function twoBrowsersOfOneUser(browser: Browser): Promise<{ a: Page; b: Page }> {
  const user = fresh("alice");
  const a = await (await browser.newContext()).newPage();
  await signIn(a, user, true);
  const b = await (await browser.newContext()).newPage();
  await signIn(b, user);
  return { a, b };
}

/** Ends the other browser's session from `a`'s My sessions page. */
async function endTheOtherSession(a: Page) {
  await openReady(a, "/account");
  await expect(a.getByTestId("session-row")).toHaveCount(2);
  await a.getByTestId("end-session").click();
  await expect(a.getByTestId("session-row")).toHaveCount(1);
}

test("password sign-in renews the session and keeps the threads asked before it", async ({ page }) => {
  await openReady(page);
  await send(page, "asked before signing in");
  const anonSid = await consistentSid(page);

  await signIn(page, fresh("alice"), true);
  expect(await consistentSid(page)).not.toBe(anonSid);
  await expect(page.getByTestId("thread-list")).toContainText("asked before signing in");
});

test("a user's threads follow them to another browser and reach no one else", async ({ browser }) => {
  const alice = fresh("alice");
  const a = await (await browser.newContext()).newPage();
  await signIn(a, alice, true);
  await send(a, "only for alice");

  const b = await (await browser.newContext()).newPage();
  await signIn(b, alice);
  await expect(b.getByTestId("thread-list")).toContainText("only for alice");

  const c = await (await browser.newContext()).newPage();
  await signIn(c, fresh("bob"), true);
  await expect(c.getByTestId("empty-state")).toBeVisible();
  await expect(c.getByTestId("thread-list")).not.toContainText("only for alice");
});

test("my sessions lists each browser, and ending one signs it out", async ({ browser }) => {
  const alice = fresh("alice");
  const a = await (await browser.newContext()).newPage();
  await signIn(a, alice, true);
  await send(a, "seen by both browsers");
  const b = await (await browser.newContext()).newPage();
  await signIn(b, alice);
  await expect(b.getByTestId("thread-list")).toContainText("seen by both browsers");

  await openReady(a, "/account");
  await expect(a.getByTestId("session-row")).toHaveCount(2);
  await expect(a.locator("[data-testid=session-row][data-current=true]")).toHaveCount(1);
  await a.getByTestId("end-session").click();
  await expect(a.getByTestId("session-row")).toHaveCount(1);

  await b.reload();
  await waitReady(b);
  await expect(b.getByTestId("sign-in-link")).toBeVisible();
  await expect(b.getByTestId("thread-list")).not.toContainText("seen by both browsers");
});

test("signing out starts a new anonymous session", async ({ page }) => {
  await signIn(page, fresh("alice"), true);
  const userSid = await consistentSid(page);
  await openReady(page, "/");
  await page.getByTestId("sign-out").click();
  await expect(page.getByTestId("sign-in-link")).toBeVisible();
  await waitReady(page);
  expect(await consistentSid(page)).not.toBe(userSid);
});

test("a tab follows a sign-in and a sign-out made in another tab, and keeps its draft", async ({ context }) => {
  const other = await context.newPage();
  await openReady(other);
  await send(other, "asked in the other tab");
  await other.getByTestId("composer").fill("a draft worth keeping");

  const user = fresh("alice");
  const here = await context.newPage();
  await signIn(here, user, true);
  // Without a reload, the other tab is signed in too, with what it had asked and typed.
  await expect(other.getByTestId("user-name")).toHaveText(user);
  await expect(other.getByTestId("thread-list")).toContainText("asked in the other tab");
  await expect(other.getByTestId("composer")).toHaveValue("a draft worth keeping");
  await other.getByTestId("composer").press("Enter");
  await expect(other.locator("[data-testid=message][data-role=user]").last()).toHaveText("a draft worth keeping");
  await expect(replies(other).last()).toHaveAttribute(
    "data-status",
    "done",
    { timeout: 15_000 },
  );

  await openReady(here, "/");
  await here.getByTestId("sign-out").click();
  await expect(here.getByTestId("sign-in-link")).toBeVisible();
  await expect(other.getByTestId("sign-in-link")).toBeVisible();
  await expect(other.getByTestId("thread-list")).not.toContainText("asked in the other tab");
  await expect(other.getByTestId("notice")).toHaveCount(0);
});

test("a page whose session was ended from another browser starts a new one at its next step, and says why", async ({
  browser,
}) => {
  const { a, b } = await twoBrowsersOfOneUser(browser);
  await send(b, "asked before it ended");
  // Its live stream cannot come back once the end closes it (the network fails, so the
  // browser keeps trying): the page learns of the end only from its next call.
  await b.route("**/api/events", (route) => route.abort());

  await endTheOtherSession(a);

  // The page stayed open: its next message is refused, and the page moves on to a new
  // anonymous session, says why, and keeps the message to send again.
  await b.getByTestId("composer").fill("sent after it ended");
  await b.getByTestId("composer").press("Enter");
  await expect(b.getByTestId("sign-in-link")).toBeVisible();
  await expect(b.getByTestId("notice")).toContainText("had ended");
  await expect(b.getByRole("alert")).toContainText("not sent");
  await expect(b.getByTestId("composer")).toHaveValue("sent after it ended");
  await expect(b.getByTestId("thread-list")).not.toContainText("asked before it ended");
  // The chat it had open went with the old session; the message starts a new one, and
  // its reply streams in once the stream is back.
  await expect(b.getByTestId("not-found")).toBeVisible();
  await b.unroute("**/api/events");
  await b.getByTestId("composer").press("Enter");
  await expect(b).toHaveURL(/\/t\//);
  await expect(replies(b).last()).toHaveAttribute(
    "data-status",
    "done",
    { timeout: 15_000 },
  );
  await expect(b.locator("[data-testid=message][data-role=user]")).toHaveText(["sent after it ended"]);
});

test("a page whose session was ended from another browser says so at once, and works on", async ({ browser }) => {
  const { a, b } = await twoBrowsersOfOneUser(browser);
  await send(b, "asked before it ended");
  await b.getByTestId("composer").fill("a draft worth keeping");

  await endTheOtherSession(a);

  // The end closes the page's live stream, and the page moves on by itself.
  await expect(b.getByTestId("notice")).toContainText("had ended", { timeout: 15_000 });
  await expect(b.getByTestId("sign-in-link")).toBeVisible();
  await expect(b.getByTestId("thread-list")).not.toContainText("asked before it ended");
  await expect(b.getByTestId("composer")).toHaveValue("a draft worth keeping");
  // Live again, under the new session: a message from another tab of it shows here.
  const c = await b.context().newPage();
  await openReady(c);
  await c.getByTestId("composer").fill("from another tab");
  await c.getByTestId("composer").press("Enter");
  await expect(b.getByTestId("thread-list")).toContainText("from another tab", { timeout: 15_000 });
});

test("a wrong password says so without saying which part was wrong", async ({ page }) => {
  await openReady(page, "/login");
  await page.getByTestId("username").fill(`nobody${Date.now()}`);
  await page.getByTestId("password").fill("wrong password");
  await page.getByTestId("sign-in-submit").click();
  await expect(page.getByTestId("sign-in-error")).toHaveText("wrong username or password");
  await expect(page.getByTestId("sign-in-link")).toBeVisible();
  // The form is usable again for the next try, and the next try's answer replaces the error.
  await expect(page.getByTestId("sign-in-submit")).toBeEnabled();
  await page.getByTestId("password").fill("still wrong");
  await page.getByTestId("sign-in-submit").click();
  await expect(page.getByTestId("sign-in-error")).toHaveText("wrong username or password");
  await expect(page.getByTestId("sign-in-submit")).toBeEnabled();
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

test("/account without a signed-in user explains itself and offers the way to sign in", async ({ page }) => {
  await openReady(page, "/account");
  const card = page.getByTestId("not-signed-in");
  await expect(card.getByRole("heading", { level: 1 })).toHaveText("You are not signed in");
  await expect(page.getByTestId("end-all")).toHaveCount(0);
  await expect(page.getByTestId("sessions-error")).toHaveCount(0);
  await page.getByTestId("account-sign-in").click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByTestId("username")).toBeVisible();
});

test("changing the password on my sessions ends the other browsers and says so", async ({ browser }) => {
  const { a, b } = await twoBrowsersOfOneUser(browser);

  await openReady(a, "/account");
  await expect(a.getByTestId("session-row")).toHaveCount(2);
  // A wrong current password is refused and changes nothing.
  await a.getByTestId("current-password").fill("not my password");
  await a.getByTestId("new-password").fill("another horse battery staple");
  await a.getByTestId("change-password").click();
  await expect(a.getByTestId("sessions-error")).toBeVisible();
  await expect(a.getByTestId("sessions-status")).toHaveCount(0);
  await expect(a.getByTestId("session-row")).toHaveCount(2);

  await a.getByTestId("current-password").fill(PW);
  await a.getByTestId("new-password").fill("another horse battery staple");
  await a.getByTestId("change-password").click();
  await expect(a.getByTestId("sessions-status")).toHaveText("Password changed; 1 other session(s) ended.");
  await expect(a.getByTestId("sessions-error")).toHaveCount(0);
  await expect(a.getByTestId("current-password")).toHaveValue("");
  await expect(a.getByTestId("new-password")).toHaveValue("");
  await expect(a.getByTestId("session-row")).toHaveCount(1);

  await b.reload();
  await waitReady(b);
  await expect(b.getByTestId("sign-in-link")).toBeVisible();
});

test("sign out everywhere ends this browser and every other one of the account", async ({ browser }) => {
  const alice = fresh("alice");
  const a = await (await browser.newContext()).newPage();
  await signIn(a, alice, true);
  const aSid = await consistentSid(a);
  const b = await (await browser.newContext()).newPage();
  await signIn(b, alice);

  await openReady(a, "/account");
  await expect(a.getByTestId("session-row")).toHaveCount(2);
  await a.getByTestId("end-all").click();
  await expect(a.getByTestId("sign-in-link")).toBeVisible();
  await waitReady(a);
  expect(await consistentSid(a)).not.toBe(aSid);

  await b.reload();
  await waitReady(b);
  await expect(b.getByTestId("sign-in-link")).toBeVisible();
});

/**
 * As on a slow network: the page's split-off code is held back until the session has started,
 * so the page hydrates with the session already known. Collects what a failed hydration
 * reports (its reason, then a panic).
 */
async function holdSplitCodeUntilSessionStarts(page: Page): Promise<string[]> {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (/hydrat|panicked/i.test(m.text())) errors.push(m.text());
  });
  let started = () => {};
  const ready = new Promise<void>((resolve) => (started = resolve));
  page.on("response", (r) => {
    if (r.url().includes("/api/session/start")) started();
  });
  await page.route(/\/pkg\/(split_|chunk_)[^/]*\.wasm$/, async (route) => {
    await ready;
    await new Promise((r) => setTimeout(r, 300));
    await route.continue();
  });
  return errors;
}

test("a page whose code arrives after the session is ready still comes to life", async ({ browser }) => {
  const alice = fresh("alice");
  const a = await (await browser.newContext()).newPage();
  await signIn(a, alice, true);
  const errors = await holdSplitCodeUntilSessionStarts(a);

  await openReady(a, "/account");
  await expect(a.getByTestId("session-row")).toHaveCount(1);
  await expect(a.getByTestId("current-password")).toBeVisible();
  await a.getByTestId("current-password").fill("not my password");
  await a.getByTestId("new-password").fill("another horse battery staple");
  await a.getByTestId("change-password").click();
  await expect(a.getByTestId("sessions-error")).toBeVisible();
  expect(errors).toEqual([]);

  // The same for someone not signed in: the page explains itself.
  const b = await (await browser.newContext()).newPage();
  const bErrors = await holdSplitCodeUntilSessionStarts(b);
  await openReady(b, "/account");
  await expect(b.getByTestId("not-signed-in")).toBeVisible();
  await b.getByTestId("account-sign-in").click();
  await expect(b).toHaveURL(/\/login$/);
  expect(bErrors).toEqual([]);
});

test("the choice to keep this session's chats comes before every way of signing in, and unticked leaves them behind", async ({
  page,
}) => {
  await openReady(page);
  await send(page, "left behind at sign-in");
  await openReady(page, "/login");
  const keep = page.getByTestId("keep-threads");
  await expect(keep).toBeChecked();
  // It changes what each way does, so it is read (and reached by Tab) before any of them.
  const firstWay = await keep.evaluate((el) => {
    const ways = [...document.querySelectorAll(".sign-in input, .sign-in button")];
    return ways.indexOf(el as Element);
  });
  expect(firstWay).toBe(0);

  await keep.uncheck();
  const user = fresh("carol");
  await page.getByTestId("toggle-register").click();
  await page.getByTestId("username").fill(user);
  await page.getByTestId("password").fill(PW);
  await page.getByTestId("sign-in-submit").click();
  await expect(page.getByTestId("user-name")).toHaveText(user);
  await waitReady(page);
  await page.goto("/");
  await waitReady(page);
  await expect(page.getByText("No chats yet.")).toBeVisible();
  await expect(page.getByText("left behind at sign-in")).toHaveCount(0);
});
