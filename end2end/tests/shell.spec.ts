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

test("rarely opened pages arrive as their own wasm chunks, on first use", async ({ page }) => {
  const wasm: string[] = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.endsWith(".wasm")) wasm.push(path);
  });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await openReady(page);
  expect(wasm).toContain("/pkg/confide.wasm");
  expect(wasm.filter((p) => p.includes("_page_view"))).toEqual([]);

  await page.getByRole("link", { name: "Notes" }).click();
  await expect(page.getByTestId("note")).toBeVisible();
  expect(wasm.some((p) => p.includes("notes_page_view"))).toBe(true);

  await page.getByTestId("sign-in-link").click();
  await expect(page.getByTestId("username")).toBeVisible();
  expect(wasm.some((p) => p.includes("sign_in_page_view"))).toBe(true);
  expect(errors).toEqual([]);
});
