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

/** Presses Tab (or Shift+Tab) until `target` has the focus, as a keyboard user would. */
async function tabTo(page: Page, target: ReturnType<Page["locator"]>, back = false) {
  for (let i = 0; i < 60; i++) {
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
  }
  await expect(target).toBeFocused();
}

test("in the edit field Enter saves, Shift+Enter starts a new line and Esc cancels", async ({ page }) => {
  await openReady(page);
  const users = page.locator("[data-testid=message][data-role=user]");
  await send(page, "first question");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const edit = page.getByRole("button", { name: "Edit message" });
  const field = page.getByRole("textbox", { name: "Edit message" });
  await edit.click();
  await expect(field).toBeFocused();
  // While its form is open the message offers no second way into it.
  await expect(edit).toBeHidden();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.type("never sent");
  await page.keyboard.press("Escape");
  await expect(field).toHaveCount(0);
  await expect(edit).toBeFocused();
  await expect(users).toHaveText(["first question"]);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done");

  await page.keyboard.press("Enter");
  await expect(field).toBeFocused();
  await expect(field).toHaveValue("first question");
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.type("edited");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("on two lines");
  await expect(field).toHaveValue("edited\non two lines");
  await page.keyboard.press("Enter");
  await expect(field).toHaveCount(0);
  await expect(users).toHaveText(["edited on two lines"]);
  await expect(assistant(page)).toHaveCount(1);
  await expect(assistant(page).last()).toContainText("on two lines", { timeout: 15_000 });
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(page.getByTestId("composer")).toBeFocused();
});

test("a whole chat by keyboard alone: send, rate with a comment, regenerate, edit, new chat, switch back", async ({ page }) => {
  await openReady(page);
  const composer = page.getByTestId("composer");
  await expect(composer).toBeFocused();
  await page.keyboard.type("first question");
  await page.keyboard.press("Enter");
  const reply = assistant(page).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(composer).toBeFocused();

  // Rate it, with a comment.
  await tabTo(page, reply.getByTestId("rate-up"), true);
  await page.keyboard.press("Enter");
  await expect(reply.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "true");
  await expect(page.getByTestId("feedback-comment")).toBeFocused();
  await page.keyboard.type("clear and short");
  await page.keyboard.press("Enter");
  await expect(reply.getByTestId("feedback-note")).toHaveText("Your comment: clear and short");
  await expect(reply.getByTestId("rate-up")).toBeFocused();

  // Ask again.
  const regenerate = page.getByTestId("regenerate");
  await tabTo(page, regenerate);
  await page.keyboard.press("Enter");
  await expect(assistant(page)).toHaveCount(1);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  expect(await focusedTag(page)).not.toBe("BODY");

  // Edit the question.
  const edit = page.getByRole("button", { name: "Edit message" });
  await tabTo(page, edit, true);
  await page.keyboard.press("Enter");
  const field = page.getByRole("textbox", { name: "Edit message" });
  await expect(field).toBeFocused();
  // Cancel gives the focus back to the button that opened the editor.
  await tabTo(page, page.getByRole("button", { name: "Cancel" }));
  await page.keyboard.press("Enter");
  await expect(field).toHaveCount(0);
  await expect(edit).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(field).toBeFocused();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.type("edited question");
  await tabTo(page, page.getByRole("button", { name: "Save & ask again" }));
  await page.keyboard.press("Enter");
  await expect(page.locator("[data-testid=message][data-role=user]")).toHaveText(["edited question"]);
  await expect(assistant(page).last()).toContainText("edited question", { timeout: 15_000 });
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  expect(await focusedTag(page)).not.toBe("BODY");

  // A new chat, then back to the first one through the list.
  await page.keyboard.press(`${mod}+Shift+O`);
  await expect(composer).toBeFocused();
  await page.keyboard.type("second chat");
  await page.keyboard.press("Enter");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await page.keyboard.press(`${mod}+K`);
  await expect(page.getByTestId("search")).toBeFocused();
  const first = page.getByTestId("thread-list").getByRole("link", { name: /edited question|first question/ });
  await tabTo(page, first);
  await page.keyboard.press("Enter");
  await expect(page.locator("[data-testid=message][data-role=user]")).toHaveText(["edited question"]);
  expect(await focusedTag(page)).not.toBe("BODY");
});
