import { expect, test } from "@playwright/test";
import { consistentSid, cookieSid, openReady, saveNote, storedSid, UUID_V4, waitReady } from "./helpers";

test("two browsers get different sessions whose notes never cross", async ({ browser }) => {
  const a = await browser.newContext();
  const b = await browser.newContext();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await openReady(pa, "/notes");
  await openReady(pb, "/notes");
  const sidA = await consistentSid(pa);
  const sidB = await consistentSid(pb);
  expect(sidA).not.toBe(sidB);

  await saveNote(pa, "note of A");
  await saveNote(pb, "note of B");
  await pa.reload();
  await pb.reload();
  await waitReady(pa);
  await waitReady(pb);
  await expect(pa.getByTestId("note")).toHaveValue("note of A");
  await expect(pb.getByTestId("note")).toHaveValue("note of B");
  expect(await consistentSid(pa)).toBe(sidA);
  expect(await consistentSid(pb)).toBe(sidB);
  await a.close();
  await b.close();
});

test("a reload keeps the session and its note; the proof cookie is HttpOnly", async ({ page, context }) => {
  await openReady(page, "/notes");
  const sid = await consistentSid(page);
  await saveNote(page, "still here after reload");
  await page.reload();
  await waitReady(page);
  expect(await consistentSid(page)).toBe(sid);
  await expect(page.getByTestId("note")).toHaveValue("still here after reload");

  const proof = (await context.cookies()).find((c) => c.name === "__Host-confide_proof");
  expect(proof?.httpOnly).toBe(true);
  expect(proof?.secure).toBe(true);
  expect(proof?.sameSite).toBe("Strict");
  expect(proof?.path).toBe("/");
  // Scripts cannot read the proof.
  const visible = await page.evaluate(() => document.cookie);
  expect(visible).not.toContain("confide_proof");
  expect(visible).toContain(`__Host-confide_sid=${sid}`);
});

test("clearing storage and cookies starts a new, empty session", async ({ page, context }) => {
  await openReady(page, "/notes");
  const before = await consistentSid(page);
  await saveNote(page, "forget me");

  await context.clearCookies();
  await page.evaluate(() => window.localStorage.clear());
  await page.reload();
  await waitReady(page);
  const after = await consistentSid(page);
  expect(after).not.toBe(before);
  await expect(page.getByTestId("note")).toHaveValue("");
});

test("a copied GUID without its proof is moved to a fresh session and sees nothing", async ({ browser }) => {
  const a = await browser.newContext();
  const pa = await a.newPage();
  await openReady(pa, "/notes");
  const sidA = await consistentSid(pa);
  await saveNote(pa, "A's private note");

  // B already has a session of its own; then A's id is planted in B's storage and cookie.
  const b = await browser.newContext();
  const pb = await b.newPage();
  await openReady(pb, "/notes");
  const sidB = await consistentSid(pb);
  await pb.evaluate((sid) => window.localStorage.setItem("confide.sid", JSON.stringify(sid)), sidA);
  await b.addCookies([
    // `__Host-` cookies are host-only with `Path=/`.
    { name: "__Host-confide_sid", value: sidA, domain: new URL(pb.url()).hostname, path: "/", sameSite: "Strict", secure: true },
  ]);
  expect(await storedSid(pb)).toBe(sidA);
  expect(await cookieSid(b)).toBe(sidA);

  await pb.reload();
  await waitReady(pb);
  await expect(pb.getByTestId("notice")).toContainText("a new session was started");
  const sidNew = await consistentSid(pb);
  expect(sidNew).not.toBe(sidA);
  expect(sidNew).not.toBe(sidB);
  await expect(pb.getByTestId("note")).toHaveValue("");
  expect(await pb.content()).not.toContain("A's private note");

  // A is untouched.
  await pa.reload();
  await waitReady(pa);
  expect(await consistentSid(pa)).toBe(sidA);
  await expect(pa.getByTestId("note")).toHaveValue("A's private note");
  await a.close();
  await b.close();
});

test("an id claimed by a start whose answer never arrived is replaced, not a dead end", async ({ browser, playwright, baseURL }) => {
  // As when a page is left while its session start is in flight: the server claims the id,
  // but the proof cookie in its answer never reaches this browser.
  const elsewhere = await playwright.request.newContext({ baseURL });
  const b = await browser.newContext();
  const page = await b.newPage();
  let lost: string | undefined;
  await page.route("**/api/session/start", async (route) => {
    if (lost === undefined) {
      lost = route.request().headers()["x-confide-session"];
      const claimed = await elsewhere.post("/api/session/start", {
        headers: { "x-confide-session": lost, "content-type": "application/json" },
        data: {},
      });
      expect(claimed.status()).toBe(200);
    }
    await route.continue();
  });
  await openReady(page);
  const sid = await consistentSid(page);
  expect(lost).toMatch(UUID_V4);
  expect(sid).not.toBe(lost);
  await elsewhere.dispose();
  await b.close();
});

test("a browser that lost its cookies is told what happened to its old chats", async ({ page, context }) => {
  await openReady(page, "/notes");
  const claimed = Date.now();
  const old = await consistentSid(page);
  await saveNote(page, "before the cookies went");
  // In its first two seconds a session's id without proof is taken for the loser of a race
  // between two tabs starting it (guard::CLAIM_RACE_WINDOW_MS); lost cookies come later.
  await page.waitForTimeout(Math.max(0, claimed + 2_200 - Date.now()));
  // Cleared cookies, as a privacy tool or a "clear site data" would; storage keeps the id.
  await context.clearCookies();
  await page.reload();
  await waitReady(page);
  const notice = page.getByTestId("notice");
  await expect(notice).toHaveAttribute("role", "status");
  await expect(notice).toContainText(
    "This browser's session was replaced; chats of the old session cannot be recovered without it.",
  );
  await expect(notice).toContainText("cookies were cleared or blocked");
  expect(await consistentSid(page)).not.toBe(old);
  await expect(page.getByTestId("note")).toHaveValue("");
});

test("forgetting this browser deletes its chats and notes; another tab of it follows and says why", async ({ context }) => {
  const here = await context.newPage();
  await openReady(here, "/notes");
  await saveNote(here, "a note to forget");
  await here.goto("/");
  await waitReady(here);
  await here.getByTestId("composer").fill("a chat to forget");
  await here.getByTestId("composer").press("Enter");
  await expect(here).toHaveURL(/\/t\//);
  await expect(here.locator("[data-testid=message][data-role=assistant]").last()).toHaveAttribute(
    "data-status",
    "done",
    { timeout: 15_000 },
  );
  const chat = new URL(here.url()).pathname;
  const before = await consistentSid(here);
  const there = await context.newPage();
  await openReady(there, chat);
  await expect(there.getByTestId("thread-list")).toContainText("a chat to forget");

  here.once("dialog", (d) => void d.accept());
  await here.getByTestId("forget").click();
  await expect(here).toHaveURL(/\/$/);
  await waitReady(here);
  await expect(here.getByTestId("thread-list")).not.toContainText("a chat to forget");
  await expect(here.getByTestId("notice")).toHaveCount(0);

  // The other tab moves to the new session at once, and says where its chat went. Either
  // tab may be the one to make the new id; they end up on the same one.
  await expect(there.getByTestId("notice")).toContainText("forgotten in another tab");
  const shortIds = async () =>
    [await here.getByTestId("session-id").textContent(), await there.getByTestId("session-id").textContent()];
  await expect
    .poll(async () => {
      const [a, b] = await shortIds();
      return a === b && a !== before.slice(0, 8);
    })
    .toBe(true);
  expect(await consistentSid(there)).not.toBe(before);
  await expect(there.getByTestId("thread-list")).not.toContainText("a chat to forget");
  await expect(there.getByTestId("not-found")).toBeVisible();

  // Gone from the server, not only from the pages.
  expect((await here.goto(chat))?.status()).toBe(404);
  await waitReady(here);
  await here.goto("/notes");
  await waitReady(here);
  await expect(here.getByTestId("note")).toHaveValue("");
});
