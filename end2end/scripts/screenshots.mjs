// Takes the README's screenshots from a running Confide (the echo assistant, a fresh
// store): `make screenshots` starts one and runs this against it.
import { chromium } from "@playwright/test";

const base = process.argv[2] ?? "http://127.0.0.1:3000";
const out = process.argv[3] ?? "../docs";
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium-headless-shell",
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});

async function send(page, text) {
  const composer = page.getByTestId("composer");
  await composer.fill(text);
  await composer.press("Enter");
  await page
    .locator("[data-testid=message][data-role=assistant]")
    .last()
    .and(page.locator("[data-status=done]"))
    .waitFor({ timeout: 60_000 });
}

async function ready(page, path = "/") {
  await page.goto(base + path);
  await page.locator(".app-shell[data-session-state=ready]").waitFor();
}

async function session(options, theme) {
  const context = await browser.newContext({ ...options, colorScheme: theme });
  const page = await context.newPage();
  await ready(page);
  // Several chats in the sidebar, the markdown sample last so it is the one shown.
  for (const text of [
    "Plan a three-day trip to Lisbon",
    "Explain ownership in Rust",
    "Summarise this meeting",
    "/markdown",
  ]) {
    await ready(page);
    await send(page, text);
  }
  if (options.isMobile) await page.getByTestId("menu").click();
  await page.getByRole("button", { name: "Rename chat" }).first().click();
  const title = page.getByRole("textbox", { name: "Chat title" });
  await title.fill("Markdown, tables and code");
  await title.press("Enter");
  await page.getByTestId("thread-list").getByText("Markdown, tables and code").waitFor();
  if (options.isMobile) {
    await page.keyboard.press("Escape");
    await page.locator("#sidebar").waitFor({ state: "hidden" });
  }
  await page.getByTestId("composer").focus();
  await page.mouse.move(0, 0);
  return { context, page };
}

const wide = { viewport: { width: 1280, height: 800 } };
for (const theme of ["light", "dark"]) {
  const { context, page } = await session(wide, theme);
  await page.screenshot({ path: `${out}/chat-${theme}.png` });
  await context.close();
}

const phone = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};
{
  const { context, page } = await session(phone, "light");
  await page.screenshot({ path: `${out}/phone-chat.png` });
  await page.getByTestId("menu").click();
  await page.locator("#sidebar").waitFor({ state: "visible" });
  await page.waitForTimeout(400); // the drawer's slide-in
  await page.screenshot({ path: `${out}/phone-chats.png` });
  await context.close();
}
await browser.close();
