import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

// axe on every page, in both themes: no serious or critical violation.

async function serious(page: Page) {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")})`);
}

for (const theme of ["light", "dark"] as const) {
  for (const path of ["/", "a chat", "/login", "/account", "/notes", "/no-such-page"]) {
    test(`axe: ${path} has no serious or critical violations (${theme} theme)`, async ({ page }) => {
      await page.emulateMedia({ colorScheme: theme });
      await page.addInitScript((t) => {
        document.addEventListener("DOMContentLoaded", () =>
          document.documentElement.setAttribute("data-theme", t),
        );
      }, theme);
      await openReady(page, path === "a chat" ? "/" : path);
      await page.evaluate((t) => document.documentElement.setAttribute("data-theme", t), theme);
      if (path === "a chat") {
        const composer = page.getByTestId("composer");
        await composer.fill("/markdown");
        await composer.press("Enter");
        await expect(
          page.locator("[data-testid=message][data-role=assistant]").last(),
        ).toHaveAttribute("data-status", "done", { timeout: 20_000 });
      }
      expect(await serious(page)).toEqual([]);
    });
  }
}

test("each message is labelled, and a reply is announced by sentence, not by token", async ({ page }) => {
  await openReady(page);
  // Every text the live region takes, in order.
  await page.evaluate(() => {
    const w = window as unknown as { heard: string[] };
    w.heard = [];
    // The region comes with the first message, so it is looked up on every change.
    new MutationObserver(() =>
      w.heard.push(document.querySelector("[data-testid=live]")?.textContent ?? ""),
    ).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
    });
  });
  const text = "First sentence is here. Second sentence is here too. And the third one ends it";
  const composer = page.getByTestId("composer");
  await composer.fill(text);
  await composer.press("Enter");
  const reply = page.getByRole("article", { name: "Assistant" }).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 20_000 });
  await expect(page.getByRole("article", { name: "You" })).toHaveCount(1);
  await expect(page.getByTestId("live")).toContainText("third one ends it");
  const heard = await page.evaluate(() => {
    const all = (window as unknown as { heard: string[] }).heard.filter((t) => t.trim() !== "");
    return all.filter((t, i) => t !== all[i - 1]);
  });
  // Fifteen words stream in; a handful of announcements go out.
  expect(heard.length).toBeGreaterThan(0);
  expect(heard.length).toBeLessThanOrEqual(4);

  // A stopped reply says so.
  await composer.fill("/slow");
  await composer.press("Enter");
  await expect(page.getByRole("article", { name: "Assistant" }).last()).toContainText("word3");
  await page.getByTestId("stop").click();
  await expect(page.getByTestId("live")).toContainText("Reply stopped.");
});
