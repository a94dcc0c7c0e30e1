import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

const PNG_1X1 = Buffer.from(
  "89504E470D0A1A0A0000000D49484452000000010000000108060000001F15C4890000000D49444154789C63F8CFC0F01F0005000" +
    "1FF89993D1D0000000049454E44AE426082",
  "hex",
);

const assistant = (page: Page) => page.locator("[data-testid=message][data-role=assistant]");
const userMsgs = (page: Page) => page.locator("[data-testid=message][data-role=user]");

async function attach(page: Page, files: { name: string; mimeType: string; buffer: Buffer }[]) {
  await page.getByTestId("attach-input").setInputFiles(files);
}

test("two people on one address each upload, see and download only their own files", async ({ browser }) => {
  const people = await Promise.all(
    ["alice", "bob"].map(async (who) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await openReady(page);
      return { who, context, page };
    }),
  );
  const urls: Record<string, string> = {};
  for (const { who, page } of people) {
    await attach(page, [
      { name: `${who}-notes.txt`, mimeType: "text/plain", buffer: Buffer.from(`${who}'s private notes`) },
      { name: `${who}.png`, mimeType: "image/png", buffer: PNG_1X1 },
    ]);
    await expect(page.getByTestId("chip-ready")).toHaveCount(2, { timeout: 15_000 });
    // A message may be only files.
    await expect(page.getByTestId("send")).toBeEnabled();
    await page.getByTestId("send").click();
    await expect(page.getByTestId("chip")).toHaveCount(0);
    const sent = userMsgs(page).last();
    await expect(sent.getByTestId("file-card")).toContainText(`${who}-notes.txt`);
    // Files alone: no empty line of text above them.
    await expect(sent.locator(".text")).toBeHidden();
    const thumb = sent.getByTestId("file-image").locator("img");
    await expect(thumb).toBeVisible();
    // The picture really loaded through the guarded endpoint.
    await expect.poll(() => thumb.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(1);
    await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
    await expect(assistant(page).last()).toContainText("I received 2 files");
    await expect(assistant(page).last()).toContainText(`${who}-notes.txt`);

    const download = page.waitForEvent("download");
    await sent.getByTestId("file-card").click();
    const file = await download;
    expect(file.suggestedFilename()).toBe(`${who}-notes.txt`);
    const path = await file.path();
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(path, "utf8")).toBe(`${who}'s private notes`);
    urls[who] = (await sent.getByTestId("file-card").getAttribute("href")) ?? "";
    expect(urls[who]).toMatch(/^\/api\/files\/[0-9a-f-]{36}$/);
  }
  // Each asks for the other's file by its exact address: not found, as if it never was.
  const [alice, bob] = people;
  for (const [me, other] of [
    [alice, bob],
    [bob, alice],
  ] as const) {
    const res = await me.page.request.get(urls[other.who]);
    expect(res.status()).toBe(404);
    expect(await res.text()).not.toContain("private notes");
    const own = await me.page.request.get(urls[me.who]);
    expect(own.status()).toBe(200);
  }
  // And neither page shows anything of the other's.
  await expect(alice.page.locator("body")).not.toContainText("bob");
  await expect(bob.page.locator("body")).not.toContainText("alice");
  for (const p of people) await p.context.close();
});

test("files dropped or pasted become chips; a chip can be taken off before sending", async ({ page }) => {
  await openReady(page);
  // A file dropped on the conversation, away from the composer, as the browser delivers it:
  // the page takes it (a browser left alone would open the file in place of the chat).
  const taken = await page.getByTestId("empty-state").evaluate((target) => {
    const dt = new DataTransfer();
    dt.items.add(new File(["dropped text"], "dropped.txt", { type: "text/plain" }));
    target.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
    const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true });
    target.dispatchEvent(drop);
    return drop.defaultPrevented;
  });
  expect(taken).toBe(true);
  // A pasted screenshot.
  await page.getByTestId("composer").evaluate((el, hex) => {
    const bytes = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "image.png", { type: "image/png" }));
    el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
  }, PNG_1X1.toString("hex"));
  await expect(page.getByTestId("chip")).toHaveCount(2);
  await expect(page.getByTestId("chip-ready")).toHaveCount(2, { timeout: 15_000 });
  await page.getByRole("button", { name: "Remove dropped.txt" }).click();
  await expect(page.getByTestId("chip")).toHaveCount(1);
  await expect(page.getByTestId("composer")).toBeFocused();
  await page.getByTestId("composer").fill("what is in the picture?");
  await page.getByTestId("composer").press("Enter");
  const sent = userMsgs(page).last();
  await expect(sent).toContainText("what is in the picture?");
  await expect(sent.getByTestId("file-image")).toHaveCount(1);
  await expect(sent.getByTestId("file-card")).toHaveCount(0);
  await expect(assistant(page).last()).toContainText("I received 1 file", { timeout: 15_000 });
  await expect(assistant(page).last()).not.toContainText("dropped.txt");
  await page.screenshot({ path: test.info().outputPath("files-1280.png") });
});

test("a refused file says why, and sending waits for nothing it cannot send", async ({ page }) => {
  await openReady(page);
  await attach(page, [{ name: "tool.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ\x90\x00\x03\x00\x00\x00\x04\x00", "latin1") }]);
  await expect(page.getByTestId("chip-error")).toContainText("not accepted", { timeout: 15_000 });
  // Only a refused file: nothing to send.
  await expect(page.getByTestId("send")).toBeDisabled();
  await page.getByTestId("chip-remove").click();
  await expect(page.getByTestId("chip")).toHaveCount(0);
});

test("a long file name stays inside a phone's width", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await openReady(page);
  const name = `${"a-very-long-file-name-".repeat(8)}.txt`;
  await attach(page, [{ name, mimeType: "text/plain", buffer: Buffer.from("long") }]);
  await expect(page.getByTestId("chip-ready")).toHaveCount(1, { timeout: 15_000 });
  await page.getByTestId("send").click();
  await expect(userMsgs(page).last().getByTestId("file-card")).toBeVisible();
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: test.info().outputPath("files-390.png") });
});

test("an upload shows its progress and can be taken off while it runs", async ({ page }) => {
  await openReady(page);
  // Hold the upload on its way, as a slow connection would.
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  await page.route("**/api/files", async (route) => {
    await held;
    await route.continue().catch(() => {});
  });
  await attach(page, [{ name: "slow.txt", mimeType: "text/plain", buffer: Buffer.from("slow".repeat(1000)) }]);
  const chip = page.getByTestId("chip");
  await expect(chip.locator("progress")).toBeVisible();
  await expect(page.getByTestId("send")).toBeDisabled();
  await page.getByRole("button", { name: "Remove slow.txt" }).click();
  await expect(chip).toHaveCount(0);
  release();
  await page.unroute("**/api/files");
  // Nothing came of it: a message sent now carries no file.
  await page.getByTestId("composer").fill("no files");
  await page.getByTestId("composer").press("Enter");
  await expect(assistant(page).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(userMsgs(page).last().getByTestId("files")).toHaveCount(0);
});
