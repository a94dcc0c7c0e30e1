import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { openReady, storedSid, waitReady } from "./helpers";

const assistant = (page: Page) => page.locator('[data-testid=message][data-role=assistant]');
const userMsgs = (page: Page) => page.locator('[data-testid=message][data-role=user]');

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable();
  await composer.fill(text);
  await composer.press("Enter");
}

test("a reply streams in, survives a reload, and keeps its URL", async ({ page }) => {
  await openReady(page);
  await expect(page.getByTestId("empty-state")).toBeVisible();
  // What the reply shows as it changes, recorded by the page itself: a busy test runner can
  // look too late to catch a short stream by polling.
  await page.evaluate(() => {
    const w = window as unknown as { shown: string[] };
    w.shown = [];
    new MutationObserver(() => {
      const all = document.querySelectorAll("[data-testid=message][data-role=assistant]");
      const reply = all[all.length - 1];
      if (!reply) return;
      const stop = document.querySelector("[data-testid=stop]") ? "stop" : "-";
      const now = `${reply.getAttribute("data-status")} ${stop} ${reply.textContent?.length ?? 0}`;
      if (w.shown[w.shown.length - 1] !== now) w.shown.push(now);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const words = Array.from({ length: 40 }, (_, i) => `w${i + 1}`).join(" ");
  await send(page, words);

  await expect(page).toHaveURL(/\/t\/[0-9a-f-]{36}$/);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(page).last()).toContainText("w40");
  // Seen while streaming, with Stop offered: a partial text that grew, then the whole of it.
  const shown = await page.evaluate(() => (window as unknown as { shown: string[] }).shown);
  const streaming = shown.filter((s) => s.startsWith("streaming stop "));
  expect(new Set(streaming).size, shown.join(" | ")).toBeGreaterThan(2);
  expect(shown.findIndex((s) => s.startsWith("done")), shown.join(" | ")).toBeGreaterThan(
    shown.indexOf(streaming[0]),
  );
  await expect(page.getByTestId("thread-list")).toContainText("w1 w2");

  const url = page.url();
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  expect(page.url()).toBe(url);
  await expect(userMsgs(page)).toHaveText([words]);
  await expect(assistant(page).last()).toContainText("w40");
  await page.screenshot({ path: test.info().outputPath("chat.png") });
});

test("stop cancels the reply and keeps the partial text", async ({ page }) => {
  await openReady(page);
  await send(page, "/slow");
  const reply = assistant(page).last();
  await expect(reply).toContainText("word3");
  const stopped = page.waitForResponse((r) => r.url().endsWith("/api/messages/stop"));
  await page.getByTestId("stop").click();
  expect((await stopped).status()).toBe(200);
  await expect(reply).toHaveAttribute("data-status", "stopped");
  await expect(page.getByTestId("composer")).toBeEditable();
  const partial = await reply.locator(".markdown").innerText();
  expect(partial).toContain("Counting slowly");
  expect(partial).not.toContain("word120");
  // The page shows the text the server kept, and nothing more arrives after it.
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "stopped");
  await expect(assistant(page).last().locator(".markdown")).toHaveText(partial);
});

test("another chat opens while a reply streams in this one, and back again", async ({ page }) => {
  await openReady(page);
  await send(page, "the quiet chat");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const quiet = new URL(page.url()).pathname;
  await page.getByTestId("new-chat").click();
  await send(page, "/slow");
  await expect(page).not.toHaveURL(new RegExp(`${quiet}$`));
  await expect(page).toHaveURL(/\/t\//);
  const busy = new URL(page.url()).pathname;
  await expect(assistant(page).last()).toContainText("word3");
  // Each way more than once: every word of the reply is news the page takes in meanwhile.
  for (let i = 0; i < 3; i++) {
    await page.locator(`#sidebar a[href='${quiet}']`).click();
    await expect(userMsgs(page)).toHaveText(["the quiet chat"]);
    await page.locator(`#sidebar a[href='${busy}']`).click();
    await expect(userMsgs(page)).toHaveText(["/slow"]);
  }
  await expect(assistant(page).last()).toHaveAttribute("data-status", "streaming");
  await page.getByTestId("stop").click();
  await expect(assistant(page).last()).toHaveAttribute("data-status", "stopped");
});

test("a message sent in a chat whose answer is still on its way is shown with its reply", async ({ page, request }) => {
  await openReady(page);
  await send(page, "chat one");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const one = new URL(page.url()).pathname;
  await page.getByTestId("new-chat").click();
  await send(page, "chat two");
  await expect(page).not.toHaveURL(new RegExp(`${one}$`));
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  // Chat one's answer is read by the server at once but reaches the page only after a
  // message has been sent there and answered: it is older than what the page knows.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/api/threads/get", async (route) => {
    const answer = await route.fetch();
    await released;
    // The page may have given up on it meanwhile (a newer request of the same data).
    await route.fulfill({ response: answer }).catch(() => {});
  });
  await page.locator(`#sidebar a[href='${one}']`).click();
  await expect(page).toHaveURL(new RegExp(`${one}$`));
  const sent = page.waitForResponse((r) => r.url().endsWith("/api/messages/send"));
  await send(page, "asked while it loaded");
  expect((await sent).status()).toBe(200);
  // Asked from outside the page (its own requests of the chat are held): the reply is done.
  const sid = await storedSid(page);
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
  await expect
    .poll(async () => {
      const res = await request.post("/api/threads/get", {
        headers: { "x-confide-session": sid!, "content-type": "application/json", cookie },
        data: { thread_id: one.split("/").pop() },
      });
      const t = (await res.json()) as { messages: { status: string }[] };
      return t.messages.map((m) => m.status).join(" ");
    }, { timeout: 15_000 })
    .toBe("done done done done");
  // The page has taken in the news of that reply too: the sidebar put chat one first.
  await expect(page.locator("#sidebar [data-testid=thread-item] a").first()).toHaveAttribute("href", one);
  release();
  await expect(userMsgs(page)).toHaveText(["chat one", "asked while it loaded"]);
  await expect(assistant(page)).toHaveCount(2);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done");
  await expect(assistant(page).last()).toContainText("asked while it loaded");
  await page.unroute("**/api/threads/get");
});

test("markup in a message is shown as text, never run", async ({ page }) => {
  await openReady(page);
  const hostile = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
  await send(page, hostile);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(userMsgs(page).last()).toHaveText(hostile);
  await expect(assistant(page).last()).toContainText("<script>window.__pwned = 1</script>");
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(await page.locator(".messages script, .messages img").count()).toBe(0);
});

test("a web address in a reply is a link that opens apart from the chat", async ({ page }) => {
  await openReady(page);
  await send(page, "Docs at https://example.com/docs?a=1&b=2. Or `https://example.com/not-a-link`.");
  const reply = assistant(page).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const links = reply.locator(".markdown a");
  await expect(links).toHaveCount(1);
  await expect(links).toHaveText("https://example.com/docs?a=1&b=2");
  await expect(links).toHaveAttribute("href", "https://example.com/docs?a=1&b=2");
  await expect(links).toHaveAttribute("target", "_blank");
  await expect(links).toHaveAttribute("rel", /noopener/);
  // The sentence's full stop stays text, and so does the address in code.
  await expect(reply.locator(".markdown")).toContainText("b=2. Or https://example.com/not-a-link.");
});

test("a reply's headings order it without outsizing the page", async ({ page }) => {
  await openReady(page);
  await send(page, "# Top\n\nSome text.\n\n## Part\n\n### Detail");
  const reply = assistant(page).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const size = (sel: string) =>
    reply.locator(`.markdown ${sel}`).evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
  const [h1, h2, h3, text] = [await size("h1"), await size("h2"), await size("h3"), await size("p")];
  expect(h1).toBeGreaterThan(h2);
  expect(h2).toBeGreaterThan(h3);
  expect(h3).toBeGreaterThan(text);
  expect(h1, "an h1 at most 1.5 times the text").toBeLessThanOrEqual(text * 1.5);
});

test("two browsers never see each other's threads, even by URL", async ({ browser }) => {
  const a = await browser.newContext();
  const b = await browser.newContext();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await openReady(pa);
  await send(pa, "alpha secret words");
  await expect(pa).toHaveURL(/\/t\//);
  await expect(assistant(pa).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const url = pa.url();

  await openReady(pb);
  await expect(pb.getByTestId("thread-list")).not.toContainText("alpha");
  await pb.goto(url);
  await expect(pb.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(pb.getByText("Chat not found")).toBeVisible();
  expect(await pb.content()).not.toContain("alpha secret words");
  await a.close();
  await b.close();
});

test("a path that names no chat says so instead of offering to start one", async ({ page }) => {
  await openReady(page, "/t/not-a-chat");
  await expect(page.getByTestId("not-found")).toBeVisible();
  await expect(page.getByTestId("empty-state")).toHaveCount(0);
  // The composer still starts a new chat, which moves the page to it.
  await send(page, "a fresh start");
  await expect(page).toHaveURL(/\/t\/[0-9a-f-]{36}$/);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
});

test("what the assistant keeps for one browser, another browser on the same address never gets", async ({ browser }) => {
  const a = await browser.newContext();
  const b = await browser.newContext();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await openReady(pa);
  await send(pa, "/remember the gate code is 4711");
  await expect(assistant(pa).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(pa).last()).toContainText("the gate code is 4711");

  await openReady(pb);
  await send(pb, "/recall");
  await expect(assistant(pb).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(pb).last()).toContainText("has not asked me to remember anything");
  expect(await pb.content()).not.toContain("4711");

  // The first browser's note outlives its chat: a new chat recalls it.
  await pa.getByTestId("new-chat").click();
  await send(pa, "/recall");
  await expect(assistant(pa).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(pa).last()).toContainText("the gate code is 4711");
  await a.close();
  await b.close();
});

test("two tabs of one browser stay in sync", async ({ context }) => {
  const first = await context.newPage();
  await openReady(first);
  const second = await context.newPage();
  await openReady(second);

  await send(first, "hello from the first tab");
  await expect(first).toHaveURL(/\/t\//);
  // The second tab learns of the new thread without a reload.
  await expect(second.getByTestId("thread-list")).toContainText("hello from the first tab");
  await second.goto(first.url());
  await expect(second.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");

  await expect(assistant(first).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await send(first, "second message");
  await expect(userMsgs(second).last()).toHaveText("second message");
  await expect(assistant(second).last()).toContainText("second message", { timeout: 15_000 });
});

test("nine tabs of one browser all load over plain HTTP, and stay live when the first one goes", async ({
  context,
  baseURL,
}) => {
  test.setTimeout(180_000);
  // Over plain HTTP/1.1 a browser keeps at most six connections to a host: were each tab to
  // hold a live stream of its own, the seventh would never load.
  expect(baseURL).toMatch(/^http:\/\//);
  const tabs: Page[] = [];
  for (let i = 0; i < 9; i++) {
    const tab = await context.newPage();
    await openReady(tab);
    tabs.push(tab);
  }
  // The last tab's reply streams in through the first tab, which holds the one stream.
  const last = tabs[8];
  await send(last, "from the ninth tab");
  await expect(last).toHaveURL(/\/t\//);
  await expect(assistant(last).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(last).last()).toContainText("from the ninth tab");
  for (const tab of tabs.slice(0, 8)) {
    await expect(tab.getByTestId("thread-list")).toContainText("from the ninth tab");
  }

  // The first tab goes, and with it the stream: another tab opens it for all of them.
  await tabs[0].close();
  const second = tabs[1];
  await send(second, "after the first tab closed");
  await expect(second).toHaveURL(/\/t\//);
  await expect(assistant(second).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(second).last()).toContainText("after the first tab closed");
  await expect(last.getByTestId("thread-list")).toContainText("after the first tab closed");
  for (const tab of tabs.slice(1)) await tab.close();
});

test("the tab holding the live stream reloads mid-reply, and the other tab's reply still ends", async ({
  context,
}) => {
  const holder = await context.newPage();
  await openReady(holder);
  const other = await context.newPage();
  await openReady(other);
  const words = Array.from({ length: 60 }, (_, i) => `r${i + 1}`).join(" ");
  await send(other, words);
  await expect(assistant(other).last()).toHaveAttribute("data-status", "streaming", { timeout: 15_000 });
  // The stream passes to the other tab while the reply runs, and back is not needed.
  await holder.reload();
  await waitReady(holder);
  await expect(assistant(other).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(other).last()).toContainText("r60");
  await holder.goto(new URL(other.url()).pathname);
  await waitReady(holder);
  await expect(assistant(holder).last()).toContainText("r60");
  // The reloaded tab follows: a message from it streams into the other tab too.
  await send(holder, "after the reload");
  await expect(assistant(other).last()).toContainText("after the reload", { timeout: 15_000 });
  await expect(assistant(other).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
});

test("feedback, edit and regenerate", async ({ page }) => {
  await openReady(page);
  await send(page, "first question");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await page.getByTestId("rate-up").click();
  await expect(page.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "true");

  await userMsgs(page).first().hover();
  await userMsgs(page).first().getByRole("button", { name: "Edit message" }).click();
  await page.getByRole("textbox", { name: "Edit message" }).fill("edited question");
  await page.getByRole("button", { name: "Save & ask again" }).click();
  await expect(userMsgs(page)).toHaveText(["edited question"]);
  await expect(assistant(page)).toHaveCount(1);
  await expect(assistant(page).last()).toContainText("edited question", { timeout: 15_000 });

  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await page.getByTestId("rate-up").click();
  await expect(page.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "true");
  const regenerated = page.waitForResponse((r) => r.url().endsWith("/api/messages/regenerate"));
  await page.getByTestId("regenerate").click();
  expect((await regenerated).status()).toBe(200);
  await expect(assistant(page)).toHaveCount(1);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  // A new reply, so not the rated one.
  await expect(page.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "false");
  await expect(assistant(page).last()).toContainText("edited question");
});

test("a chat deleted in another tab is left for a new one, and the draft stays", async ({ context }) => {
  const here = await context.newPage();
  await openReady(here);
  await send(here, "soon deleted");
  await expect(here).toHaveURL(/\/t\//);
  await expect(assistant(here).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const there = await context.newPage();
  await openReady(there, new URL(here.url()).pathname);
  await expect(userMsgs(there)).toHaveText(["soon deleted"]);

  await here.getByTestId("composer").fill("a draft worth keeping");
  there.once("dialog", (d) => void d.accept());
  await there.getByTestId("delete-thread").click();
  await expect(there).toHaveURL(/:\d+\/$/);

  await expect(here).toHaveURL(/:\d+\/$/);
  await expect(here.getByTestId("empty-state")).toBeVisible();
  await expect(here.getByTestId("thread-list")).not.toContainText("soon deleted");
  await expect(here.getByTestId("composer")).toHaveValue("a draft worth keeping");
  await here.getByTestId("composer").press("Enter");
  await expect(here).toHaveURL(/\/t\//);
  await expect(userMsgs(here)).toHaveText(["a draft worth keeping"]);
  await expect(assistant(here).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
});

test("sending into a chat deleted unseen keeps the message for a new chat", async ({ context }) => {
  const there = await context.newPage();
  await openReady(there);
  await send(there, "deleted unseen");
  await expect(there).toHaveURL(/\/t\//);
  await expect(assistant(there).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const path = new URL(there.url()).pathname;

  const here = await context.newPage();
  // No live events reach this tab, neither from a stream of its own nor passed on by the
  // other tab, so it learns of the deletion only from the answer.
  await here.addInitScript(() => {
    Object.defineProperty(window, "BroadcastChannel", { value: undefined });
  });
  await here.route("**/api/events", (route) => route.abort());
  await openReady(here, path);
  await expect(userMsgs(here)).toHaveText(["deleted unseen"]);
  there.once("dialog", (d) => void d.accept());
  await there.getByTestId("delete-thread").click();
  await expect(there).toHaveURL(/:\d+\/$/);

  await send(here, "a message worth keeping");
  await expect(here).toHaveURL(/:\d+\/$/);
  await expect(here.getByRole("alert")).toContainText("deleted");
  await expect(here.getByTestId("composer")).toHaveValue("a message worth keeping");
  await expect(here.getByTestId("empty-state")).toBeVisible();
  await here.getByTestId("composer").press("Enter");
  await expect(here).toHaveURL(/\/t\//);
  await expect(userMsgs(here)).toHaveText(["a message worth keeping"]);
});

test("only the latest reply offers Regenerate", async ({ page }) => {
  await openReady(page);
  await send(page, "first question");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(page.getByTestId("regenerate")).toHaveCount(1);
  await send(page, "second question");
  await expect(assistant(page)).toHaveCount(2);
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(page.getByTestId("regenerate")).toHaveCount(1);
  await expect(assistant(page).last().getByTestId("regenerate")).toBeVisible();
});

test("an edit in progress survives changes made in another tab", async ({ context }) => {
  const here = await context.newPage();
  await openReady(here);
  await send(here, "a question to edit");
  await expect(here).toHaveURL(/\/t\//);
  await expect(assistant(here).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const there = await context.newPage();
  await openReady(there, new URL(here.url()).pathname);

  await userMsgs(here).first().hover();
  await userMsgs(here).first().getByRole("button", { name: "Edit message" }).click();
  await here.getByRole("textbox", { name: "Edit message" }).fill("half-written edit");
  await there.getByTestId("rate-up").click();
  // The rating reaches this tab, and the edit box with its text stays open.
  await expect(here.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "true");
  await expect(here.getByRole("textbox", { name: "Edit message" })).toHaveValue("half-written edit");
});

test("a reply that ends before the event stream connects is still shown finished", async ({ page }) => {
  // As on a busy machine, where the page's event stream connects after the first reply ended.
  let connect!: () => void;
  const connected = new Promise<void>((resolve) => (connect = resolve));
  await page.route("**/api/events", async (route) => {
    await connected;
    await route.continue();
  });
  await openReady(page);
  await send(page, "sent before the stream");
  await expect(page).toHaveURL(/\/t\//);
  const threadId = new URL(page.url()).pathname.split("/").pop();
  const sid = await storedSid(page);
  await expect
    .poll(async () => {
      const res = await page.request.post("/api/threads/get", {
        headers: { "x-confide-session": sid!, "content-type": "application/json" },
        data: { thread_id: threadId },
      });
      const thread = (await res.json()) as { messages: { status: string }[] };
      return thread.messages.at(-1)?.status;
    })
    .toBe("done");
  connect();
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done");
  await expect(assistant(page).last()).toContainText("sent before the stream");
  await expect(page.getByTestId("composer")).toBeEditable();
});

test("the composer keeps focus from one message to the next", async ({ page }) => {
  await openReady(page);
  const composer = page.getByTestId("composer");
  await composer.click();
  // The first message opens its chat (a new address); the others stay in it.
  for (const [i, text] of ["opening words", "and more", "and the last"].entries()) {
    await page.keyboard.type(text);
    await page.keyboard.press("Enter");
    await expect(page).toHaveURL(/\/t\//);
    await expect(assistant(page)).toHaveCount(i + 1);
    await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
    await expect(composer).toBeEditable();
    // The person goes on typing without reaching for the mouse.
    await expect(composer).toBeFocused();
  }
  await expect(userMsgs(page)).toHaveText(["opening words", "and more", "and the last"]);
});

test("a message sent in another tab moves its chat to the top of this tab's list", async ({ context }) => {
  const items = (p: Page) => p.locator("#sidebar [data-testid=thread-item] a");
  const here = await context.newPage();
  await openReady(here);
  await send(here, "the older chat");
  await expect(assistant(here).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const older = new URL(here.url()).pathname;
  await here.getByTestId("new-chat").click();
  await send(here, "the newer chat");
  await expect(here).not.toHaveURL(new RegExp(`${older}$`));
  await expect(assistant(here).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const newer = new URL(here.url()).pathname;
  await expect(items(here)).toHaveCount(2);
  await expect(items(here).first()).toHaveAttribute("href", newer);

  const there = await context.newPage();
  await openReady(there, older);
  await send(there, "back in the older chat");
  await expect(assistant(there).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  // Only the message events said so: a turn sends no event about its chat.
  await expect(items(here).first()).toHaveAttribute("href", older);
  await expect(items(here)).toHaveCount(2);
  await expect(here).toHaveURL(new RegExp(`${newer}$`));
  await expect(userMsgs(here)).toHaveText(["the newer chat"]);
  // The list read afresh agrees.
  await here.reload();
  await waitReady(here);
  await expect(items(here).first()).toHaveAttribute("href", older);
});

test("a tab opened mid-reply follows the reply as it grows, and ends with the text the other tab shows", async ({ context }) => {
  const first = await context.newPage();
  await openReady(first);
  // Long enough (80 s) to be still streaming however slowly the second tab opens on a busy
  // machine; stopped once the second tab has followed it.
  await send(first, Array.from({ length: 2_000 }, (_, i) => `w${i}`).join(" "));
  await expect(assistant(first).last()).toHaveAttribute("data-status", "streaming", { timeout: 15_000 });
  // Opened now, it missed the reply's start: the deltas that carry only a change do not
  // apply to what it read, until a whole one comes.
  const second = await context.newPage();
  await openReady(second, new URL(first.url()).pathname);
  const reply = assistant(second).last();
  await expect(reply).toHaveAttribute("data-status", "streaming");
  const lengths = new Set<number>();
  await expect
    .poll(
      async () => {
        lengths.add(((await reply.textContent()) ?? "").length);
        return lengths.size;
      },
      { timeout: 30_000, intervals: [100] },
    )
    .toBeGreaterThanOrEqual(3);
  await expect(reply).toHaveAttribute("data-status", "streaming");

  const stopped = first.waitForResponse((r) => r.url().endsWith("/api/messages/stop"));
  await first.getByTestId("stop").click();
  expect((await stopped).status()).toBe(200);
  await expect(assistant(first).last()).toHaveAttribute("data-status", "stopped");
  await expect(reply).toHaveAttribute("data-status", "stopped");
  const kept = await assistant(first).last().locator(".markdown").innerText();
  expect(kept.length).toBeGreaterThan(0);
  await expect(reply.locator(".markdown")).toHaveText(kept);
});

test("a rename in progress survives a message sent from another tab", async ({ context }) => {
  const here = await context.newPage();
  await openReady(here);
  await send(here, "chat to rename");
  await expect(assistant(here).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const there = await context.newPage();
  await openReady(there);

  await here.getByRole("button", { name: "Rename chat" }).click();
  await here.getByRole("textbox", { name: "Chat title" }).fill("half-typed title");
  await send(there, "another chat");
  // The new chat reaches this tab's list, and the rename box with its text stays open.
  await expect(here.getByTestId("thread-item")).toHaveCount(2);
  await expect(here.getByRole("textbox", { name: "Chat title" })).toHaveValue("half-typed title");
  await here.getByRole("textbox", { name: "Chat title" }).press("Enter");
  await expect(here.getByTestId("thread-list")).toContainText("half-typed title");
  await expect(there.getByTestId("thread-list")).toContainText("half-typed title");
});

test("a rating is plainly pressed, invites an optional comment, and keeps it", async ({ page }) => {
  await openReady(page);
  await send(page, "rate me");
  const reply = assistant(page).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const up = reply.getByTestId("rate-up");
  const down = reply.getByTestId("rate-down");
  await page.mouse.move(0, 0);
  const look = (el: typeof up) =>
    el.evaluate((b) => {
      const s = getComputedStyle(b);
      const row = getComputedStyle(b.parentElement!);
      return { bg: s.backgroundColor, color: s.color, rowOpacity: row.opacity };
    });
  const before = await look(up);

  await up.click();
  await expect(up).toHaveAttribute("aria-pressed", "true");
  await expect(down).toHaveAttribute("aria-pressed", "false");
  // Pressed reads at a glance, not only on hover: filled, and its row not dimmed.
  await page.mouse.move(0, 0);
  await page.getByTestId("feedback-comment").blur();
  const pressed = await look(up);
  expect(pressed.bg).not.toBe(before.bg);
  expect(pressed.bg).not.toBe("rgba(0, 0, 0, 0)");
  expect(pressed.rowOpacity).toBe("1");
  expect((await look(down)).bg).toBe(before.bg);

  // The comment field opens with the focus in it; Esc closes it and the focus goes back.
  const field = page.getByTestId("feedback-comment");
  await field.focus();
  const axe = await new AxeBuilder({ page }).include("[data-testid=feedback-form]").analyze();
  expect(axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical")).toEqual([]);
  await expect(page.getByText("What was good? (optional)")).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(field).toHaveCount(0);
  await expect(reply.getByTestId("rate-up")).toBeFocused();
  await expect(reply).toHaveAttribute("data-status", "done");

  // Down instead: a new invitation; the comment is sent with Enter and kept.
  await reply.getByTestId("rate-down").click();
  await expect(reply.getByTestId("rate-down")).toHaveAttribute("aria-pressed", "true");
  await expect(reply.getByTestId("rate-up")).toHaveAttribute("aria-pressed", "false");
  await expect(page.getByText("What went wrong? (optional)")).toBeVisible();
  await expect(page.getByTestId("feedback-comment")).toBeFocused();
  await page.keyboard.type("too short");
  const saved = page.waitForResponse((r) => r.url().endsWith("/api/messages/feedback"));
  await page.keyboard.press("Enter");
  expect((await saved).status()).toBe(200);
  await expect(reply.getByTestId("feedback-note")).toHaveText("Your comment: too short");
  await expect(reply.getByTestId("rate-down")).toBeFocused();

  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  const again = assistant(page).last();
  await expect(again.getByTestId("rate-down")).toHaveAttribute("aria-pressed", "true");
  await expect(again.getByTestId("feedback-note")).toHaveText("Your comment: too short");

  // Pressing it again takes the rating, and its comment, back.
  await again.getByTestId("rate-down").click();
  await expect(again.getByTestId("rate-down")).toHaveAttribute("aria-pressed", "false");
  await expect(again.getByTestId("rate-down")).toBeFocused();
  await expect(again.getByTestId("feedback-note")).toHaveCount(0);
  await expect(page.getByTestId("feedback-comment")).toHaveCount(0);
});

test("a change from another tab updates a reply in place: the focus on its buttons stays", async ({ context }) => {
  const here = await context.newPage();
  await openReady(here);
  await send(here, "a reply to keep the focus on");
  await expect(here).toHaveURL(/\/t\//);
  const reply = assistant(here).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const there = await context.newPage();
  await openReady(there, new URL(here.url()).pathname);

  await reply.getByRole("button", { name: "Copy reply" }).focus();
  await there.getByTestId("rate-down").click();
  // The rating arrives here as a new state of the reply; the reply shows it, and the
  // button the person was on keeps the focus (a rebuilt reply would drop it to <body>).
  await expect(reply.getByTestId("rate-down")).toHaveAttribute("aria-pressed", "true");
  await expect(reply.getByRole("button", { name: "Copy reply" })).toBeFocused();
  await there.getByTestId("rate-down").click();
  await expect(reply.getByTestId("rate-down")).toHaveAttribute("aria-pressed", "false");
  await expect(reply.getByRole("button", { name: "Copy reply" })).toBeFocused();
});

test("a reply's steps show live, open to their input and output, and survive a reload", async ({ page, context }) => {
  await openReady(page);
  await send(page, "/steps one two three");
  await expect(page).toHaveURL(/\/t\/[0-9a-f-]{36}$/);
  const reply = assistant(page).last();
  const tool = reply.locator("[data-testid=step][data-step=word_count]");
  await expect(tool).toBeVisible();
  await tool.locator(":scope > summary").click();
  await expect(tool.getByTestId("step-input").first()).toHaveText('{"text":"one two three"}');
  // A second tab follows the same reply.
  const other = await context.newPage();
  await openReady(other, new URL(page.url()).pathname);
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(reply.locator(".markdown")).toHaveText("I counted 3 words.");
  await expect(tool).toHaveAttribute("open", "");
  await expect(tool).toHaveAttribute("data-status", "done");
  await expect(tool.locator(":scope > .step-body > [data-testid=step-output]")).toHaveText("3");
  const split = tool.locator("[data-testid=step][data-step=split]");
  await expect(split).toHaveAttribute("data-status", "done");
  const otherReply = assistant(other).last();
  await expect(otherReply).toHaveAttribute("data-status", "done");
  await expect(otherReply.getByTestId("step")).toHaveCount(3);
  await expect(otherReply.locator("[data-testid=step]:not([data-status=done])")).toHaveCount(0);
  await page.screenshot({ path: test.info().outputPath("steps.png") });

  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  const again = assistant(page).last();
  await expect(again.getByTestId("step")).toHaveCount(3);
  await expect(again.locator("[data-testid=step][data-step=word_count]")).toHaveAttribute("data-status", "done");
  // Folded after a reload; the keyboard opens it.
  const summary = again.locator("[data-testid=step][data-step=plan] > summary");
  await summary.focus();
  await page.keyboard.press("Enter");
  await expect(again.locator("[data-step=plan] [data-testid=step-output]")).toHaveText(
    "Split the text into words, then count them.",
  );
});

test("Stop ends a running tool step as stopped; an open step stays open as it changes", async ({ page }) => {
  await openReady(page);
  await send(page, "/steps slow");
  const reply = assistant(page).last();
  const wait = reply.locator("[data-testid=step][data-step=wait]");
  await expect(wait).toHaveAttribute("data-status", "running");
  await wait.locator(":scope > summary").click();
  await expect(wait.getByTestId("step-input")).toHaveText("until Stop is pressed");
  await page.getByTestId("stop").click();
  await expect(reply).toHaveAttribute("data-status", "stopped");
  await expect(wait).toHaveAttribute("data-status", "stopped");
  await expect(wait, "the block was updated in place, not rebuilt folded").toHaveAttribute("open", "");
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(assistant(page).last().locator("[data-step=wait]")).toHaveAttribute("data-status", "stopped");
});

test("a reply's buttons answer a click once, and every tab sees the choice", async ({ page, context }) => {
  await openReady(page);
  await send(page, "/actions");
  const offer = assistant(page).first();
  await expect(offer).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const buttons = offer.getByTestId("action");
  await expect(buttons).toHaveText(["Red", "Green", "Blue"]);
  const other = await context.newPage();
  await openReady(other, new URL(page.url()).pathname);
  await expect(assistant(other).first().getByTestId("action")).toHaveCount(3);

  // Keyboard only: Tab reaches the buttons, Enter presses one.
  await buttons.nth(1).focus();
  await page.keyboard.press("Enter");
  const answer = assistant(page).nth(1);
  await expect(answer).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(answer.locator(".markdown")).toHaveText("You picked green.");
  await expect(buttons).toHaveCount(0);
  await expect(page.getByTestId("composer")).toBeFocused();
  await expect(assistant(other).nth(1).locator(".markdown")).toHaveText("You picked green.");
  await expect(assistant(other).first().getByTestId("action")).toHaveCount(0);

  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(assistant(page)).toHaveCount(2);
  await expect(page.getByTestId("action")).toHaveCount(0);
});

test("a reply asks a question, and the answer lets it go on in every tab", async ({ page, context }) => {
  await openReady(page);
  await send(page, "/ask");
  const question = assistant(page).first();
  await expect(question).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(question.locator(".markdown")).toHaveText(/^Let me ask you something\.\s*What is your name\?\s*$/);
  const other = await context.newPage();
  await openReady(other, new URL(page.url()).pathname);
  await expect(assistant(other).first().locator(".markdown")).toContainText("What is your name?");

  // A reload while the reply waits: the question is still there and still answerable.
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable();
  await composer.fill("Ada");
  await composer.press("Enter");
  const goesOn = assistant(page).nth(1);
  await expect(goesOn).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(goesOn.locator(".markdown")).toHaveText("Nice to meet you, Ada!");
  await expect(userMsgs(page)).toHaveText(["/ask", "Ada"]);
  await expect(assistant(other).nth(1).locator(".markdown")).toHaveText("Nice to meet you, Ada!");
  await expect(composer).toBeEditable();
});

test("profiles and settings are the session's own and shape its replies", async ({ page, browser }) => {
  await openReady(page);
  const profiles = page.getByTestId("profile");
  await expect(profiles).toHaveText(["Echo", "Reverse"]);
  await expect(profiles.first()).toHaveAttribute("aria-pressed", "true");
  await expect(page.getByTestId("starter").first()).toHaveText("Show me what you can render");
  await profiles.nth(1).click();
  await expect(profiles.nth(1)).toHaveAttribute("aria-pressed", "true");
  await expect(page.getByTestId("starter")).toHaveText([
    "Reverse a sentence",
    "Show the work as steps",
    "Offer me buttons to press",
  ]);
  await page.getByTestId("starter").first().click();
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(page).last().locator(".markdown")).toHaveText("four three two one");

  // The panel: Esc leaves without saving; Save keeps the choice, closes, and gives the
  // focus back to its button.
  const open = page.getByTestId("settings-open");
  await open.click();
  await expect(page.getByTestId("setting-profile"), "the panel takes the focus").toBeFocused();
  await page.getByTestId("setting-style").selectOption("whisper");
  await page.keyboard.press("Escape");
  await expect(page.getByTestId("settings")).toHaveCount(0);
  await open.click();
  await expect(page.getByTestId("setting-style")).toHaveValue("plain");
  await expect(page.getByTestId("setting-profile")).toHaveValue("reverse");
  await page.getByTestId("setting-style").selectOption("shout");
  await page.getByTestId("setting-sign").check();
  await page.getByTestId("settings-save").click();
  await expect(page.getByTestId("settings")).toHaveCount(0);
  await expect(open).toBeFocused();
  await send(page, "hello world");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(page).last().locator(".markdown")).toHaveText("WORLD HELLO — echo");

  // Kept by the session: a reload shows the same choice; another browser has its own.
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await page.getByTestId("settings-open").click();
  await expect(page.getByTestId("setting-style")).toHaveValue("shout");
  await expect(page.getByTestId("setting-sign")).toBeChecked();
  const other = await browser.newContext();
  const theirs = await other.newPage();
  await openReady(theirs);
  await expect(theirs.getByTestId("profile").first()).toHaveAttribute("aria-pressed", "true");
  await theirs.getByTestId("settings-open").click();
  await expect(theirs.getByTestId("setting-style")).toHaveValue("plain");
  await expect(theirs.getByTestId("setting-sign")).not.toBeChecked();
  await other.close();
});

test("Export my data downloads every chat of the session as JSON", async ({ page }) => {
  await openReady(page);
  await send(page, "export me");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  // At phone width the footer is in the drawer; the default project is wide enough.
  const downloaded = page.waitForEvent("download");
  await page.getByTestId("export-data").click();
  const download = await downloaded;
  expect(download.suggestedFilename()).toBe("confide-export.json");
  const path = await download.path();
  const text = (await import("node:fs")).readFileSync(path!, "utf8");
  expect(text, "indented for a person to read").toContain('\n  "');
  const data = JSON.parse(text);
  expect(data.threads).toHaveLength(1);
  expect(data.threads[0].messages.map((m: { content: string }) => m.content)).toEqual(["export me", "export me"]);
});

test("a tab whose live stream a newer one took says so, stays quiet, and can take it back", async ({
  page,
  context,
  baseURL,
}) => {
  // The page opens its stream once its session is ready, and on a busy machine it connects
  // late: here, as late as the test lets it. The eight below must come after it.
  let connect!: () => void;
  const connected = new Promise<void>((resolve) => (connect = resolve));
  await page.route("**/api/events", async (route) => {
    await connected;
    await route.continue();
  });
  const pageStream = page.waitForResponse((r) => r.url().endsWith("/api/events") && r.status() === 200);
  await openReady(page);
  connect();
  await pageStream;
  await page.unroute("**/api/events");
  // Eight more streams of this session (the most one session may have) from outside the
  // browser, whose six connections to a host would hold some back over plain HTTP: the
  // page's own stream is the oldest and makes room.
  const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
  const abort = new AbortController();
  const ended: boolean[] = [];
  const texts: string[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${baseURL}/api/events`, { headers: { cookie }, signal: abort.signal });
      expect(res.status).toBe(200);
      ended.push(false);
      texts.push("");
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      void (async () => {
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            texts[i] += decoder.decode(value);
          }
        } catch {
          // aborted at the end of the test
        }
        ended[i] = true;
      })();
    }
    const notice = page.getByTestId("live-paused");
    await expect(notice).toBeVisible({ timeout: 15_000 });
    await expect(notice).toContainText("too many places");
    // The page does not reconnect by itself (a browser retries a dropped stream within 3 s),
    // which would push out the oldest of the eight, and that one the next, and so on.
    await page.waitForTimeout(5_000);
    expect(ended).toEqual(Array(8).fill(false));
    await expect(notice).toBeVisible();

    // Resume takes the stream back: a reply streams into the page again, and the oldest
    // of the eight is the one told it was replaced.
    await page.getByTestId("live-resume").click();
    await expect(notice).toBeHidden();
    await send(page, "back live");
    await expect(assistant(page).last()).toContainText("back live", { timeout: 15_000 });
    await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
    await expect.poll(() => ended[0], { timeout: 10_000 }).toBe(true);
    expect(texts[0]).toContain('"type":"replaced"');
    expect(ended.slice(1)).toEqual(Array(7).fill(false));
  } finally {
    abort.abort();
  }
});
