import AxeBuilder from "@axe-core/playwright";
import { expect, test } from "@playwright/test";
import { openReady } from "./helpers";

// Runs in the "chromium-instant" project, against a server with no way of signing in: the
// pages about accounts must say so and lead back, never offer a button that cannot work.

test("/login without sign-in says it is not enabled and leads back to the chat", async ({ page }) => {
  await openReady(page, "/login");
  const card = page.getByTestId("sign-in-off");
  await expect(card.getByRole("heading", { level: 1 })).toHaveText("Sign-in is not enabled");
  await expect(page.getByTestId("username")).toHaveCount(0);
  await expect(page.getByTestId("sign-in-submit")).toHaveCount(0);
  await expect(page.getByTestId("sign-in-link")).toHaveCount(0);
  const results = await new AxeBuilder({ page }).analyze();
  expect(results.violations.filter((v) => v.impact === "serious" || v.impact === "critical")).toEqual([]);
  // By keyboard: the link back is reachable and takes the person to the chat.
  const back = page.getByTestId("back-to-chat");
  for (let i = 0; i < 30 && !(await back.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
  }
  await expect(back).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/:\d+\/$/);
  await expect(page.getByTestId("composer")).toBeVisible();
});

test("/account without sign-in explains why it is empty and offers nothing that cannot work", async ({ page }) => {
  await openReady(page, "/account");
  const card = page.getByTestId("not-signed-in");
  await expect(card.getByRole("heading", { level: 1 })).toHaveText("You are not signed in");
  await expect(card).toContainText("Sign-in is not enabled on this server.");
  await expect(page.getByTestId("account-sign-in")).toHaveCount(0);
  await expect(page.getByTestId("end-all")).toHaveCount(0);
  await expect(page.getByTestId("sessions-error")).toHaveCount(0);
  await card.getByTestId("back-to-chat").click();
  await expect(page).toHaveURL(/:\d+\/$/);
});
