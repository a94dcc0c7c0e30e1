import { expect, test, type Page } from "@playwright/test";
import { openReady } from "./helpers";

// Runs in the "chromium-tools" project, against the tool-using example app
// (server/examples/tools.rs): the real OpenAI-compatible assistant with a calculator and a
// clock, talking to a scripted stand-in model.

const assistant = (page: Page) => page.locator("[data-testid=message][data-role=assistant]");

async function send(page: Page, text: string) {
  const composer = page.getByTestId("composer");
  await expect(composer).toBeEditable();
  await composer.fill(text);
  await composer.press("Enter");
}

test("the model's tool calls show as steps with their input and result", async ({ page }) => {
  await openReady(page);
  await send(page, "What is 2 + 3 * 4?");
  const reply = assistant(page).last();
  await expect(reply).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(reply.locator(".markdown")).toHaveText("2 + 3 * 4 = 14");
  const calc = reply.locator("[data-testid=step][data-step=calculator]");
  await expect(calc).toHaveAttribute("data-status", "done");
  await expect(calc.locator(".step-kind")).toHaveText("Tool");
  await calc.locator(":scope > summary").click();
  await expect(calc.getByTestId("step-input")).toHaveText('{"expression":"2 + 3 * 4"}');
  await expect(calc.getByTestId("step-output")).toHaveText("14");

  await send(page, "what time is it?");
  const second = assistant(page).nth(1);
  await expect(second).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(second.locator(".markdown")).toHaveText(/^It is \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(UTC\)\.\s*$/);
  await expect(second.locator("[data-step=clock]")).toHaveAttribute("data-status", "done");

  // A tool's failure is shown as one, and the model explains it.
  await send(page, "what is 1 / 0");
  const third = assistant(page).nth(2);
  await expect(third).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(third.locator(".markdown")).toHaveText("The tool could not answer: division by zero.");
  const failed = third.locator("[data-step=calculator]");
  await expect(failed).toHaveAttribute("data-status", "failed");
  await failed.locator(":scope > summary").click();
  await expect(failed.locator(".step-label").last()).toHaveText("Error");
  await expect(failed.getByTestId("step-output")).toHaveText("division by zero");
  await page.screenshot({ path: test.info().outputPath("tools.png") });

  // Saved with the replies: a reload shows the same steps.
  await page.reload();
  await expect(page.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(assistant(page)).toHaveCount(3);
  await expect(page.locator("[data-testid=step]")).toHaveCount(3);
  await expect(page.locator("[data-step=calculator][data-status=done]")).toHaveCount(1);
  await expect(page.locator("[data-step=calculator][data-status=failed]")).toHaveCount(1);
});

test("two browsers on one address each see only their own tool calls", async ({ browser }) => {
  const a = await browser.newContext();
  const b = await browser.newContext();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await openReady(pa);
  await openReady(pb);
  await send(pa, "what is 6 * 7");
  await send(pb, "what is 100 - 1");
  await expect(assistant(pa).last().locator(".markdown")).toHaveText("6 * 7 = 42", { timeout: 15_000 });
  await expect(assistant(pb).last().locator(".markdown")).toHaveText("100 - 1 = 99", { timeout: 15_000 });
  await expect(pa.locator("[data-testid=step]")).toHaveCount(1);
  await expect(pb.locator("[data-testid=step]")).toHaveCount(1);
  await pa.reload();
  await expect(pa.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(pa.getByTestId("thread-list")).not.toContainText("100 - 1");
  await a.close();
  await b.close();
});

test("tools from an MCP server keep each browser's notes apart", async ({ browser }) => {
  // The notes server runs over stdio, one process per browser session (end2end/tools.toml).
  const a = await browser.newContext();
  const b = await browser.newContext();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await openReady(pa);
  await openReady(pb);
  await send(pa, "note: the door code is 4711");
  const noted = assistant(pa).last();
  await expect(noted).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(noted.locator(".markdown")).toHaveText("Noted (1 in all).");
  const step = noted.locator("[data-testid=step][data-step=add_note]");
  await expect(step).toHaveAttribute("data-status", "done");
  await step.locator(":scope > summary").click();
  await expect(step.getByTestId("step-input")).toHaveText('{"text":"the door code is 4711"}');

  await send(pb, "what are my notes?");
  await expect(assistant(pb).last()).toHaveAttribute("data-status", "done", { timeout: 15_000 });
  await expect(assistant(pb).last().locator(".markdown")).toHaveText("Your notes: No notes.");
  await expect(pb.locator("body")).not.toContainText("4711");

  await send(pa, "what are my notes?");
  await expect(assistant(pa).nth(1).locator(".markdown")).toHaveText("Your notes: the door code is 4711", {
    timeout: 15_000,
  });
  await pa.screenshot({ path: test.info().outputPath("mcp.png") });
  await pa.reload();
  await expect(pa.locator(".app-shell")).toHaveAttribute("data-session-state", "ready");
  await expect(pa.locator("[data-testid=step][data-step=list_notes][data-status=done]")).toHaveCount(1);
  await a.close();
  await b.close();
});
