// End to end in a real VS Code: code-server with the built .vsix, driven by Playwright in
// Chromium, against a real `praxis serve`. A scripted run waits for approval of a write; the
// test sees it in the Praxis view, clicks Approve, sees the run complete, and opens the
// world diff of the file it changed. Screenshots go to PRAXIS_E2E_ARTIFACTS.
//
// Environment: CODE_SERVER (the code-server entry), VSIX (the built extension), CHROMIUM
// (default /usr/bin/chromium), PRAXIS_BIN, PRAXIS_E2E_ARTIFACTS.

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Page, chromium } from 'playwright-core';
import { Served, until, waitStatus, writeScript } from '../test/harness';

const TASK = 'Make the readme greet the world';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

async function startCodeServer(bin: string, dir: string, folder: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    bin,
    [
      '--auth', 'none',
      '--bind-addr', '127.0.0.1:0',
      '--config', join(dir, 'config.yaml'),
      '--user-data-dir', join(dir, 'data'),
      '--extensions-dir', join(dir, 'extensions'),
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      folder,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  const url = await new Promise<string>((ok, fail) => {
    const scan = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) log.push(line);
        const m = /HTTP server listening on (http:\/\/[\d.]+:\d+)/.exec(line);
        if (m) ok(m[1]);
      }
    };
    child.stdout!.on('data', scan);
    child.stderr!.on('data', scan);
    child.once('exit', (code) => fail(new Error(`code-server exited (${code}):\n${log.join('\n')}`)));
  });
  return { child, url };
}

async function shot(page: Page, dir: string, name: string): Promise<void> {
  await page.screenshot({ path: join(dir, `${name}.png`) });
  console.log(`screenshot ${name}.png`);
}

async function main(): Promise<void> {
  const codeServer = need('CODE_SERVER');
  const vsix = need('VSIX');
  const artifacts = process.env.PRAXIS_E2E_ARTIFACTS ?? join(process.cwd(), 'e2e-artifacts');
  mkdirSync(artifacts, { recursive: true });

  const served = await Served.start();
  let cs: ChildProcess | undefined;
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    const token = served.token('acme');
    const writ = served.approvalWrit('acme');
    const client = served.client(token);
    const folder = served.workspace('e2e', { 'README.md': 'hello\n' });
    const created = await client.createRun({ task: TASK, workspace: folder, writ, script: writeScript('README.md', 'hello world\n') });
    await waitStatus(client, created.id, ['awaiting_approval']);
    console.log(`run ${created.id} waits for approval`);

    const dir = join(served.root, 'code-server');
    mkdirSync(join(dir, 'data', 'User'), { recursive: true });
    writeFileSync(
      join(dir, 'data', 'User', 'settings.json'),
      JSON.stringify({
        'security.workspace.trust.enabled': false,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoCheckUpdates': false,
        'praxis.serverUrl': served.url,
        'praxis.refreshSeconds': 1,
      }),
    );
    const env = { ...process.env, PRAXIS_TOKEN: token, XDG_CONFIG_HOME: join(dir, 'xdg'), XDG_DATA_HOME: join(dir, 'xdg-data') };
    execFileSync(codeServer, ['--config', join(dir, 'config.yaml'), '--user-data-dir', join(dir, 'data'), '--extensions-dir', join(dir, 'extensions'), '--install-extension', vsix], { env, stdio: 'inherit' });
    const started = await startCodeServer(codeServer, dir, folder, env);
    cs = started.child;
    console.log(`code-server at ${started.url}`);

    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${started.url}/?folder=${encodeURIComponent(folder)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 120_000 });

    // The activity bar container titled "Praxis".
    const container = page.locator('.activitybar [role="tab"][aria-label^="Praxis"], .activitybar a[aria-label^="Praxis"]').first();
    await container.waitFor({ timeout: 120_000 });
    await container.click();

    // The runs view shows the run's task text, waiting for approval.
    const runRow = page.locator('.monaco-list-row', { hasText: TASK }).first();
    await runRow.waitFor({ timeout: 60_000 });
    await page.locator('.monaco-list-row', { hasText: 'awaiting approval' }).first().waitFor({ timeout: 60_000 });
    const approvalRow = page.locator('.monaco-list-row', { hasText: 'fs_write {' }).first();
    await approvalRow.waitFor({ timeout: 60_000 });
    await shot(page, artifacts, '1-waiting-for-approval');

    // Click Approve (the row's inline action).
    await approvalRow.hover();
    await approvalRow.locator('a.action-label[aria-label="Approve"], .action-label[aria-label="Approve"]').first().click();
    const view = await waitStatus(client, created.id, ['completed', 'failed']);
    if (view.status !== 'completed') throw new Error(`the run ended ${view.status}: ${view.error ?? ''}`);
    await page.locator('.monaco-list-row', { hasText: TASK }).filter({ hasText: 'completed' }).first().waitFor({ timeout: 60_000 });
    const decided = (await client.entries(created.id)).find((e) => e.kind === 'approval_decided');
    if (decided?.payload.approved !== true || decided.payload.by !== 'api:acme') {
      throw new Error(`the decision was not recorded as an approval by api:acme: ${JSON.stringify(decided)}`);
    }
    await shot(page, artifacts, '2-approved-and-completed');

    // Click the run: the run view with its log (text from the SSE feed).
    await page.locator('.monaco-list-row', { hasText: TASK }).first().click();
    await page.locator('.tab', { hasText: 'Praxis:' }).first().waitFor({ timeout: 30_000 });
    await until(async () => {
      for (const frame of page.frames()) {
        const text = await frame.locator('#log').innerText({ timeout: 500 }).catch(() => '');
        if (text.includes('finished: completed')) return true;
      }
      return undefined;
    }, 'the run view log up to run_finished');
    await shot(page, artifacts, '3-run-view');

    // Expand the run: its changed file; click it for the world diff.
    await page.locator('.monaco-list-row', { hasText: TASK }).first().locator('.monaco-tl-twistie').click();
    const fileRow = page.locator('.monaco-list-row', { hasText: 'README.md' }).filter({ hasText: 'start ↔ entry' }).first();
    await until(async () => ((await fileRow.count()) > 0 ? true : undefined), 'the changed file under the run');
    await fileRow.click();
    const diff = page.locator('.monaco-diff-editor').first();
    await diff.waitFor({ timeout: 60_000 });
    await until(async () => {
      const text = (await diff.innerText()).replace(/\u00a0/g, ' ');
      return text.includes('hello world') && text.includes('hello') ? true : undefined;
    }, 'both sides of the diff in the diff editor');
    await page.locator('.tab', { hasText: 'README.md' }).first().waitFor({ timeout: 30_000 });
    await shot(page, artifacts, '4-world-diff');

    // Deny asks for a reason, and the model sees it.
    const second = await client.createRun({ task: 'Another write to refuse', workspace: folder, writ, script: writeScript('README.md', 'refused\n') });
    await waitStatus(client, second.id, ['awaiting_approval']);
    const denyRow = page.locator('.monaco-list-row', { hasText: '"refused' }).first();
    await denyRow.waitFor({ timeout: 60_000 });
    await denyRow.hover();
    await denyRow.locator('.action-label[aria-label="Deny"]').first().click();
    const input = page.locator('.quick-input-widget input').first();
    await input.waitFor({ timeout: 30_000 });
    await input.fill('not from the editor');
    await shot(page, artifacts, '5-deny-reason');
    await input.press('Enter');
    const refused = await waitStatus(client, second.id, ['completed', 'failed']);
    const denial = (await client.entries(refused.id)).find((e) => e.kind === 'approval_decided');
    if (denial?.payload.approved !== false || denial.payload.reason !== 'not from the editor') {
      throw new Error(`the denial and its reason were not recorded: ${JSON.stringify(denial)}`);
    }

    // Start a run on this folder from the command palette: task, then provider.
    const task = 'Summarize this folder from the editor';
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } });
    await page.keyboard.press('F1');
    const palette = page.locator('.quick-input-widget input').first();
    await palette.waitFor({ timeout: 30_000 });
    await palette.fill('>Praxis: Start a Run on This Folder');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Start a Run on This Folder' }).first().waitFor({ timeout: 30_000 });
    await palette.press('Enter');
    await page.locator('.quick-input-widget', { hasText: 'Task for the agent' }).first().waitFor({ timeout: 30_000 });
    await palette.fill(task);
    await palette.press('Enter');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'mock' }).first().waitFor({ timeout: 30_000 });
    await palette.fill('mock');
    await palette.press('Enter');
    const startedRun = await until(async () => (await client.listRuns()).find((r) => r.task === task), 'the run started from the editor');
    const ran = await waitStatus(client, startedRun.id, ['completed', 'failed']);
    if (ran.status !== 'completed' || ran.workspace !== folder) {
      throw new Error(`the run started from the editor: ${JSON.stringify(ran)}`);
    }
    await shot(page, artifacts, '6-started-from-the-editor');
    console.log('e2e: passed (waiting run seen, approved by click, completed, run view, world diff opened, denied with a reason, started a run on the folder)');
  } catch (e) {
    // What the page showed when it failed, for the CI artifacts.
    for (const page of browser?.contexts().flatMap((c) => c.pages()) ?? []) {
      await page.screenshot({ path: join(artifacts, 'failure.png') }).catch(() => undefined);
      const html = await page.locator('.sidebar').first().innerHTML().catch(() => '');
      writeFileSync(join(artifacts, 'failure-sidebar.html'), html);
    }
    throw e;
  } finally {
    await browser?.close().catch(() => undefined);
    cs?.kill('SIGTERM');
    await served.stop();
  }
}

main().catch((e) => {
  console.error(`e2e: FAILED: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(1);
});
