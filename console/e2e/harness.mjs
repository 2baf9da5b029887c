// Shared e2e machinery: a real `praxis serve` (the built binary) on a free port with a temp
// PRAXIS_HOME, and Debian's Chromium driven by playwright-core, instrumented to catch any
// script the console did not mean to run (dialogs, page errors, console errors, CSP
// violations).

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const repo = resolve(import.meta.dirname, "../..");
export const praxis = process.env.PRAXIS_BIN ?? join(repo, "target/debug/praxis");
export const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const artifacts = process.env.CONSOLE_ARTIFACTS ?? join(repo, "target/ci-artifacts/console");

/** Skips (outside CI) or fails (CI=true) when a component is missing. */
export function requireComponents(t) {
  const missing = [];
  if (!existsSync(praxis)) missing.push(`${praxis} (cargo build -p praxis-cli)`);
  if (!existsSync(chromiumPath)) missing.push(`${chromiumPath} (apt-get install chromium)`);
  if (missing.length === 0) return true;
  if (process.env.CI === "true") throw new Error(`missing: ${missing.join(", ")}`);
  t.skip(`missing: ${missing.join(", ")}`);
  return false;
}

export const APPROVAL_WRIT_SPEC = `subject = "console-e2e"
tenant = "default"
expires_in = "1h"
effect_ceiling = "exec"
[budget]
tool_calls = 20
model_calls = 20
model_tokens = 200000
[[tools]]
name = "fs_write"
paths = ["**"]
[[tools]]
name = "fs_read"
paths = ["**"]
[approvals]
tools = ["fs_write"]
timeout_seconds = 600
`;

export class Served {
  static async start({ token } = {}) {
    const dir = mkdtempSync(join(tmpdir(), "praxis-console-"));
    const home = join(dir, "home");
    const ws = join(dir, "ws");
    mkdirSync(home);
    mkdirSync(ws);
    writeFileSync(join(ws, "README.md"), "# Console e2e\n");
    const env = { ...process.env, PRAXIS_HOME: home, PRAXIS_WORKSPACE_ROOTS: ws, PRAXIS_BIND: "127.0.0.1:0", NO_COLOR: "1" };
    delete env.PRAXIS_SERVER;
    delete env.PRAXIS_TOKEN;
    const run = (...args) => execFileSync(praxis, args, { env, cwd: ws, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
    run("writ", "keygen");
    writeFileSync(join(dir, "approval.toml"), APPROVAL_WRIT_SPEC);
    const writ = run("writ", "issue", "--spec", join(dir, "approval.toml"));
    // The same writ without approvals, for what-if.
    writeFileSync(join(dir, "open.toml"), APPROVAL_WRIT_SPEC.replace(/\[approvals\][^]*$/, ""));
    const openWrit = run("writ", "issue", "--spec", join(dir, "open.toml"));
    const apiToken = token ? run("token", "create", "--tenant", token) : null;
    const child = spawn(praxis, ["serve", "--bind", "127.0.0.1:0"], { env, cwd: ws, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const url = await new Promise((ok, fail) => {
      const onData = (chunk) => {
        log += chunk;
        const m = /listening on (http:\/\/[0-9.:]+) /.exec(log);
        if (m) ok(m[1]);
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.on("exit", (code) => fail(new Error(`praxis serve exited (${code}):\n${log}`)));
    });
    return Object.assign(new Served(), { dir, home, ws, writ, openWrit, apiToken, child, url, log: () => log });
  }

  async api(method, path, body, token = this.apiToken, raw = false) {
    const res = await fetch(this.url + path, {
      method,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return !raw && (res.headers.get("content-type") ?? "").includes("json") ? JSON.parse(text) : text;
  }

  /** A run over the test workspace, with an inline script. */
  async createRun(script, extra = {}) {
    const created = await this.api("POST", "/v1/runs", { task: "e2e task", workspace: this.ws, script, ...extra });
    return created.id;
  }

  async ledger(id) {
    const text = await this.api("GET", `/v1/runs/${id}/ledger`, undefined, this.apiToken, true);
    return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A browser page with every way a script could show itself recorded. */
export async function openBrowser({ width = 1280, height = 800 } = {}) {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const incidents = { dialogs: [], pageErrors: [], consoleErrors: [] };
  page.on("dialog", async (d) => {
    incidents.dialogs.push(d.message());
    await d.dismiss();
  });
  page.on("pageerror", (e) => incidents.pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") incidents.consoleErrors.push(m.text());
  });
  // Runs through the DevTools protocol, not as a page script, so the CSP does not apply.
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { browser, context, page, incidents };
}

export async function cspViolations(page) {
  return page.evaluate(() => window.__csp);
}

/** The seqs shown in the run page's log, in order. */
export async function shownSeqs(page) {
  return page.$$eval("ol.log > li", (items) => items.map((li) => Number(li.getAttribute("data-seq"))));
}

export function contiguous(seqs) {
  return seqs.every((s, i) => s === i + 1);
}

export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, `${name}.png`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage: false });
  return path;
}
