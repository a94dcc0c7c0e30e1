import { expect, test } from "@playwright/test";
import { openReady } from "./helpers";

test("the server-rendered shell hydrates", async ({ page, request }) => {
  // The HTML arrives complete before any script runs.
  const html = await (await request.get("/")).text();
  expect(html).toContain("Confide");
  expect(html).toContain("<main");
  expect(html).toContain("/pkg/confide");

  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await openReady(page);
  await expect(page.locator("header .brand")).toHaveText(/Confide/);
  await expect(page.locator("main#main")).toBeVisible();
  await expect(page.locator("footer")).toContainText("Confide");
  await expect(page).toHaveTitle("Confide");
  expect(errors).toEqual([]);
});
