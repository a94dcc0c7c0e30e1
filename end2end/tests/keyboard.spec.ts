import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

const assistant = (page: Page) => page.locator('[data-testid=message][data-role=assistant]');
const focusedTag = (page: Page) => page.evaluate(() => document.activeElement?.tagName ?? "");
const mod = process.platform === "darwin" ? "Meta" : "Control";

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable();
  await composer.fill(text);
  await composer.press("Enter");
}

test("Esc stops a streaming reply and the focus stays in the composer", async ({ page }) => {
  await openReady(page);
  await send(page, "/slow");
  await expect(assistant(page).last()).toContainText("word3");
  await page.keyboard.press("Escape");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "stopped");
  await expect(page.getByTestId("composer")).toBeFocused();
});

test("Send and Stop by mouse leave the focus in the composer, not on <body>", async ({ page }) => {
  await openReady(page);
  await page.getByTestId("composer").fill("/slow");
  await page.getByTestId("send").click();
  await expect(page.getByTestId("composer")).toBeFocused();
  await expect(assistant(page).last()).toContainText("word3");
  await page.getByTestId("stop").click();
  await expect(assistant(page).last()).toHaveAttribute("data-status", "stopped");
  await expect(page.getByTestId("composer")).toBeFocused();
});

test("shortcuts: new chat, search, and the list that ? opens", async ({ page }) => {
  await openReady(page);
  await send(page, "hello there");
  await expect(page).toHaveURL(/\/t\//);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });

  await page.keyboard.press(`${mod}+Shift+O`);
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId("composer")).toBeFocused();

  await page.keyboard.press(`${mod}+K`);
  await expect(page.getByTestId("search")).toBeFocused();

  // Typed into a field, ? is just a character.
  await page.getByTestId("composer").focus();
  await page.keyboard.type("?");
  await expect(page.getByTestId("shortcuts")).toBeHidden();
  await expect(page.getByTestId("composer")).toHaveValue("?");

  const toggle = page.getByRole("button", { name: "Switch between light and dark theme" });
  await toggle.focus();
  await page.keyboard.press("?");
  const list = page.getByTestId("shortcuts");
  await expect(list).toBeVisible();
  await expect(list).toContainText("New chat");
  await expect(page.getByTestId("close-shortcuts")).toBeFocused();
  // The focus stays inside while it is open.
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => !!document.activeElement?.closest("[data-testid=shortcuts]"))).toBe(true);
  }
  await page.keyboard.press("Escape");
  await expect(list).toBeHidden();
  await expect(toggle).toBeFocused();
});

test("rename and delete never drop the focus to <body>; Esc restores the old title", async ({ page }) => {
  await openReady(page);
  await send(page, "first title");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const item = page.getByTestId("thread-item").first();

  await item.getByRole("button", { name: "Rename chat" }).click();
  const field = item.getByRole("textbox", { name: "Chat title" });
  await field.fill("something else");
  await field.press("Escape");
  await expect(page.getByTestId("thread-item").first()).toContainText("first title");
  await expect.poll(() => focusedTag(page)).toBe("A");

  await page.getByTestId("thread-item").first().getByRole("button", { name: "Rename chat" }).click();
  await page.getByRole("textbox", { name: "Chat title" }).fill("renamed");
  await page.getByRole("textbox", { name: "Chat title" }).press("Enter");
  await expect(page.getByTestId("thread-title")).toHaveText("renamed");
  await expect.poll(() => focusedTag(page)).toBe("A");

  page.once("dialog", (d) => void d.accept());
  await page.getByTestId("thread-item").first().getByTestId("delete-thread").click();
  await expect(page.getByTestId("thread-item")).toHaveCount(0);
  await expect(page.getByTestId("new-chat")).toBeFocused();
});
