import { expect, test } from "@playwright/test";
import { openReady } from "./helpers";

// Runs in the "chromium-tls" project: Confide serving HTTPS itself with a certificate made
// for this run (the browser is told to accept it).

test("over native TLS the cookies are __Host-, Secure, HttpOnly and SameSite=Strict", async ({ page, context }) => {
  const res = await page.goto("/");
  expect(res?.headers()["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
  await openReady(page);
  const cookies = await context.cookies();
  const proof = cookies.find((c) => c.name === "__Host-confide_proof");
  expect(proof).toBeDefined();
  expect(proof!.secure).toBe(true);
  expect(proof!.httpOnly).toBe(true);
  expect(proof!.sameSite).toBe("Strict");
  expect(proof!.path).toBe("/");
  const sid = cookies.find((c) => c.name === "__Host-confide_sid");
  expect(sid?.secure).toBe(true);
  expect(sid?.sameSite).toBe("Strict");

  // And the chat works.
  const composer = page.getByTestId("composer");
  await composer.fill("hello over tls");
  await composer.press("Enter");
  await expect(page.locator("[data-testid=message][data-role=assistant]").last()).toHaveAttribute("data-status", "done", {
    timeout: 15_000,
  });
});

test("plain http is redirected to https", async ({ request }) => {
  const port = Number(process.env.E2E_REDIRECT_PORT ?? 3180);
  const res = await request.get(`http://127.0.0.1:${port}/t/anything?x=1`, { maxRedirects: 0 });
  expect(res.status()).toBe(308);
  expect(res.headers()["location"]).toMatch(/^https:\/\/localhost:\d+\/t\/anything\?x=1$/);
});

test("a used-up daily quota is said, with when it resets, and the message is kept", async ({ page }) => {
  // This server allows 2 messages a day to each visitor.
  await openReady(page);
  const composer = page.getByTestId("composer");
  const replies = page.locator("[data-testid=message][data-role=assistant]");
  for (const [i, text] of ["one", "two"].entries()) {
    await composer.fill(text);
    await composer.press("Enter");
    await expect(replies).toHaveCount(i + 1);
    await expect(replies.last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  }
  await composer.fill("three");
  await composer.press("Enter");
  const alert = page.getByRole("alert");
  await expect(alert).toContainText("quota of 2 messages is used up");
  await expect(alert).toContainText(/resets at 00:00 UTC \(in ((\d+ h )?\d+ min|under a minute)\)/);
  await expect(composer).toHaveValue("three");
  await expect(replies).toHaveCount(2);
});
