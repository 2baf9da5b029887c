// The console's only door to the server: the `/v1` API with the session's API token.
// Response shapes mirror the server's DTOs (crates/praxis-server/src/api/dto.rs, history.rs,
// audit.rs, ui.rs); ledger records and feed events use the types generated from the
// published JSON Schema (src/generated/).

const TOKEN_KEY = "praxis.token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Called when the server answers 401: the token is wrong or gone. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders(), Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  if (res.status === 401) {
    onUnauthorized();
    throw new ApiFailure(401, "authentication required");
  }
  const text = await res.text();
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    let field: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error?: unknown; field?: unknown };
      if (typeof parsed.error === "string") message = parsed.error;
      if (typeof parsed.field === "string") field = parsed.field;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiFailure(res.status, message, field);
  }
  return (res.headers.get("content-type") ?? "").includes("json") ? (JSON.parse(text) as T) : (text as T);
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => call<T>("POST", path, body);

export const runPath = (id: string) => `/v1/runs/${encodeURIComponent(id)}`;

// --- shapes of the API's answers -------------------------------------------------------

export interface Session {
  tenant: string;
  auth: boolean;
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
  usage: { input_tokens: number; output_tokens: number };
  task: string;
  workspace: string;
  provider: string;
  started_at: string;
  ended_at: string | null;
  cost_usd_micros: number;
  last_seq: number;
  tenant: string;
  queue_position?: number;
}

export interface RunList {
  runs: RunView[];
  total: number;
  offset: number;
  limit: number;
}

export interface Created {
  id: string;
  status: string;
}

export interface ApprovalView {
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

export interface Branched {
  id: string;
  branch_of: string;
  branched_at: number;
  workspace: string;
}

export interface StepCall {
  tool: string;
  verdict: string;
  rule: string;
  status: string | null;
}

export interface Step {
  step: number;
  content: string;
  calls: StepCall[];
}

export interface RunDiff {
  run_a: string;
  run_b: string;
  steps_a: number;
  steps_b: number;
  common_prefix: number;
  divergence: { index: number; a: Step | null; b: Step | null } | null;
  rest_a: string[];
  rest_b: string[];
  end_a: string | null;
  end_b: string | null;
  files: { path: string; change: string; diff: string | null; note: string | null }[];
}

export interface ChainVerdict {
  run_id: string;
  intact: boolean;
  entries: number;
  broken_seq?: number;
  problem?: string;
}

export interface WhatIfAnswer {
  run_id: string;
  changed: { seq: number; tool: string; before: string; after: string; reason: string }[];
}
