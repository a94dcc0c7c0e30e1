import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

const assistant = (page: Page) => page.locator('[data-testid=message][data-role=assistant]');

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable({ timeout: 20_000 });
  await composer.fill(text);
  await composer.press("Enter");
}

const gap = (page: Page) =>
  page.getByTestId("messages").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);

test("a streaming reply is followed only while the reader is at the bottom", async ({ page }) => {
  await page.setViewportSize({ width: 1000, height: 500 });
  await openReady(page);
  await send(page, "/markdown");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 20_000 });
  await send(page, "/slow");
  await expect(assistant(page).last()).toContainText("word3");
  // At the bottom: the reply is followed, and no button is offered.
  await expect.poll(() => gap(page)).toBeLessThanOrEqual(24);
  await expect(page.getByTestId("jump-latest")).toBeHidden();

  // Scrolled up to read: the list stays put while words keep coming.
  await page.getByTestId("messages").evaluate((el) => el.scrollTo(0, 0));
  await expect(page.getByTestId("jump-latest")).toBeVisible();
  const before = await assistant(page).last().innerText();
  await expect.poll(async () => (await assistant(page).last().innerText()).length).toBeGreaterThan(before.length + 20);
  expect(await page.getByTestId("messages").evaluate((el) => el.scrollTop)).toBe(0);

  // Jump to latest: back at the end, following again, the focus in the composer.
  await page.getByTestId("jump-latest").click();
  await expect(page.getByTestId("jump-latest")).toBeHidden();
  await expect(page.getByTestId("composer")).toBeFocused();
  const after = await assistant(page).last().innerText();
  await expect.poll(async () => (await assistant(page).last().innerText()).length).toBeGreaterThan(after.length + 20);
  await expect.poll(() => gap(page)).toBeLessThanOrEqual(24);
  await page.getByTestId("stop").click();
});

test("a scroll up is kept even when its event comes after the next words", async ({ page }) => {
  await page.setViewportSize({ width: 1000, height: 500 });
  await openReady(page);
  await send(page, "/markdown");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 20_000 });
  await send(page, "/slow");
  await expect(assistant(page).last()).toContainText("word3");
  await expect.poll(() => gap(page)).toBeLessThanOrEqual(24);

  // Hold back the list's next scroll event until more of the reply has arrived, as a busy
  // page does: the words land first, the reader's scroll is reported after them.
  await page.evaluate(() => {
    const list = document.querySelector("[data-testid=messages]")!;
    const held = (e: Event) => {
      if (e.target !== list || !e.isTrusted) return;
      e.stopImmediatePropagation();
      window.removeEventListener("scroll", held, true);
      const later = new MutationObserver(() => {
        later.disconnect();
        setTimeout(() => list.dispatchEvent(new Event("scroll")), 0);
      });
      later.observe(list, { subtree: true, childList: true, characterData: true });
    };
    window.addEventListener("scroll", held, true);
    list.scrollTo(0, 0);
  });
  await expect(page.getByTestId("jump-latest")).toBeVisible();
  await expect.poll(() => gap(page)).toBeGreaterThan(100);
  await page.getByTestId("stop").click();
});
