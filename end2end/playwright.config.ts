import { defineConfig, devices } from "@playwright/test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Confide's browser tests. The browser is Debian's Chromium headless shell (never a
// downloaded one); the server is the binary `make test` built, started here on its own
// port with the default (SQLite) store in a fresh temporary file, so runs never share state.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;
// Another server answers with no pause between the echo assistant's words, so a short reply
// can finish before the answer to the message that asked for it reaches the page. Against
// an external server (`cargo leptos end-to-end`) those tests share that one server.
const instantPort = Number(process.env.E2E_INSTANT_PORT ?? 3101);
const instantBaseURL = process.env.PW_EXTERNAL_SERVER ? baseURL : `http://127.0.0.1:${instantPort}`;
const profile = process.env.E2E_PROFILE ?? "debug";
// One scratch directory per run: the workers load this file too and inherit its name, and
// the main process removes it when it exits, after the servers it started are gone.
const scratch =
  process.env.CONFIDE_E2E_SCRATCH ?? mkdtempSync(join(tmpdir(), "confide-e2e-"));
if (!process.env.CONFIDE_E2E_SCRATCH) {
  process.env.CONFIDE_E2E_SCRATCH = scratch;
  process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
}
const store = process.env.E2E_STORE ?? `sqlite:${join(scratch, "confide.db")}`;
// A second server speaks HTTPS itself, with a certificate made for this run.
const tlsPort = Number(process.env.E2E_TLS_PORT ?? 3443);
const redirectPort = Number(process.env.E2E_REDIRECT_PORT ?? 3180);
const tlsBaseURL = `https://localhost:${tlsPort}`;
const cert = join(scratch, "cert.pem");
const key = join(scratch, "key.pem");
// A fake OpenID Connect provider (server/examples/fake_oidc.rs) for the sign-in tests, and
// a configuration that turns on every way of signing in but the proxy header.
const oidcPort = Number(process.env.E2E_OIDC_PORT ?? 3190);
// The tool-using example app (server/examples/tools.rs) with its scripted stand-in model.
const toolsPort = Number(process.env.E2E_TOOLS_PORT ?? 3102);
const toolsBaseURL = `http://127.0.0.1:${toolsPort}`;
const config = join(scratch, "confide.toml");
writeFileSync(
  config,
  `auth_password = true
auth_registration = true

[[oidc]]
id = "fake"
name = "Fake ID"
issuer = "http://127.0.0.1:${oidcPort}"
client_id = "confide-test"
client_secret = "confide-test-secret"
`,
);
const chromium = {
  ...devices["Desktop Chrome"],
  launchOptions: {
    // The headless shell (Blink and V8 without the browser around them) runs the suite on a
    // third less CPU than the full browser in headless mode; CHROMIUM_PATH picks another.
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium-headless-shell",
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
};

export default defineConfig({
  testDir: "./tests",
  // Generous: a test takes a few seconds, but a busy CI machine can stall for many.
  timeout: 60_000,
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
    // Layout tests are tagged with the windows they are about (@wide, @narrow, @touch);
    // each project runs the ones that describe it.
    { name: "chromium", testIgnore: /(tls|instant|no-accounts|tools)\.spec\.ts/, grepInvert: /@narrow|@touch/, use: chromium },
    // Phones and narrow windows: the layout tests again at a phone's and a tablet's width.
    {
      name: "mobile-390",
      testMatch: /responsive\.spec\.ts/,
      grepInvert: /@wide/,
      use: {
        ...chromium,
        viewport: { width: 390, height: 844 },
        deviceScaleFactor: 3,
        isMobile: true,
        hasTouch: true,
      },
    },
    {
      name: "tablet-768",
      testMatch: /responsive\.spec\.ts/,
      grepInvert: /@wide|@touch/,
      use: { ...chromium, viewport: { width: 768, height: 1024 } },
    },
    {
      // Also a server with no way of signing in (the main one has every way on).
      name: "chromium-instant",
      testMatch: /(instant|no-accounts)\.spec\.ts/,
      use: { ...chromium, baseURL: instantBaseURL },
    },
    {
      name: "chromium-tools",
      testMatch: /tools\.spec\.ts/,
      use: { ...chromium, baseURL: toolsBaseURL },
    },
    {
      name: "chromium-tls",
      testMatch: /tls\.spec\.ts/,
      use: { ...chromium, baseURL: tlsBaseURL, ignoreHTTPSErrors: true },
    },
  ],
  webServer: process.env.PW_EXTERNAL_SERVER
    ? [{ command: "tail -f /dev/null", url: `${baseURL}/healthz`, reuseExistingServer: true }]
    : [
        {
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
            CONFIDE_CONFIG: config,
            CONFIDE_LOG: "info",
            // Every test is a new browser on one address: a busy run starts more sessions
            // and sends more messages a minute from it than a real address would.
            CONFIDE_NEW_SESSIONS_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_BURST: "100000",
            // A CI disk can stall an fsync for seconds; the 2 s default is for production,
            // and its effect is tested in the Rust suite.
            CONFIDE_STORE_TIMEOUT: "10",
          },
        },
        {
          command: `cd .. && exec ./target/${profile}/confide`,
          url: `${instantBaseURL}/healthz`,
          reuseExistingServer: false,
          timeout: 60_000,
          stdout: "pipe",
          stderr: "pipe",
          env: {
            CONFIDE_ADDR: `127.0.0.1:${instantPort}`,
            CONFIDE_SITE_ROOT: "target/site",
            CONFIDE_STORE: `sqlite:${join(scratch, "instant.db")}`,
            CONFIDE_ECHO_DELAY: "0",
            // The tests here send faster than a person; the default allows 10 at once.
            CONFIDE_MESSAGES_PER_MINUTE: "600",
            CONFIDE_LOG: "warn",
            // Every test is a new browser on one address: a busy run starts more sessions
            // and sends more messages a minute from it than a real address would.
            CONFIDE_NEW_SESSIONS_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_BURST: "100000",
            // A CI disk can stall an fsync for seconds; the 2 s default is for production,
            // and its effect is tested in the Rust suite.
            CONFIDE_STORE_TIMEOUT: "10",
          },
        },
        {
          command: `cd .. && exec ./target/debug/examples/tools`,
          url: `${toolsBaseURL}/healthz`,
          reuseExistingServer: false,
          timeout: 60_000,
          stdout: "pipe",
          stderr: "pipe",
          env: {
            CONFIDE_ADDR: `127.0.0.1:${toolsPort}`,
            CONFIDE_SITE_ROOT: "target/site",
            CONFIDE_STORE: `sqlite:${join(scratch, "tools.db")}`,
            // Starts the mcp_notes example as an MCP server over stdio.
            CONFIDE_CONFIG: "end2end/tools.toml",
            CONFIDE_LOG: "warn",
            CONFIDE_NEW_SESSIONS_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_BURST: "100000",
            CONFIDE_STORE_TIMEOUT: "10",
          },
        },
        {
          command: `cd .. && exec ./target/debug/examples/fake_oidc ${oidcPort}`,
          url: `http://127.0.0.1:${oidcPort}/.well-known/openid-configuration`,
          reuseExistingServer: false,
          timeout: 30_000,
          stdout: "pipe",
          stderr: "pipe",
        },
        {
          command:
            `openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost ` +
            `-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ${key} -out ${cert} 2>/dev/null && ` +
            `cd .. && exec ./target/${profile}/confide`,
          url: `${tlsBaseURL}/healthz`,
          ignoreHTTPSErrors: true,
          reuseExistingServer: false,
          timeout: 60_000,
          stdout: "pipe",
          stderr: "pipe",
          env: {
            CONFIDE_ADDR: `127.0.0.1:${tlsPort}`,
            CONFIDE_PUBLIC_URL: tlsBaseURL,
            CONFIDE_TLS_CERT: cert,
            CONFIDE_TLS_KEY: key,
            CONFIDE_REDIRECT_ADDR: `127.0.0.1:${redirectPort}`,
            CONFIDE_SITE_ROOT: "target/site",
            CONFIDE_STORE: `sqlite:${join(scratch, "tls.db")}`,
            CONFIDE_LOG: "warn",
            // tls.spec.ts shows a used-up daily quota; each of its tests is a new visitor.
            CONFIDE_QUOTA_MESSAGES_PER_DAY: "2",
            // Every test is a new browser on one address: a busy run starts more sessions
            // and sends more messages a minute from it than a real address would.
            CONFIDE_NEW_SESSIONS_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_PER_MINUTE: "100000",
            CONFIDE_ADDRESS_MESSAGES_BURST: "100000",
            // A CI disk can stall an fsync for seconds; the 2 s default is for production,
            // and its effect is tested in the Rust suite.
            CONFIDE_STORE_TIMEOUT: "10",
          },
        },
      ],
});
