import { expect, test } from "@playwright/test";
import { waitReady } from "./helpers";

test("the app hydrates and chats under a strict nonce CSP without violations", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to (load|execute|apply|connect|frame)/i.test(m.text())) violations.push(m.text());
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      const w = window as unknown as { __csp?: string[] };
      w.__csp = [...(w.__csp ?? []), `${e.violatedDirective} ${e.blockedURI}`];
    });
  });

  const res = await page.goto("/");
  const csp = res?.headers()["content-security-policy"] ?? "";
  const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
  expect(nonce, csp).toBeTruthy();
  expect(csp).not.toContain("unsafe-inline");
  expect(csp).not.toMatch(/(^|[ ;])'unsafe-eval'/);
  await waitReady(page);

  const composer = page.getByTestId("composer");
  await composer.fill("/markdown");
  await composer.press("Enter");
  const reply = page.locator("[data-testid=message][data-role=assistant]").last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(reply.locator(".code-block")).toBeVisible();

  expect(await page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? [])).toEqual([]);
  expect(violations).toEqual([]);
});
