// VS Code glue: views, commands, the run view webview, the world documents and the status bar.
// Everything it shows comes from the plain modules (api, feed, models, webview).

import * as vscode from 'vscode';
import { ApprovalView, PraxisClient, RunView } from './api';
import { Follower } from './feed';
import {
  LiveState,
  Tally,
  Snapshot,
  WORLD_SCHEME,
  approvalItem,
  diffSides,
  entryChoice,
  logLine,
  parseWorldPath,
  runItem,
  statusText,
  worldDocument,
  worldPath,
} from './models';
import { nonce, runViewHtml } from './webview';

const TOKEN_KEY = 'praxis.token';

let client: PraxisClient;
let live: LiveState;

async function makeClient(context: vscode.ExtensionContext): Promise<PraxisClient> {
  const url = vscode.workspace.getConfiguration('praxis').get<string>('serverUrl') ?? 'http://127.0.0.1:3001';
  const token = (await context.secrets.get(TOKEN_KEY)) ?? process.env.PRAXIS_TOKEN;
  return new PraxisClient({ baseUrl: url, token });
}

function problem(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function guarded(what: string, f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    void vscode.window.showErrorMessage(`Praxis: ${what}: ${problem(e)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Tree views

type RunNode = { type: 'run'; run: RunView } | { type: 'file'; run: RunView; path: string; at: number } | { type: 'note'; text: string };

class RunsProvider implements vscode.TreeDataProvider<RunNode> {
  private readonly changed = new vscode.EventEmitter<RunNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: RunNode): vscode.TreeItem {
    if (node.type === 'note') {
      const item = new vscode.TreeItem(node.text);
      item.iconPath = new vscode.ThemeIcon('info');
      return item;
    }
    if (node.type === 'file') {
      const item = new vscode.TreeItem(node.path);
      item.iconPath = new vscode.ThemeIcon('diff');
      item.description = `start ↔ entry ${node.at}`;
      item.contextValue = 'world.file';
      item.command = { command: 'praxis.openWorldDiff', title: 'Open Diff', arguments: [{ runId: node.run.id, at: node.at, path: node.path }] };
      return item;
    }
    const view = runItem(node.run);
    const item = new vscode.TreeItem(view.label, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = view.id;
    item.description = view.description;
    item.tooltip = view.tooltip;
    item.contextValue = view.context;
    item.iconPath = new vscode.ThemeIcon(view.icon);
    item.command = { command: 'praxis.followRun', title: 'Follow Run', arguments: [node] };
    return item;
  }

  async getChildren(node?: RunNode): Promise<RunNode[]> {
    const state = live.current;
    if (!node) {
      if (state.error && state.runs.length === 0) return [{ type: 'note', text: state.error.message }];
      if (state.runs.length === 0) return [{ type: 'note', text: 'No runs yet: "Praxis: Start a Run on This Folder"' }];
      return state.runs.map((run) => ({ type: 'run', run }));
    }
    if (node.type !== 'run') return [];
    try {
      const world = await client.world(node.run.id);
      if (world.changed.length === 0) return [{ type: 'note', text: 'no files changed' }];
      return world.changed.map((path) => ({ type: 'file', run: node.run, path, at: world.at }));
    } catch (e) {
      return [{ type: 'note', text: problem(e) }];
    }
  }
}

type ApprovalNode = { type: 'approval'; approval: ApprovalView } | { type: 'note'; text: string };

class ApprovalsProvider implements vscode.TreeDataProvider<ApprovalNode> {
  private readonly changed = new vscode.EventEmitter<ApprovalNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: ApprovalNode): vscode.TreeItem {
    if (node.type === 'note') return new vscode.TreeItem(node.text);
    const view = approvalItem(node.approval, live.current.runs);
    const item = new vscode.TreeItem(view.label);
    item.id = `approval:${view.id}`;
    item.description = view.description;
    item.tooltip = view.tooltip;
    item.contextValue = 'approval';
    item.iconPath = new vscode.ThemeIcon('shield');
    return item;
  }

  getChildren(node?: ApprovalNode): ApprovalNode[] {
    if (node) return [];
    const state = live.current;
    if (state.error && state.approvals.length === 0) return [{ type: 'note', text: state.error.message }];
    return state.approvals.map((approval) => ({ type: 'approval', approval }));
  }
}

// ---------------------------------------------------------------------------------------
// Picking a run, an entry, a file

async function pickRun(arg: unknown, onlyLive = false): Promise<RunView | undefined> {
  const node = arg as { type?: string; run?: RunView } | undefined;
  if (node?.run) return node.run;
  if (typeof arg === 'string') return client.getRun(arg);
  const runs = live.current.runs.filter((r) => !onlyLive || ['queued', 'running', 'awaiting_approval'].includes(r.status));
  const pick = await vscode.window.showQuickPick(
    runs.map((run) => ({ label: runItem(run).label, description: runItem(run).description, run })),
    { placeHolder: onlyLive ? 'A live run' : 'A run' },
  );
  return pick?.run;
}

async function pickEntry(run: RunView, placeHolder: string): Promise<number | undefined> {
  const entries = await client.entries(run.id);
  const pick = await vscode.window.showQuickPick(
    entries.map(entryChoice).reverse().map((c) => ({ label: c.label, detail: c.detail, seq: c.seq })),
    { placeHolder, matchOnDetail: true },
  );
  return pick?.seq;
}

// ---------------------------------------------------------------------------------------
// The run view

const panels = new Map<string, { panel: vscode.WebviewPanel; follower: Follower }>();

function followRun(run: RunView): void {
  const open = panels.get(run.id);
  if (open) {
    open.panel.reveal();
    return;
  }
  const panel = vscode.window.createWebviewPanel('praxis.run', `Praxis: ${run.task.slice(0, 40)}`, vscode.ViewColumn.Active, {
    enableScripts: true,
    localResourceRoots: [],
  });
  panel.webview.html = runViewHtml(run.id, run.task, nonce());
  let pending: ReturnType<typeof logLine>[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    const lines = pending;
    pending = [];
    void panel.webview.postMessage({ type: 'lines', lines });
  };
  const tally = new Tally();
  const follower = new Follower(client, run.id, {
    onEvent: (event) => {
      pending.push(logLine(event));
      if (event.type === 'entry') {
        tally.add(event.entry);
        void panel.webview.postMessage({ type: 'totals', text: tally.text() });
        live.refresh().catch(() => undefined);
      }
      timer ??= setTimeout(flush, 50);
    },
    onState: (state, detail) => {
      void panel.webview.postMessage({ type: 'state', text: detail ? `${state}: ${detail}` : state });
    },
  });
  follower.done.catch((e) => void panel.webview.postMessage({ type: 'state', text: `stopped: ${problem(e)}` }));
  panels.set(run.id, { panel, follower });
  panel.onDidDispose(() => {
    follower.stop();
    panels.delete(run.id);
  });
}

// ---------------------------------------------------------------------------------------
// World documents

class WorldDocuments implements vscode.TextDocumentContentProvider {
  provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    return worldDocument(client, parseWorldPath(uri.path));
  }
}

async function openWorldDiff(arg: unknown): Promise<void> {
  let ref = arg as { runId?: string; at?: number; path?: string } | undefined;
  if (!ref?.runId || ref.at === undefined || !ref.path) {
    const run = await pickRun(arg);
    if (!run) return;
    const at = await pickEntry(run, 'The world after which entry?');
    if (at === undefined) return;
    const world = await client.world(run.id, at);
    if (world.changed.length === 0) {
      void vscode.window.showInformationMessage(`Praxis: run ${run.id} had changed no file by entry ${at}.`);
      return;
    }
    const path = await vscode.window.showQuickPick(world.changed, { placeHolder: `Files changed by entry ${world.at}` });
    if (!path) return;
    ref = { runId: run.id, at: world.at, path };
  }
  const sides = diffSides(ref.runId!, ref.at!, ref.path!);
  const left = vscode.Uri.from({ scheme: WORLD_SCHEME, path: worldPath(sides.left) });
  const right = vscode.Uri.from({ scheme: WORLD_SCHEME, path: worldPath(sides.right) });
  await vscode.commands.executeCommand('vscode.diff', left, right, sides.title);
}

// ---------------------------------------------------------------------------------------
// Commands that start things

const PROVIDERS = ['mock', 'scripted', 'openai', 'anthropic', 'ollama'];

async function providerChoice(): Promise<{ provider: string; script?: unknown } | undefined> {
  const provider = await vscode.window.showQuickPick(PROVIDERS, { placeHolder: 'Provider (as configured on the server)' });
  if (!provider) return undefined;
  if (provider !== 'scripted') return { provider };
  const files = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Script (JSON)': ['json'] }, openLabel: 'Use this script' });
  if (!files?.[0]) return undefined;
  const raw = Buffer.from(await vscode.workspace.fs.readFile(files[0])).toString('utf8');
  return { provider, script: JSON.parse(raw) as unknown };
}

async function startRun(): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder || folder.uri.scheme !== 'file') {
    void vscode.window.showErrorMessage('Praxis: open a folder first; the run works in it (on the server, so it must be local to it).');
    return;
  }
  const task = await vscode.window.showInputBox({ prompt: `Task for the agent in ${folder.name}`, ignoreFocusOut: true });
  if (!task?.trim()) return;
  const choice = await providerChoice();
  if (!choice) return;
  const created = await client.createRun({ task, workspace: folder.uri.fsPath, provider: choice.provider, script: choice.script });
  await live.refresh();
  const run = await client.getRun(created.id);
  followRun(run);
}

async function branchRun(arg: unknown): Promise<void> {
  const run = await pickRun(arg);
  if (!run) return;
  const at = await pickEntry(run, 'Branch after which entry? (rounded down to where the run asked the model)');
  if (at === undefined) return;
  const task = await vscode.window.showInputBox({ prompt: 'An extra instruction for the branch (optional)', ignoreFocusOut: true });
  if (task === undefined) return;
  const choice = await providerChoice();
  if (!choice) return;
  const branched = await client.branch(run.id, { at, provider: choice.provider, script: choice.script, task: task || undefined });
  void vscode.window.showInformationMessage(`Praxis: branch ${branched.id} of ${branched.branch_of} at entry ${branched.branched_at} (${branched.status}).`);
  await live.refresh();
  followRun(await client.getRun(branched.id));
}

async function decide(arg: unknown, decision: 'approve' | 'deny'): Promise<void> {
  let approval = (arg as { approval?: ApprovalView } | undefined)?.approval;
  if (!approval) {
    const pick = await vscode.window.showQuickPick(
      live.current.approvals.map((a) => ({ label: approvalItem(a, live.current.runs).label, approval: a })),
      { placeHolder: `${decision === 'approve' ? 'Approve' : 'Deny'} which proposal?` },
    );
    approval = pick?.approval;
  }
  if (!approval) return;
  let reason = '';
  if (decision === 'deny') {
    const given = await vscode.window.showInputBox({
      prompt: `Why deny ${approval.tool}? The model sees the reason.`,
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : 'A denial needs a reason'),
    });
    if (!given?.trim()) return;
    reason = given.trim();
  }
  const answer = await client.decide(approval.id, decision, reason);
  void vscode.window.setStatusBarMessage(`Praxis: ${answer.decision}d ${approval.tool} (${answer.by})`, 5000);
  await live.refresh();
}

// ---------------------------------------------------------------------------------------

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  client = await makeClient(context);
  live = new LiveState(client);
  const runs = new RunsProvider();
  const approvals = new ApprovalsProvider();
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  status.name = 'Praxis';
  status.command = 'workbench.view.extension.praxis';
  status.show();
  let shown = '';
  const render = (s: Snapshot): void => {
    // Redraw only what changed: a redraw under the pointer hides a row's inline actions.
    const key = JSON.stringify([s.runs, s.approvals, s.error?.message]);
    if (key === shown) return;
    shown = key;
    const t = statusText(s);
    status.text = t.text;
    status.tooltip = t.tooltip;
    runs.refresh();
    approvals.refresh();
  };
  live.onChange(render);

  const reconnect = async (): Promise<void> => {
    client = await makeClient(context);
    live.setClient(client);
    await live.refresh();
  };

  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    const seconds = Math.max(0.5, vscode.workspace.getConfiguration('praxis').get<number>('refreshSeconds') ?? 2);
    timer = setTimeout(() => {
      void live.refresh().finally(schedule);
    }, seconds * 1000);
  };

  const register = (id: string, f: (...args: unknown[]) => Promise<void> | void, what: string): void => {
    context.subscriptions.push(vscode.commands.registerCommand(id, (...args: unknown[]) => guarded(what, async () => f(...args))));
  };
  register('praxis.setToken', async () => {
    const token = await vscode.window.showInputBox({ prompt: 'Praxis API token (praxis token create --tenant T)', password: true, ignoreFocusOut: true });
    if (token === undefined) return;
    if (token.trim()) await context.secrets.store(TOKEN_KEY, token.trim());
    else await context.secrets.delete(TOKEN_KEY);
    await reconnect();
  }, 'set token');
  register('praxis.refresh', () => live.refresh().then(() => undefined), 'refresh');
  register('praxis.startRun', startRun, 'start a run');
  register('praxis.followRun', async (arg) => {
    const run = await pickRun(arg);
    if (run) followRun(run);
  }, 'follow');
  register('praxis.cancelRun', async (arg) => {
    const run = await pickRun(arg, true);
    if (!run) return;
    await client.cancelRun(run.id);
    await live.refresh();
  }, 'cancel');
  register('praxis.approve', (arg) => decide(arg, 'approve'), 'approve');
  register('praxis.deny', (arg) => decide(arg, 'deny'), 'deny');
  register('praxis.openWorldDiff', openWorldDiff, 'open a world diff');
  register('praxis.branchRun', branchRun, 'branch');

  context.subscriptions.push(
    status,
    vscode.window.registerTreeDataProvider('praxis.runs', runs),
    vscode.window.registerTreeDataProvider('praxis.approvals', approvals),
    vscode.workspace.registerTextDocumentContentProvider(WORLD_SCHEME, new WorldDocuments()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('praxis.serverUrl')) void reconnect().catch((err) => vscode.window.showErrorMessage(`Praxis: ${problem(err)}`));
    }),
    context.secrets.onDidChange((e) => {
      if (e.key === TOKEN_KEY) void reconnect();
    }),
    { dispose: () => timer && clearTimeout(timer) },
    { dispose: () => panels.forEach((p) => p.follower.stop()) },
  );
  await live.refresh();
  schedule();
}

export function deactivate(): void {
  for (const p of panels.values()) p.follower.stop();
}
