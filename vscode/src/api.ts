// The Praxis server's HTTP API, as the extension uses it. No `vscode` import: the node tests
// drive this module against a real `praxis serve`.
//
// Types at the door: every answer is checked field by field where it enters (`read*`), and a
// wrong shape is a `PraxisError` of kind `protocol` naming the field.

export type ErrorKind =
  | 'unauthorized' // 401: no token, or a wrong one
  | 'unreachable' // no answer: the server is down, or the URL is wrong
  | 'http' // any other error answer
  | 'protocol'; // an answer this client cannot read

export class PraxisError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status?: number,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'PraxisError';
  }
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
}

export interface RunView {
  id: string;
  status: string;
  phase: string | null;
  active_tool: string | null;
  stop_reason: string | null;
  final_answer: string | null;
  error: string | null;
  steps: number;
  tool_calls: number;
  usage: Usage;
  task: string;
  workspace: string;
  provider: string;
  started_at: string;
  /** Summed cost of the run's priced model calls, in micro-dollars (0 when unpriced). */
  cost_usd_micros: number;
  last_seq: number;
  tenant: string;
}

export interface ApprovalView {
  /** `RUN_ID:CALL_ID` */
  id: string;
  run_id: string;
  call_id: string;
  tool: string;
  arguments: unknown;
  reason: string;
  requested_at: string;
}

export interface WorldView {
  run_id: string;
  at: number;
  changed: string[];
  files: Record<string, string | null>;
}

export interface Created {
  id: string;
  status: string;
}

export interface Branched extends Created {
  branch_of: string;
  branched_at: number;
  workspace: string;
}

export interface DecisionAnswer {
  id: string;
  run_id: string;
  call_id: string;
  decision: string;
  by: string;
}

/** One ledger entry, as `GET /v1/runs/{id}/ledger` and the feed carry it. */
export interface EntryLine {
  run_id: string;
  seq: number;
  kind: string;
  at: string;
  payload: Record<string, unknown>;
}

export interface CreateRun {
  task: string;
  workspace?: string;
  provider?: string;
  model?: string;
  writ?: string;
  script?: unknown;
  approve?: 'wait' | 'auto' | 'never';
}

export interface BranchRun {
  at: number;
  provider?: string;
  model?: string;
  task?: string;
  script?: unknown;
}

export interface ClientOptions {
  /** `http://host:port` of `praxis serve` (`praxis.serverUrl`). */
  baseUrl: string;
  /** The tenant's API token, if the server has auth on. */
  token?: string;
  /** Per request, except the live feed (default 15 s). */
  timeoutMs?: number;
}

// ---------------------------------------------------------------------------------------
// Reading answers

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new PraxisError('protocol', `${what}: expected an object`, undefined, what);
  }
  return v as Obj;
}

function str(o: Obj, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string') {
    throw new PraxisError('protocol', `${what}.${key}: expected a string`, undefined, key);
  }
  return v;
}

function optStr(o: Obj, key: string, what: string): string | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') {
    throw new PraxisError('protocol', `${what}.${key}: expected a string or null`, undefined, key);
  }
  return v;
}

function num(o: Obj, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new PraxisError('protocol', `${what}.${key}: expected a number`, undefined, key);
  }
  return v;
}

function arr(o: Obj, key: string, what: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) {
    throw new PraxisError('protocol', `${what}.${key}: expected an array`, undefined, key);
  }
  return v;
}

export function readRun(v: unknown): RunView {
  const o = obj(v, 'run');
  const u = obj(o.usage, 'run.usage');
  return {
    id: str(o, 'id', 'run'),
    status: str(o, 'status', 'run'),
    phase: optStr(o, 'phase', 'run'),
    active_tool: optStr(o, 'active_tool', 'run'),
    stop_reason: optStr(o, 'stop_reason', 'run'),
    final_answer: optStr(o, 'final_answer', 'run'),
    error: optStr(o, 'error', 'run'),
    steps: num(o, 'steps', 'run'),
    tool_calls: num(o, 'tool_calls', 'run'),
    usage: {
      input_tokens: num(u, 'input_tokens', 'run.usage'),
      output_tokens: num(u, 'output_tokens', 'run.usage'),
    },
    task: str(o, 'task', 'run'),
    workspace: str(o, 'workspace', 'run'),
    provider: str(o, 'provider', 'run'),
    started_at: str(o, 'started_at', 'run'),
    cost_usd_micros: num(o, 'cost_usd_micros', 'run'),
    last_seq: num(o, 'last_seq', 'run'),
    tenant: str(o, 'tenant', 'run'),
  };
}

export function readApproval(v: unknown): ApprovalView {
  const o = obj(v, 'approval');
  return {
    id: str(o, 'id', 'approval'),
    run_id: str(o, 'run_id', 'approval'),
    call_id: str(o, 'call_id', 'approval'),
    tool: str(o, 'tool', 'approval'),
    arguments: o.arguments,
    reason: str(o, 'reason', 'approval'),
    requested_at: str(o, 'requested_at', 'approval'),
  };
}

export function readWorld(v: unknown): WorldView {
  const o = obj(v, 'world');
  const files: Record<string, string | null> = {};
  for (const [path, blob] of Object.entries(obj(o.files, 'world.files'))) {
    if (blob !== null && typeof blob !== 'string') {
      throw new PraxisError('protocol', `world.files.${path}: expected a blob id or null`);
    }
    files[path] = blob;
  }
  return {
    run_id: str(o, 'run_id', 'world'),
    at: num(o, 'at', 'world'),
    changed: arr(o, 'changed', 'world').map((p, i) => {
      if (typeof p !== 'string') {
        throw new PraxisError('protocol', `world.changed[${i}]: expected a path`);
      }
      return p;
    }),
    files,
  };
}

export function readEntry(v: unknown): EntryLine {
  const o = obj(v, 'entry');
  return {
    run_id: str(o, 'run_id', 'entry'),
    seq: num(o, 'seq', 'entry'),
    kind: str(o, 'kind', 'entry'),
    at: str(o, 'at', 'entry'),
    payload: obj(o.payload, 'entry.payload'),
  };
}

function readCreated(v: unknown): Created {
  const o = obj(v, 'created');
  return { id: str(o, 'id', 'created'), status: str(o, 'status', 'created') };
}

// ---------------------------------------------------------------------------------------
// The client

export class PraxisClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new PraxisError('http', `praxis.serverUrl: not a URL: ${JSON.stringify(options.baseUrl)}`, undefined, 'praxis.serverUrl');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new PraxisError('http', `praxis.serverUrl: must be http:// or https://, not ${url.protocol}`, undefined, 'praxis.serverUrl');
    }
    this.baseUrl = url.origin + url.pathname.replace(/\/+$/, '');
    this.token = options.token?.trim() || undefined;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  /** `fetch` with the token, mapping failures to `PraxisError`. */
  async request(method: string, path: string, body?: unknown, signal?: AbortSignal, extraHeaders: Record<string, string> = {}): Promise<Response> {
    const headers = this.headers(extraHeaders);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const timeout = signal ? undefined : AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ?? timeout,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : String(e);
      throw new PraxisError('unreachable', `cannot reach the Praxis server at ${this.baseUrl} (praxis.serverUrl): ${cause}`);
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      let field: string | undefined;
      try {
        const b = obj(await response.json(), 'error');
        if (typeof b.error === 'string') message = b.error;
        if (typeof b.field === 'string') field = b.field;
      } catch {
        // Not our error shape: the status line says enough.
      }
      if (response.status === 401) {
        throw new PraxisError('unauthorized', `the server refused the token (${message}); set it with "Praxis: Set Token" or PRAXIS_TOKEN`, 401, field);
      }
      throw new PraxisError('http', `${method} ${path}: ${message}`, response.status, field);
    }
    return response;
  }

  private async json(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await this.request(method, path, body);
    try {
      return await response.json();
    } catch (e) {
      throw new PraxisError('protocol', `${method} ${path}: the answer is not JSON (${String(e)})`);
    }
  }

  async listRuns(limit = 100): Promise<RunView[]> {
    const o = obj(await this.json('GET', `/v1/runs?limit=${limit}`), 'run list');
    return arr(o, 'runs', 'run list').map(readRun);
  }

  async getRun(id: string): Promise<RunView> {
    return readRun(await this.json('GET', `/v1/runs/${encodeURIComponent(id)}`));
  }

  async createRun(request: CreateRun): Promise<Created> {
    return readCreated(await this.json('POST', '/v1/runs', request));
  }

  async cancelRun(id: string): Promise<void> {
    await this.request('POST', `/v1/runs/${encodeURIComponent(id)}/cancel`);
  }

  async approvals(): Promise<ApprovalView[]> {
    const o = obj(await this.json('GET', '/v1/approvals'), 'approval list');
    return arr(o, 'approvals', 'approval list').map(readApproval);
  }

  /** Approve or deny `RUN_ID:CALL_ID`; a denial needs a reason (the model sees it). */
  async decide(approvalId: string, decision: 'approve' | 'deny', reason: string): Promise<DecisionAnswer> {
    if (decision === 'deny' && !reason.trim()) {
      throw new PraxisError('http', 'a denial needs a reason: the model sees it', undefined, 'reason');
    }
    const o = obj(await this.json('POST', `/v1/approvals/${encodeURIComponent(approvalId)}`, { decision, reason }), 'decision');
    return {
      id: str(o, 'id', 'decision'),
      run_id: str(o, 'run_id', 'decision'),
      call_id: str(o, 'call_id', 'decision'),
      decision: str(o, 'decision', 'decision'),
      by: str(o, 'by', 'decision'),
    };
  }

  /** Every ledger entry of a run (the NDJSON export). */
  async entries(id: string): Promise<EntryLine[]> {
    const response = await this.request('GET', `/v1/runs/${encodeURIComponent(id)}/ledger`);
    const text = await response.text();
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l, i) => {
        try {
          return readEntry(JSON.parse(l));
        } catch (e) {
          throw e instanceof PraxisError ? e : new PraxisError('protocol', `ledger line ${i + 1}: not JSON`);
        }
      });
  }

  /** The run's world after entry `at` (default: its last entry). */
  async world(id: string, at?: number): Promise<WorldView> {
    const q = at === undefined ? '' : `?at=${at}`;
    return readWorld(await this.json('GET', `/v1/runs/${encodeURIComponent(id)}/world${q}`));
  }

  /** One file's content after entry `at`; `null` when it did not exist then. */
  async fileAt(id: string, path: string, at?: number): Promise<string | null> {
    const q = new URLSearchParams({ path });
    if (at !== undefined) q.set('at', String(at));
    try {
      const response = await this.request('GET', `/v1/runs/${encodeURIComponent(id)}/world?${q}`);
      return await response.text();
    } catch (e) {
      if (e instanceof PraxisError && e.status === 404 && e.field === 'path') return null;
      throw e;
    }
  }

  async branch(id: string, request: BranchRun): Promise<Branched> {
    const o = obj(await this.json('POST', `/v1/runs/${encodeURIComponent(id)}/branch`, request), 'branch');
    return {
      id: str(o, 'id', 'branch'),
      status: str(o, 'status', 'branch'),
      branch_of: str(o, 'branch_of', 'branch'),
      branched_at: num(o, 'branched_at', 'branch'),
      workspace: str(o, 'workspace', 'branch'),
    };
  }
}
