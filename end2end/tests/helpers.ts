import { expect, type BrowserContext, type Page } from "@playwright/test";

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Opens Confide and waits until the page is hydrated and the session has started. */
export async function openReady(page: Page, path = "/"): Promise<void> {
  watch(page);
  await page.goto(path);
  await waitReady(page);
}

const trouble = new WeakMap<Page, string[]>();

/** Keeps what went wrong while a page loads (failed requests, errors), for the report of a
 * page that never became ready: a run on another machine is explained by its log alone. */
function watch(page: Page) {
  if (trouble.has(page)) return;
  const seen: string[] = [];
  trouble.set(page, seen);
  page.on("requestfailed", (r) => seen.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on("response", (r) => {
    if (r.status() >= 500 || (r.url().includes("/pkg/") && r.status() >= 400)) {
      seen.push(`response ${r.status()}: ${r.url()}`);
    }
  });
  page.on("pageerror", (e) => seen.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") seen.push(`console error: ${m.text()}`);
  });
}

/** Waits (without navigating) until the page is hydrated and the session has started. */
export async function waitReady(page: Page): Promise<void> {
  watch(page);
  try {
    // The debug build's wasm is several megabytes: on a busy machine it can take a while.
    await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
    await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready", {
      timeout: 20_000,
    });
  } catch (e) {
    const state = await page
      .evaluate(() => ({
        hydrated: document.body?.getAttribute("data-hydrated"),
        session: document.querySelector(".app-shell")?.getAttribute("data-session-state"),
        notices: [...document.querySelectorAll(".notice")].map((n) => n.textContent),
        styled: getComputedStyle(document.body).fontFamily,
      }))
      .catch((err) => `unreadable: ${err}`);
    throw new Error(
      `${page.url()} never became ready: ${JSON.stringify(state)}\n` +
        `${(trouble.get(page) ?? []).join("\n")}\n${e}`,
    );
  }
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
