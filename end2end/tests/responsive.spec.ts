import { expect, test, type Page } from "@playwright/test";
import { openReady, waitReady } from "./helpers";

// Runs at 390 px (a phone, touch), 768 px (a tablet) and desktop width: nothing may make a
// page wider than the window, and the composer's Send stays on screen.

const LONG_TITLE =
  "Averyveryverylongchattitlewithoutanyspacesatallthatwouldwidenthepage " +
  "and then some more words to make it long";

async function noSideways(page: Page) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  expect(scrollWidth, "page width").toBeLessThanOrEqual(innerWidth);
}

async function inViewport(page: Page, testId: string) {
  const box = await page.getByTestId(testId).boundingBox();
  const vp = page.viewportSize()!;
  expect(box, testId).not.toBeNull();
  expect(box!.x).toBeGreaterThanOrEqual(0);
  expect(box!.y).toBeGreaterThanOrEqual(0);
  expect(box!.x + box!.width).toBeLessThanOrEqual(vp.width + 0.5);
  expect(box!.y + box!.height).toBeLessThanOrEqual(vp.height + 0.5);
}

const narrow = (page: Page) => page.viewportSize()!.width <= 768;

async function openDrawer(page: Page) {
  if (narrow(page)) {
    await page.getByTestId("menu").click();
    await expect(page.getByTestId("sidebar")).toBeVisible();
  }
}

async function chatWithLongTitleAndCode(page: Page) {
  await openReady(page);
  const composer = page.getByTestId("composer");
  await composer.fill(LONG_TITLE);
  await composer.press("Enter");
  await expect(page).toHaveURL(/\/t\//);
  const last = page.locator("[data-testid=message][data-role=assistant]").last();
  await expect(last).toHaveAttribute("data-status", "done", { timeout: 20_000 });
  await expect(composer).toBeEditable();
  await composer.fill("/markdown");
  await composer.press("Enter");
  await expect(page.locator(".code-block").first()).toBeVisible({ timeout: 20_000 });
  await expect(page.locator("[data-testid=message][data-role=assistant]").last()).toHaveAttribute(
    "data-status",
    "done",
    { timeout: 20_000 },
  );
}

test("a wide window shows the chat list beside the chat, with no menu button @wide", async ({ page }) => {
  expect(narrow(page), "this project's window is wide").toBe(false);
  await openReady(page);
  await expect(page.getByTestId("sidebar")).toBeVisible();
  await expect(page.getByTestId("menu")).toBeHidden();
});

test("no page is wider than the window, and Send stays on screen", async ({ page }) => {
  await openReady(page);
  await noSideways(page);
  await inViewport(page, "send");

  await chatWithLongTitleAndCode(page);
  await noSideways(page);
  await inViewport(page, "send");
  await inViewport(page, "session-id");
  await page.screenshot({
    path: test.info().outputPath(`chat-${page.viewportSize()!.width}.png`),
  });
  await openDrawer(page);
  await noSideways(page);
  await page.screenshot({
    path: test.info().outputPath(`drawer-${page.viewportSize()!.width}.png`),
  });

  for (const path of ["/login", "/account", "/notes"]) {
    await page.goto(path);
    await waitReady(page);
    await noSideways(page);
  }
});

test("a table too wide for the window scrolls inside the reply, its words whole", async ({ page }) => {
  await openReady(page);
  const composer = page.getByTestId("composer");
  await composer.fill(
    "| column one | column two | column three | column four |\n|---|---|---|---|\n" +
      "| a cell with words | another cell | 12345678901234567890 | x |",
  );
  await composer.press("Enter");
  const reply = page.locator("[data-testid=message][data-role=assistant]").last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 20_000 });
  const table = reply.locator(".markdown table");
  await expect(table).toBeVisible();
  // Every word of every cell on one line: a cell may wrap between words, never inside one.
  const broken = await table.evaluate((t) => {
    const out: string[] = [];
    for (const cell of t.querySelectorAll("th, td")) {
      const text = cell.firstChild;
      if (!text || text.nodeType !== Node.TEXT_NODE) continue;
      const value = text.textContent ?? "";
      for (const m of value.matchAll(/\S+/g)) {
        const r = document.createRange();
        r.setStart(text, m.index!);
        r.setEnd(text, m.index! + m[0].length);
        if (r.getClientRects().length !== 1) out.push(m[0]);
      }
    }
    return out;
  });
  expect(broken, "words broken across lines").toEqual([]);
  await noSideways(page);
  if (page.viewportSize()!.width < 500) {
    // Too wide for a phone: the table scrolls on its own.
    const { scrollWidth, clientWidth } = await table.evaluate((t) => ({
      scrollWidth: t.scrollWidth,
      clientWidth: t.clientWidth,
    }));
    expect(scrollWidth).toBeGreaterThan(clientWidth);
  }
});

test("on a narrow window the chat list is a drawer behind a menu button @narrow", async ({ page }) => {
  expect(narrow(page), "this project's window is narrow").toBe(true);
  await openReady(page);
  const sidebar = page.getByTestId("sidebar");
  const menu = page.getByTestId("menu");
  // Closed at first: the conversation has the whole width.
  await expect(sidebar).toBeHidden();
  await expect(menu).toHaveAttribute("aria-expanded", "false");

  // Opening moves the focus into it; Esc closes it and gives the focus back.
  await menu.click();
  await expect(sidebar).toBeVisible();
  await expect(menu).toHaveAttribute("aria-expanded", "true");
  await expect(page.getByTestId("new-chat")).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(sidebar).toBeHidden();
  await expect(menu).toBeFocused();

  // Choosing a chat closes it.
  const composer = page.getByTestId("composer");
  await composer.fill("first chat");
  await composer.press("Enter");
  await expect(page).toHaveURL(/\/t\//);
  const first = page.url();
  await expect(composer).toBeEditable({ timeout: 20_000 });
  await menu.click();
  await page.getByTestId("new-chat").click();
  await expect(sidebar).toBeHidden();
  await expect(page).toHaveURL(/\/$/);
  await menu.click();
  await page.getByTestId("thread-item").first().locator("a").click();
  await expect(page).toHaveURL(first);
  await expect(sidebar).toBeHidden();
});

test("touch targets are at least 44 px on a touch screen @touch", async ({ page }, info) => {
  expect(info.project.use.hasTouch, "this project has a touch screen").toBe(true);
  await openReady(page);
  for (const id of ["menu", "send"]) {
    const box = await page.getByTestId(id).boundingBox();
    expect(box!.height, id).toBeGreaterThanOrEqual(44);
    expect(box!.width, id).toBeGreaterThanOrEqual(44);
  }
  await page.getByTestId("menu").click();
  for (const loc of [
    page.getByTestId("new-chat"),
    page.getByRole("button", { name: "Switch between light and dark theme" }),
  ]) {
    const box = await loc.boundingBox();
    expect(box!.height).toBeGreaterThanOrEqual(44);
  }
});

test("on a touch screen the page opens without popping up the keyboard @touch", async ({ page }, info) => {
  expect(info.project.use.hasTouch, "this project has a touch screen").toBe(true);
  await openReady(page);
  await expect(page.getByTestId("composer")).toBeVisible();
  // A timer queued after the page's own on-load work runs after it.
  await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
  // A keyboard window focuses the composer on load (keyboard.spec.ts); a phone does not.
  await expect(page.getByTestId("composer")).not.toBeFocused();
  expect(await page.evaluate(() => document.activeElement?.tagName)).toBe("BODY");
});

test("a rating's comment, the not-signed-in page and a replaced session's notice fit the window", async ({ page, context }) => {
  await openReady(page);
  const composer = page.getByTestId("composer");
  await composer.fill("rate this one");
  await composer.press("Enter");
  const reply = page.locator("[data-testid=message][data-role=assistant]").last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 20_000 });
  await reply.getByTestId("rate-down").click();
  await expect(reply.getByTestId("rate-down")).toHaveAttribute("aria-pressed", "true");
  const field = page.getByTestId("feedback-comment");
  await expect(field).toBeVisible();
  await noSideways(page);
  await inViewport(page, "feedback-send");
  await field.fill("too short for a phone");
  await page.getByTestId("feedback-send").click();
  await expect(reply.getByTestId("feedback-note")).toHaveText("Your comment: too short for a phone");
  await noSideways(page);

  await openReady(page, "/account");
  await expect(page.getByTestId("not-signed-in")).toBeVisible();
  await inViewport(page, "account-sign-in");
  await noSideways(page);

  // Past the two seconds in which a proof-less id is taken for a racing tab.
  await page.waitForTimeout(2_200);
  await context.clearCookies();
  await page.reload();
  await waitReady(page);
  await expect(page.getByTestId("notice")).toContainText("This browser's session was replaced");
  await noSideways(page);
  await inViewport(page, "notice");
});

test("the composer and the edit field grow with what is typed, up to a limit", async ({ page }) => {
  await openReady(page);
  const composer = page.getByTestId("composer");
  const fits = (field: ReturnType<Page["locator"]>) =>
    field.evaluate((el) => el.scrollHeight <= el.clientHeight + 1);
  const empty = (await composer.boundingBox())!.height;
  const sixLines = ["one", "two", "three", "four", "five", "six"].join("\n");
  await composer.fill(sixLines);
  // Every line in sight: no scrolling inside the field for a short message.
  await expect.poll(() => fits(composer)).toBe(true);
  expect((await composer.boundingBox())!.height).toBeGreaterThan(empty);
  await inViewport(page, "send");

  await page.keyboard.press("Enter");
  const reply = page.locator("[data-testid=message][data-role=assistant]").last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 30_000 });
  await page.getByRole("button", { name: "Edit message" }).click();
  const edit = page.getByRole("textbox", { name: "Edit message" });
  await expect(edit).toBeFocused();
  await expect.poll(() => fits(edit)).toBe(true);
  await noSideways(page);

  // A very long message grows the composer only so far: Send stays on screen.
  await composer.fill(Array.from({ length: 200 }, (_, i) => `line ${i}`).join("\n"));
  const vp = page.viewportSize()!;
  expect((await composer.boundingBox())!.height).toBeLessThanOrEqual(vp.height * 0.4 + 1);
  await inViewport(page, "send");
});
