// End-to-end tests of the console in headless Chromium against the real `praxis serve`.
// Run: npm run e2e (needs target/debug/praxis and /usr/bin/chromium).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Served, contiguous, cspViolations, openBrowser, requireComponents, screenshot, shownSeqs } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const TIMEOUT = { timeout: 30_000 };

const write = (path, content, id) => ({ tool_calls: [{ id, name: "fs_write", arguments: { path, content } }] });

async function axeCheck(page, where) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  });
  assert.deepEqual(violations, [], `axe at ${where}`);
}

function assertNoScriptRan(incidents, csp, where) {
  assert.deepEqual(incidents.dialogs, [], `dialogs at ${where}`);
  assert.deepEqual(incidents.pageErrors, [], `page errors at ${where}`);
  assert.deepEqual(incidents.consoleErrors, [], `console errors at ${where}`);
  assert.deepEqual(csp, [], `CSP violations at ${where}`);
}

async function waitFinished(page) {
  await page.locator('[data-testid="stop-reason"]').waitFor(TIMEOUT);
}

async function approveOnRunPage(page, nth) {
  const card = page.locator('[data-testid="pending-approval"]');
  await card.waitFor(TIMEOUT);
  await page.locator("ol.log > li[data-kind=approval_requested]").nth(nth).waitFor(TIMEOUT);
  await card.getByRole("button", { name: "Approve" }).click();
  await page.locator("ol.log > li[data-kind=approval_decided]").nth(nth).waitFor(TIMEOUT);
}

test("approval flow, live log, world at two steps, branch, screenshots, axe", async (t) => {
  if (!requireComponents(t)) return;
  const s = await Served.start();
  const { browser, page, incidents } = await openBrowser();
  t.after(async () => {
    await browser.close();
    await s.stop();
  });
  const script = { turns: [write("notes.txt", "v1\n", "w1"), write("notes.txt", "v2\n", "w2"), { content: "Both versions written." }] };

  // Start it from the new-run form.
  await page.goto(`${s.url}/ui/new`);
  await axeCheck(page, "new run form");
  await page.locator("#run-task").fill("Write notes twice");
  await page.locator("#run-workspace").fill(s.ws);
  await page.locator("#run-script").fill(JSON.stringify(script));
  await page.locator("#run-writ").fill(s.writ);
  await page.getByRole("button", { name: "Start run" }).click();
  await page.waitForURL(/\/ui\/runs\/[A-Za-z0-9_-]+$/);
  const runId = page.url().split("/").pop();

  // The log updates live: the proposal, its verdict and rule, the request for approval.
  await page.locator("ol.log > li[data-kind=approval_requested]").first().waitFor(TIMEOUT);
  const proposal = page.locator("ol.log > li[data-kind=proposal]").first();
  assert.equal(await proposal.locator('[data-testid="verdict"]').textContent(), "needs_approval");
  assert.match(await proposal.locator(".rule").textContent(), /\S/);
  await page.locator('[data-testid="status"]', { hasText: "awaiting_approval" }).waitFor(TIMEOUT);
  await axeCheck(page, "run page awaiting approval");
  await approveOnRunPage(page, 0);

  // The second approval from the approvals page.
  await page.getByRole("link", { name: "Approvals" }).click();
  const card = page.locator("section.approval");
  await card.waitFor(TIMEOUT);
  assert.match(await card.textContent(), /fs_write/);
  assert.match(await card.textContent(), /v2/);
  await axeCheck(page, "approvals page");
  await card.getByRole("button", { name: "Approve" }).click();
  await page.getByText("Nothing waits for approval.").waitFor(TIMEOUT);

  await page.goto(`${s.url}/ui/runs/${runId}`);
  await waitFinished(page);
  assert.match(await page.locator('[data-testid="final-answer"]').textContent(), /Both versions written\./);
  assert.match(await page.locator('[data-testid="stop-reason"]').textContent(), /completed/);
  await page.locator('[data-testid="chain"]', { hasText: "chain verified" }).waitFor(TIMEOUT);
  const decided = await s.ledger(runId);
  const decisions = decided.filter((e) => e.kind === "approval_decided").map((e) => e.payload);
  assert.equal(decisions.length, 2);
  assert.ok(decisions.every((d) => d.approved && d.by === "api:default"), JSON.stringify(decisions));

  // The world after each write.
  const executions = await page.locator("ol.log > li[data-kind=execution]").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-seq"))));
  assert.equal(executions.length, 2);
  for (const [seq, want, before] of [[executions[0], "v1", null], [executions[1], "v2", "v1"]]) {
    await page.locator("#world-at").fill(String(seq));
    await page.getByRole("button", { name: "Show world" }).click();
    await page.locator('[data-testid="world-at"]', { hasText: String(seq) }).waitFor(TIMEOUT);
    await page.locator("ul.files").getByRole("button", { name: "notes.txt" }).click();
    await page.locator("h4", { hasText: `notes.txt after #${seq}` }).waitFor(TIMEOUT);
    assert.equal((await page.locator('[data-testid="file-content"]').textContent()).trim(), want);
    const diff = await page.locator('[data-testid="file-diff"]').textContent();
    assert.ok(diff.includes(`+ ${want}`), diff);
    if (before) assert.ok(diff.includes(`- ${before}`), diff);
  }
  await axeCheck(page, "run page finished");
  await screenshot(page, "run-1280x800");

  // What-if: without the approval rule both writes would have been allowed outright.
  await page.locator("#whatif-writ").fill(s.openWrit);
  await page.getByRole("button", { name: "Re-judge" }).click();
  await page.locator('[data-testid="whatif-summary"]').waitFor(TIMEOUT);
  assert.equal(await page.locator('[data-testid="whatif-summary"]').textContent(), "2 verdict(s) would change");
  const changed = await page.locator(".whatif tbody tr").allTextContents();
  assert.ok(changed.every((r) => r.includes("fs_write") && r.includes("needs_approval") && r.includes("allow")), changed.join("\n"));

  // Branch from the second model reply with a scripted provider.
  const secondReply = page.locator("ol.log > li[data-kind=model_response]").nth(1);
  const branchSeq = Number(await secondReply.getAttribute("data-seq"));
  await secondReply.getByRole("button", { name: `Branch from entry ${branchSeq}` }).click();
  assert.equal(await page.locator("#branch-at").inputValue(), String(branchSeq));
  await page.locator("#branch-provider").selectOption("scripted");
  await page.locator("#branch-script").fill(JSON.stringify({ turns: [{ content: "Branch done." }] }));
  await page.locator("#branch-task").fill("Stop after the first version.");
  await page.getByRole("button", { name: "Branch", exact: true }).click();
  await page.waitForURL((u) => !u.pathname.endsWith(runId));
  await waitFinished(page);
  assert.match(await page.locator('[data-testid="final-answer"]').textContent(), /Branch done\./);
  const started = page.locator("ol.log > li[data-kind=run_started]");
  assert.match(await started.textContent(), new RegExp(`branch of ${runId}`));

  // Diff of the two runs: their trajectories and final worlds differ.
  await page.locator("#compare-other").fill(runId);
  await page.getByRole("button", { name: "Compare" }).click();
  await page.locator('[data-testid="compare-summary"]').waitFor(TIMEOUT);
  const comparison = await page.locator(".compare").textContent();
  assert.match(comparison, /First difference at step 1A: Branch done\./);
  assert.match(comparison, /notes\.txt differs/);

  // The runs list shows both, with status, provider, steps.
  await page.getByRole("link", { name: "Runs" }).click();
  await page.locator("table.runs tbody tr").nth(1).waitFor(TIMEOUT);
  const rows = await page.locator("table.runs tbody tr").allTextContents();
  assert.equal(rows.length, 2, rows.join("\n"));
  assert.ok(rows.some((r) => r.includes("Write notes twice") && r.includes("completed") && r.includes("scripted")), rows.join("\n"));
  await page.locator("#status-filter").selectOption("failed");
  await page.getByText("No runs.").waitFor(TIMEOUT);
  await page.locator("#status-filter").selectOption("");
  await page.locator("table.runs tbody tr").nth(1).waitFor(TIMEOUT);
  await axeCheck(page, "runs list");
  await screenshot(page, "runs-1280x800");

  // Narrow screens: nothing scrolls sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, "runs-390");
  await page.goto(`${s.url}/ui/runs/${runId}`);
  await waitFinished(page);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "no horizontal scroll at 390px");
  await screenshot(page, "run-390");
  assertNoScriptRan(incidents, await cspViolations(page), "approval flow");
});

test("deny with a reason, by keyboard; the model's next step mentions it", async (t) => {
  if (!requireComponents(t)) return;
  const s = await Served.start();
  const { browser, page, incidents } = await openBrowser();
  t.after(async () => {
    await browser.close();
    await s.stop();
  });
  const id = await s.createRun({ turns: [write("Cargo.lock", "pinned\n", "w1"), { content: "Understood, I will not: {{last_observation}}" }] }, { writ: s.writ });
  await page.goto(`${s.url}/ui/runs/${id}`);
  await page.locator('[data-testid="pending-approval"]').waitFor(TIMEOUT);
  // Only the keyboard from here: tab to the reason, type, tab to Deny, press Enter.
  await page.locator("body").focus();
  let reached = false;
  for (let i = 0; i < 80 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.getAttribute("name") === "reason" && !!document.activeElement.closest('[data-testid="pending-approval"]'));
  }
  assert.ok(reached, "the reason field is reachable with Tab");
  await page.keyboard.type("not the lockfile");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Approve");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Deny");
  await page.keyboard.press("Enter");
  await waitFinished(page);
  const decided = page.locator("ol.log > li[data-kind=approval_decided]");
  assert.match(await decided.textContent(), /denied by api:default: not the lockfile/);
  assert.ok(await decided.evaluate((el) => el.classList.contains("failure")), "a denial is highlighted");
  const final = await page.locator('[data-testid="final-answer"]').textContent();
  assert.match(final, /Understood, I will not: .*not the lockfile/s);
  // The model's reply in the ledger says so too, and no file was written.
  const replies = (await s.ledger(id)).filter((e) => e.kind === "model_response");
  assert.match(replies[1].payload.content, /not the lockfile/);
  assertNoScriptRan(incidents, await cspViolations(page), "deny");
});

test("a dropped feed and a reload mid-run: no gap, no duplicate", async (t) => {
  if (!requireComponents(t)) return;
  const s = await Served.start();
  const { browser, page, incidents } = await openBrowser();
  t.after(async () => {
    await browser.close();
    await s.stop();
  });
  const id = await s.createRun({ turns: [write("a.txt", "a\n", "w1"), write("b.txt", "b\n", "w2"), { content: "done" }] }, { writ: s.writ });
  let ledger = [];
  for (let i = 0; i < 600 && !ledger.some((e) => e.kind === "approval_requested"); i++) {
    await new Promise((r) => setTimeout(r, 50));
    ledger = await s.ledger(id);
  }
  // The first connection delivers three entries and a delta, then drops; every later one
  // goes to the server, and says where it resumes.
  const sse = (e) => `id: ${e.seq}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`;
  const resumedAfter = [];
  await page.route(/\/v1\/runs\/[^/]+\/events$/, async (route) => {
    if (resumedAfter.length === 0 && !route.request().headers()["x-dropped"]) {
      resumedAfter.push("dropped");
      await route.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: ledger.slice(0, 3).map(sse).join("") + `event: delta\ndata: {"text":"partial "}\n\n`,
      });
      return;
    }
    resumedAfter.push(route.request().headers()["last-event-id"]);
    await route.continue();
  });
  await page.goto(`${s.url}/ui/runs/${id}`);
  await page.locator("ol.log > li[data-kind=approval_requested]").first().waitFor(TIMEOUT);
  assert.equal(resumedAfter[1], "3", JSON.stringify(resumedAfter));
  const before = await shownSeqs(page);
  assert.ok(contiguous(before) && before.length >= 5, JSON.stringify(before));

  await page.reload();
  await page.locator("ol.log > li[data-kind=approval_requested]").first().waitFor(TIMEOUT);
  assert.equal(resumedAfter.at(-1), "0", "a reload starts from the beginning");
  assert.deepEqual(await shownSeqs(page), before);

  await approveOnRunPage(page, 0);
  await approveOnRunPage(page, 1);
  await waitFinished(page);
  const seqs = await shownSeqs(page);
  assert.ok(contiguous(seqs), JSON.stringify(seqs));
  ledger = await s.ledger(id);
  const kinds = await page.$$eval("ol.log > li", (items) => items.map((li) => li.getAttribute("data-kind")));
  assert.deepEqual(kinds, ledger.slice(0, kinds.length).map((e) => e.kind));
  assert.ok(kinds.includes("run_finished"));
  assertNoScriptRan(incidents, await cspViolations(page), "reload");
});

test("auth on: a wrong token sees the prompt and nothing else", async (t) => {
  if (!requireComponents(t)) return;
  const s = await Served.start({ token: "acme" });
  const { browser, page, incidents } = await openBrowser();
  t.after(async () => {
    await browser.close();
    await s.stop();
  });
  const secret = "SECRET-TASK-7f3a";
  const { id } = await s.api("POST", "/v1/runs", { task: secret, workspace: s.ws, script: { turns: [{ content: "hidden answer" }] } });
  const answered = [];
  page.on("response", async (r) => {
    if (new URL(r.url()).pathname.startsWith("/v1/")) answered.push({ status: r.status(), body: await r.text().catch(() => "") });
  });
  for (const path of ["/ui/", `/ui/runs/${id}`, "/ui/approvals"]) {
    await page.goto(s.url + path);
    await page.locator("#token").waitFor(TIMEOUT);
    assert.equal(await page.locator("nav").count(), 0);
    assert.ok(!(await page.content()).includes(secret));
  }
  await axeCheck(page, "token prompt");
  await page.locator("#token").fill("prx_wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor(TIMEOUT);
  assert.match(await page.getByRole("alert").textContent(), /refused/);
  assert.equal(await page.locator("nav").count(), 0);
  const html = await page.content();
  assert.ok(!html.includes(secret) && !html.includes(id) && !html.includes("hidden answer"));
  assert.ok(answered.length > 0 && answered.every((a) => a.status === 401), JSON.stringify(answered));
  assert.ok(answered.every((a) => !a.body.includes(secret) && !a.body.includes(id)));
  // The right token shows the run, and is kept for the session only.
  await page.locator("#token").fill(s.apiToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Pending approvals" }).waitFor(TIMEOUT);
  await page.getByRole("link", { name: "Runs" }).click();
  await page.locator("table.runs", { hasText: secret }).waitFor(TIMEOUT);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("praxis.token")), s.apiToken);
  // The browser logs each refused request (the wrong token's) as a failed resource load.
  incidents.consoleErrors = incidents.consoleErrors.filter((e) => !e.includes("status of 401"));
  assertNoScriptRan(incidents, await cspViolations(page), "auth");
});

test("a hostile run: markup from the model and a tool stays text", async (t) => {
  if (!requireComponents(t)) return;
  const s = await Served.start();
  const { browser, page, incidents } = await openBrowser();
  t.after(async () => {
    await browser.close();
    await s.stop();
  });
  const long = "L".repeat(20_000);
  const evil = `<script>window.__pwned='script'</script><img src=x onerror="window.__pwned='img';alert('img')"><a href="javascript:alert('link')">click me</a><svg onload="alert('svg')"></svg>`;
  const script = {
    turns: [
      { content: `Let me look. ${evil}`, tool_calls: [{ id: "w1", name: "fs_write", arguments: { path: "evil.html", content: `${evil}\n${long}\n` } }] },
      { content: evil, tool_calls: [{ id: "r1", name: "fs_read", arguments: { path: "evil.html" } }] },
      { content: `Done ${evil} ${long}` },
    ],
  };
  const id = await s.createRun(script, { task: `Task ${evil}`, approve: "auto" });
  await page.goto(`${s.url}/ui/runs/${id}`);
  await waitFinished(page);
  await page.locator('[data-testid="chain"]', { hasText: "chain verified" }).waitFor(TIMEOUT);
  const text = await page.locator("main").textContent();
  assert.ok(text.includes("<img src=x onerror="), "the markup is shown as text");
  assert.ok(text.includes(long), "the long line is shown");
  for (const route of ["/ui/", `/ui/runs/${id}`]) {
    await page.goto(s.url + route);
    await page.locator("main").getByText("<img src=x", { exact: false }).first().waitFor(TIMEOUT);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator("main img, main script, main svg, main iframe, a[href^='javascript']").count(), 0);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), `no page-wide overflow at ${route}`);
  }
  await page.locator("ol.log details").first().click();
  assertNoScriptRan(incidents, await cspViolations(page), "hostile run");
});
