import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

const assistant = (page: Page) => page.locator('[data-testid=message][data-role=assistant]');
const userMsgs = (page: Page) => page.locator('[data-testid=message][data-role=user]');

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEnabled();
  await composer.fill(text);
  await composer.press("Enter");
}

test("a reply streams in, survives a reload, and keeps its URL", async ({ page }) => {
  await openReady(page);
  await expect(page.getByTestId("empty-state")).toBeVisible();
  const words = Array.from({ length: 40 }, (_, i) => `w${i + 1}`).join(" ");
  await send(page, words);

  await expect(page).toHaveURL(/\/t\/[0-9a-f-]{36}$/);
  // Seen while streaming: a partial text, then the whole of it.
  await expect(assistant(page).last()).toHaveAttribute("data-status", "streaming");
  await expect(page.getByTestId("stop")).toBeVisible();
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(page).last()).toContainText("w40");
  await expect(page.getByTestId("thread-list")).toContainText("w1 w2");

  const url = page.url();
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  expect(page.url()).toBe(url);
  await expect(userMsgs(page)).toHaveText([words]);
  await expect(assistant(page).last()).toContainText("w40");
  await page.screenshot({ path: test.info().outputPath("chat.png") });
});

test("stop cancels the reply and keeps the partial text", async ({ page }) => {
  await openReady(page);
  await send(page, "/slow");
  const reply = assistant(page).last();
  await expect(reply).toContainText("word3");
  await page.getByTestId("stop").click();
  await expect(reply).toHaveAttribute("data-status", "stopped");
  const partial = await reply.locator(".markdown").innerText();
  expect(partial).toContain("Counting slowly");
  expect(partial).not.toContain("word120");
  await page.waitForTimeout(800);
  expect(await reply.locator(".markdown").innerText()).toBe(partial);
  await expect(page.getByTestId("composer")).toBeEnabled();
});

test("markup in a message is shown as text, never run", async ({ page }) => {
  await openReady(page);
  const hostile = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
  await send(page, hostile);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(userMsgs(page).last()).toHaveText(hostile);
  await expect(assistant(page).last()).toContainText("<script>window.__pwned = 1</script>");
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(await page.locator(".messages script, .messages img").count()).toBe(0);
});

test("two browsers never see each other's threads, even by URL", async ({ browser }) => {
  const a = await browser.newContext();
  const b = await browser.newContext();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await openReady(pa);
  await send(pa, "alpha secret words");
  await expect(pa).toHaveURL(/\/t\//);
  await expect(assistant(pa).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const url = pa.url();

  await openReady(pb);
  await expect(pb.getByTestId("thread-list")).not.toContainText("alpha");
  await pb.goto(url);
  await expect(pb.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(pb.getByText("Chat not found")).toBeVisible();
  expect(await pb.content()).not.toContain("alpha secret words");
  await a.close();
  await b.close();
});

test("two tabs of one browser stay in sync", async ({ context }) => {
  const first = await context.newPage();
  await openReady(first);
  const second = await context.newPage();
  await openReady(second);

  await send(first, "hello from the first tab");
  await expect(first).toHaveURL(/\/t\//);
  // The second tab learns of the new thread without a reload.
  await expect(second.getByTestId("thread-list")).toContainText("hello from the first tab");
  await second.goto(first.url());
  await expect(second.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");

  await expect(assistant(first).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await send(first, "second message");
  await expect(userMsgs(second).last()).toHaveText("second message");
  await expect(assistant(second).last()).toContainText("second message", { timeout: 15_000 });
});

test("feedback, edit and regenerate", async ({ page }) => {
  await openReady(page);
  await send(page, "first question");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await page.getByTestId("rate-up").click();
  await expect(page.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "true");

  await userMsgs(page).first().hover();
  await userMsgs(page).first().getByRole("button", { name: "Edit message" }).click();
  await page.getByRole("textbox", { name: "Edit message" }).fill("edited question");
  await page.getByRole("button", { name: "Save & ask again" }).click();
  await expect(userMsgs(page)).toHaveText(["edited question"]);
  await expect(assistant(page)).toHaveCount(1);
  await expect(assistant(page).last()).toContainText("edited question", { timeout: 15_000 });

  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const before = await assistant(page).last().getAttribute("data-status");
  expect(before).toBe("done");
  await page.getByTestId("regenerate").click();
  await expect(assistant(page)).toHaveCount(1);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
});
