// View models: what the tree views, the status bar, the run view and the diff documents show,
// computed from the API's typed answers. No `vscode` import.

import { ApprovalView, EntryLine, PraxisClient, PraxisError, RunView } from './api';
import { FeedEvent } from './feed';

/** Statuses of a run that is not over (it may still change). */
export const LIVE_STATUSES = new Set(['queued', 'running', 'awaiting_approval']);

export function isLive(run: RunView): boolean {
  return LIVE_STATUSES.has(run.status);
}

export interface RunItem {
  id: string;
  /** The task text. */
  label: string;
  /** Status, steps, tokens and cost. */
  description: string;
  tooltip: string;
  /** `run.live` or `run.done` (the tree's `contextValue`: which actions apply). */
  context: 'run.live' | 'run.done';
  /** A codicon id for the status. */
  icon: string;
}

const ICONS: Record<string, string> = {
  queued: 'clock',
  running: 'sync~spin',
  awaiting_approval: 'bell-dot',
  completed: 'pass',
  failed: 'error',
  cancelled: 'circle-slash',
  interrupted: 'debug-disconnect',
};

export function tokens(run: RunView): number {
  return run.usage.input_tokens + run.usage.output_tokens;
}

/** A run's cost as dollars, e.g. `$0.0123`. */
export function usd(micros: number): string {
  return `$${(micros / 1e6).toFixed(4)}`;
}

export function runItem(run: RunView): RunItem {
  const task = run.task.trim() || '(no task recorded yet)';
  const steps = `${run.steps} step${run.steps === 1 ? '' : 's'}`;
  const status = run.status.replace(/_/g, ' ');
  const live = isLive(run);
  const tool = run.active_tool && live ? ` · ${run.active_tool}` : '';
  const tooltip = [
    task,
    `run ${run.id} (${run.provider}, tenant ${run.tenant})`,
    `status: ${status}${run.stop_reason ? ` (${run.stop_reason})` : ''}`,
    `${steps}, ${run.tool_calls} tool calls, ${run.usage.input_tokens} input + ${run.usage.output_tokens} output tokens, ${usd(run.cost_usd_micros)}`,
    `workspace: ${run.workspace}`,
    `started ${run.started_at}`,
    run.error ? `error: ${run.error}` : '',
    run.final_answer ? `answer: ${run.final_answer}` : '',
  ]
    .filter((l) => l !== '')
    .join('\n');
  return {
    id: run.id,
    label: task.split('\n')[0],
    description: `${status}${tool} · ${steps} · ${tokens(run)} tok · ${usd(run.cost_usd_micros)}`,
    tooltip,
    context: live ? 'run.live' : 'run.done',
    icon: ICONS[run.status] ?? 'circle-outline',
  };
}

export interface ApprovalItem {
  id: string;
  label: string;
  description: string;
  tooltip: string;
}

/** Tool arguments in one line, shortened: a tree label, never markup. */
export function argumentsLine(args: unknown, max = 120): string {
  let text: string;
  try {
    text = JSON.stringify(args) ?? '';
  } catch {
    text = String(args);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function approvalItem(approval: ApprovalView, runs: RunView[]): ApprovalItem {
  const run = runs.find((r) => r.id === approval.run_id);
  return {
    id: approval.id,
    label: `${approval.tool} ${argumentsLine(approval.arguments, 60)}`,
    description: run ? run.task.split('\n')[0] : approval.run_id,
    tooltip: [
      `${approval.tool} ${argumentsLine(approval.arguments, 2000)}`,
      `why: ${approval.reason}`,
      `run ${approval.run_id}, call ${approval.call_id}`,
      `requested ${approval.requested_at}`,
    ].join('\n'),
  };
}

/** The status bar: live runs and pending approvals, or why there is nothing to show. */
export function statusText(state: Snapshot): { text: string; tooltip: string } {
  if (state.error) {
    const icon = state.error.kind === 'unauthorized' ? '$(lock)' : '$(debug-disconnect)';
    return { text: `${icon} Praxis`, tooltip: state.error.message };
  }
  const live = state.runs.filter(isLive).length;
  const pending = state.approvals.length;
  return {
    text: `$(pulse) ${live} live $(bell) ${pending}`,
    tooltip: `Praxis: ${live} live run${live === 1 ? '' : 's'}, ${pending} pending approval${pending === 1 ? '' : 's'}`,
  };
}

// ---------------------------------------------------------------------------------------
// The run view's log: plain text lines (the webview sets them as textContent, never HTML).

export interface LogLine {
  seq: number | null;
  kind: string;
  text: string;
}

function field(payload: Record<string, unknown>, key: string): unknown {
  return payload[key];
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v);
}

/** One line (or a few) of text for a feed event. */
export function logLine(event: FeedEvent): LogLine {
  if (event.type === 'delta') return { seq: null, kind: 'delta', text: event.text };
  return { seq: event.entry.seq, kind: event.entry.kind, text: entrySummary(event.entry) };
}

export function entrySummary(entry: EntryLine): string {
  const p = entry.payload;
  switch (entry.kind) {
    case 'run_started': {
      const spec = p.spec as Record<string, unknown> | undefined;
      return `started: ${text(spec?.task)} (${text(spec?.provider)})`;
    }
    case 'workspace_snapshot': {
      const files = p.files as Record<string, unknown> | undefined;
      return `workspace captured: ${files ? Object.keys(files).length : 0} files`;
    }
    case 'model_response':
      return `model: ${text(field(p, 'content')) || '(tool calls only)'}`;
    case 'proposal': {
      const why = [text(field(p, 'rule')), text(field(p, 'reason'))].filter((w) => w !== '').join(': ');
      return `${text(field(p, 'tool'))} ${argumentsLine(field(p, 'arguments'), 300)} -> ${text(field(p, 'verdict'))}${why ? ` (${why})` : ''}`;
    }
    case 'approval_requested':
      return `waiting for approval of ${text(field(p, 'call_id'))}`;
    case 'approval_decided':
      return `${field(p, 'approved') === true ? 'approved' : 'denied'} ${text(field(p, 'call_id'))} by ${text(field(p, 'by'))}${text(field(p, 'reason')) ? `: ${text(field(p, 'reason'))}` : ''}`;
    case 'execution': {
      const changed = Array.isArray(p.files_changed) ? p.files_changed.length : 0;
      const out = text(field(p, 'output'));
      return `${text(field(p, 'tool'))} ${text(field(p, 'status'))}${changed ? `, ${changed} file${changed === 1 ? '' : 's'} changed` : ''}${out ? `\n${out.slice(0, 2000)}` : ''}`;
    }
    case 'run_finished':
      return `finished: ${text(field(p, 'stop_reason'))}${text(field(p, 'final_answer')) ? `\n${text(field(p, 'final_answer'))}` : ''}${text(field(p, 'error')) ? `\nerror: ${text(field(p, 'error'))}` : ''}`;
    case 'run_resumed':
      return 'resumed by a new driver';
    case 'checkpoint':
      return 'signed checkpoint';
    default:
      return entry.kind;
  }
}

/** Entries worth picking for a diff or a branch: one line each. */
export function entryChoice(entry: EntryLine): { seq: number; label: string; detail: string } {
  const first = entrySummary(entry).split('\n')[0];
  return { seq: entry.seq, label: `${entry.seq} ${entry.kind}`, detail: first.length > 160 ? `${first.slice(0, 159)}…` : first };
}

// ---------------------------------------------------------------------------------------
// Virtual documents of the world: `praxis-world:/RUN/SEQ/PATH` is PATH after entry SEQ.

export const WORLD_SCHEME = 'praxis-world';

export interface WorldRef {
  runId: string;
  at: number;
  path: string;
}

const RUN_ID = /^[0-9a-z]{1,64}$/;

export function worldPath(ref: WorldRef): string {
  if (!RUN_ID.test(ref.runId)) throw new PraxisError('http', `not a run id: ${JSON.stringify(ref.runId)}`);
  const parts = ref.path.split('/').map(encodeURIComponent).join('/');
  return `/${ref.runId}/${ref.at}/${parts}`;
}

export function parseWorldPath(path: string): WorldRef {
  const m = /^\/([0-9a-z]{1,64})\/(\d{1,15})\/(.+)$/.exec(path);
  if (!m) throw new PraxisError('http', `not a praxis-world document: ${JSON.stringify(path)}`);
  const file = m[3].split('/').map(decodeURIComponent).join('/');
  return { runId: m[1], at: Number(m[2]), path: file };
}

/** The two sides of a world diff: a file at the run's start and after entry `at`. */
export function diffSides(runId: string, at: number, path: string): { left: WorldRef; right: WorldRef; title: string } {
  return {
    left: { runId, at: 1, path },
    right: { runId, at, path },
    title: `${path} (run ${runId.slice(0, 8)}: start ↔ entry ${at})`,
  };
}

/** What a virtual document holds: the file's text then, or empty when it did not exist. */
export async function worldDocument(client: PraxisClient, ref: WorldRef): Promise<string> {
  return (await client.fileAt(ref.runId, ref.path, ref.at)) ?? '';
}

// ---------------------------------------------------------------------------------------
// Live state: runs and approvals as of the last refresh, and whether the server answered.

export interface Snapshot {
  runs: RunView[];
  approvals: ApprovalView[];
  /** The last refresh's failure (kept runs and approvals are the last known ones). */
  error: PraxisError | undefined;
}

export class LiveState {
  private snapshot: Snapshot = { runs: [], approvals: [], error: undefined };
  private readonly listeners = new Set<(s: Snapshot) => void>();

  constructor(private client: PraxisClient) {}

  get current(): Snapshot {
    return this.snapshot;
  }

  setClient(client: PraxisClient): void {
    this.client = client;
  }

  onChange(listener: (s: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Asks the server once; never throws (a failure is kept in `error`). */
  async refresh(): Promise<Snapshot> {
    try {
      const [runs, approvals] = await Promise.all([this.client.listRuns(), this.client.approvals()]);
      this.snapshot = { runs, approvals, error: undefined };
    } catch (e) {
      const error = e instanceof PraxisError ? e : new PraxisError('protocol', String(e));
      // A refused token shows nothing: the last answer may be another tenant's.
      this.snapshot =
        error.kind === 'unauthorized' ? { runs: [], approvals: [], error } : { ...this.snapshot, error };
    }
    for (const l of this.listeners) l(this.snapshot);
    return this.snapshot;
  }
}

// ---------------------------------------------------------------------------------------
// The run view's running totals, counted from the feed's entries as the server counts them.

export class Tally {
  steps = 0;
  toolCalls = 0;
  inputTokens = 0;
  outputTokens = 0;
  /** Summed `cost_usd_micros` of priced model calls; null while no call was priced. */
  costMicros: number | null = null;

  add(entry: EntryLine): void {
    if (entry.kind === 'model_response') {
      this.steps += 1;
      const usage = entry.payload.usage as Record<string, unknown> | undefined;
      if (typeof usage?.input_tokens === 'number') this.inputTokens += usage.input_tokens;
      if (typeof usage?.output_tokens === 'number') this.outputTokens += usage.output_tokens;
      const cost = entry.payload.cost_usd_micros;
      if (typeof cost === 'number') this.costMicros = (this.costMicros ?? 0) + cost;
    } else if (entry.kind === 'execution') {
      this.toolCalls += 1;
    }
  }

  text(): string {
    const cost = this.costMicros === null ? 'unpriced' : usd(this.costMicros);
    return `${this.steps} step${this.steps === 1 ? '' : 's'} · ${this.toolCalls} tool call${this.toolCalls === 1 ? '' : 's'} · ${this.inputTokens + this.outputTokens} tokens · ${cost}`;
  }
}
