import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

// Runs in the "chromium-instant" project: the echo assistant answers with no pause between
// words, so a one-word reply is often finished, and its last event delivered over the event
// stream, before the answer to `messages/send` reaches the page. Whatever the order, the
// page must end with the finished reply.

const assistant = (page: Page) => page.locator("[data-testid=message][data-role=assistant]");

/** Sends `word` and waits until its reply is finished and the composer is free again. */
async function sendAndFinish(page: Page, word: string, replies: number) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable();
  await composer.fill(word);
  const sent = page.waitForResponse((r) => r.url().endsWith("/api/messages/send"));
  await composer.press("Enter");
  expect((await sent).status()).toBe(200);
  await expect(assistant(page)).toHaveCount(replies);
  const reply = assistant(page).last();
  await expect(reply).toHaveAttribute("data-status", "done");
  await expect(reply.locator(".markdown")).toHaveText(word);
  await expect(page.locator("[data-testid=messages] .typing")).toHaveCount(0);
  await expect(composer).toBeEditable();
  await expect(page.getByTestId("send")).toBeVisible();
}

test("twenty one-word replies in one chat all finish", async ({ page }) => {
  await openReady(page);
  for (let i = 1; i <= 20; i++) {
    await sendAndFinish(page, `word${i}`, i);
  }
  await expect(page).toHaveURL(/\/t\/[0-9a-f-]{36}$/);
  // What the server stored agrees with what the page shows.
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(assistant(page)).toHaveCount(20);
  await expect(page.locator("[data-testid=message][data-status=streaming]")).toHaveCount(0);
});

test("one-word replies that each start a new chat all finish", async ({ page }) => {
  await openReady(page);
  for (let i = 1; i <= 10; i++) {
    if (i > 1) {
      await page.getByTestId("new-chat").click();
      await expect(page).toHaveURL(/\/$/);
      await expect(page.getByTestId("empty-state")).toBeVisible();
    }
    await sendAndFinish(page, `first${i}`, 1);
    await expect(page).toHaveURL(/\/t\/[0-9a-f-]{36}$/);
  }
  await expect(page.getByTestId("thread-item")).toHaveCount(10);
});

test("a reply with steps at full speed ends with every step done", async ({ page }) => {
  await openReady(page);
  for (let i = 1; i <= 5; i++) {
    const composer = page.getByTestId("composer");
    await expect(composer).toBeEditable();
    await composer.fill(`/steps a b c${i}`);
    await composer.press("Enter");
    const reply = assistant(page).nth(i - 1);
    await expect(reply).toHaveAttribute("data-status", "done");
    await expect(reply.locator(".markdown")).toHaveText("I counted 3 words.");
    await expect(reply.getByTestId("step")).toHaveCount(3);
    await expect(reply.locator("[data-testid=step]:not([data-status=done])")).toHaveCount(0);
  }
});
