import { expect, type BrowserContext, type Page } from "@playwright/test";

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Opens Confide and waits until the page is hydrated and the session has started. */
export async function openReady(page: Page, path = "/"): Promise<void> {
  await page.goto(path);
  await waitReady(page);
}

/** Waits (without navigating) until the page is hydrated and the session has started. */
export async function waitReady(page: Page): Promise<void> {
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
}

/** The session id in localStorage (gloo-storage keeps it JSON-encoded). */
export async function storedSid(page: Page): Promise<string | null> {
  const raw = await page.evaluate(() => window.localStorage.getItem("confide.sid"));
  return raw === null ? null : (JSON.parse(raw) as string);
}

export async function cookieSid(context: BrowserContext): Promise<string | undefined> {
  return (await context.cookies()).find((c) => c.name === "__Host-confide_sid")?.value;
}

/** Asserts localStorage and the cookie agree on a valid v4 id, and returns it. */
export async function consistentSid(page: Page): Promise<string> {
  const stored = await storedSid(page);
  const cookie = await cookieSid(page.context());
  expect(stored).toMatch(UUID_V4);
  expect(cookie).toBe(stored);
  await expect(page.getByTestId("session-id")).toHaveText(stored!.slice(0, 8));
  return stored!;
}

export async function saveNote(page: Page, text: string): Promise<void> {
  const note = page.getByTestId("note");
  await expect(note).toBeEnabled();
  await note.fill(text);
  await page.getByTestId("save-note").click();
  await expect(page.getByTestId("note-status")).toHaveText("Saved");
}
