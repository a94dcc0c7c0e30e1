import { defineConfig, devices } from "@playwright/test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Confide's browser tests. The browser is Debian's Chromium (never a downloaded one); the
// server is the binary `make test` built, started here on its own port with the default
// (SQLite) store in a fresh temporary file, so runs never share state.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;
const profile = process.env.E2E_PROFILE ?? "debug";
const store = process.env.E2E_STORE ?? `sqlite:${join(mkdtempSync(join(tmpdir(), "confide-e2e-")), "confide.db")}`;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: 2,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"], ["html", { open: "never" }]],
  outputDir: "test-results",
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
          args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
          ],
        },
      },
    },
  ],
  webServer: process.env.PW_EXTERNAL_SERVER
    ? { command: "tail -f /dev/null", url: `${baseURL}/healthz`, reuseExistingServer: true }
    : {
        command: `cd .. && exec ./target/${profile}/confide`,
        url: `${baseURL}/healthz`,
        reuseExistingServer: false,
        timeout: 60_000,
        stdout: "pipe",
        stderr: "pipe",
        env: {
          CONFIDE_ADDR: `127.0.0.1:${port}`,
          CONFIDE_SITE_ROOT: "target/site",
          CONFIDE_STORE: store,
          CONFIDE_LOG: "info",
        },
      },
});
