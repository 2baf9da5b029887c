// One run: its live log from the SSE feed, phase and active tool, proposals with verdict and
// rule, folded observations, highlighted failures, streamed model text, counters against
// the writ's budgets, the outcome, the chain check, approvals, and the history panels.

import { type ChainVerdict, get, type RunView, runPath } from "./api.js";
import { append, duration, folded, h, on, replace, usd } from "./dom.js";
import { decisionForm } from "./decide.js";
import { Feed } from "./feed.js";
import type { EntryLine } from "./generated/feed.js";
import { historyPanels } from "./history.js";
import type { Cleanup } from "./main.js";

interface Budget {
  tool_calls?: number;
  model_calls?: number;
  model_tokens?: number;
  wall_seconds?: number;
  usd?: number;
  bytes_written?: number;
}

type Counter = keyof Budget;

export function runPage(main: HTMLElement, runId: string): Cleanup {
  const title = h("h1", {}, "Run ", h("code", {}, runId));
  const status = h("span", { class: "badge", "data-testid": "status" }, "…");
  const phase = h("span", { class: "phase", "data-testid": "phase" });
  const chain = h("span", { class: "badge chain", "data-testid": "chain" }, "chain: not checked");
  const connection = h("span", { class: "muted", "data-testid": "connection" });
  const task = h("p", { class: "task-text" });
  const counters = h("div", { class: "counters", "aria-label": "Counters and budgets", role: "group" });
  const streaming = h("pre", { class: "streaming output", "aria-live": "off", "data-testid": "streaming" });
  const outcome = h("section", { class: "outcome", "aria-label": "Outcome", "aria-live": "polite" });
  const pending = h("section", { class: "pending", "aria-label": "Waiting for approval", "aria-live": "polite" });
  const log = h("ol", { class: "log", "aria-label": "Execution log", "data-testid": "log" });
  const panels = historyPanels(runId);

  replace(
    main,
    title,
    h("div", { class: "run-head" }, status, phase, chain, connection),
    task,
    counters,
    pending,
    h("h2", {}, "Model output"),
    streaming,
    outcome,
    h("h2", {}, "Log"),
    log,
    panels.element,
  );

  const budget: Budget = {};
  const spent: Record<Counter, number> = { tool_calls: 0, model_calls: 0, model_tokens: 0, wall_seconds: 0, usd: 0, bytes_written: 0 };
  const proposals = new Map<string, { tool: string; arguments: unknown; reason: string }>();
  let startedAt = 0;
  let finished = false;

  const drawCounters = () => {
    const rows: [Counter, string, (v: number) => string][] = [
      ["model_calls", "Model calls", String],
      ["tool_calls", "Tool calls", String],
      ["model_tokens", "Tokens", String],
      ["usd", "Cost", (v) => usd(Math.round(v * 1_000_000))],
      ["wall_seconds", "Wall time", (v) => duration(v * 1000)],
      ["bytes_written", "Bytes written", String],
    ];
    replace(
      counters,
      ...rows.map(([key, label, fmt]) => {
        const limit = budget[key];
        const value = spent[key];
        const meter = limit
          ? h("meter", { min: 0, max: limit, value: Math.min(value, limit), "aria-label": `${label} against budget` })
          : null;
        return h(
          "div",
          { class: `counter${limit && value >= limit ? " over" : ""}`, "data-testid": `counter-${key}` },
          h("span", { class: "label" }, label),
          h("span", { class: "value" }, fmt(value), limit ? ` / ${fmt(limit)}` : ""),
          meter,
        );
      }),
    );
  };

  const showView = (view: RunView) => {
    status.textContent = view.status;
    status.className = `badge s-${view.status}`;
    phase.textContent = view.phase ? `phase: ${view.phase}${view.active_tool ? ` · tool: ${view.active_tool}` : ""}` : "";
    if (!task.textContent) task.textContent = view.task;
    panels.setLast(view.last_seq);
  };

  const checkChain = async () => {
    try {
      const v = await get<ChainVerdict>(`${runPath(runId)}/verify`);
      chain.textContent = v.intact ? `chain verified (${v.entries} entries)` : `chain BROKEN at seq ${v.broken_seq}: ${v.problem}`;
      chain.className = `badge chain ${v.intact ? "ok" : "bad"}`;
    } catch (e) {
      chain.textContent = `chain: ${String(e)}`;
    }
  };

  const refreshView = async () => {
    try {
      showView(await get<RunView>(runPath(runId)));
    } catch (e) {
      status.textContent = String(e);
    }
  };

  const showPending = (callId: string) => {
    const p = proposals.get(callId);
    const card = h(
      "div",
      { class: "card approval", "data-testid": "pending-approval" },
      h("h2", {}, "Waiting for approval: ", h("code", {}, p?.tool ?? "?")),
      h("p", {}, h("strong", {}, "Why: "), p?.reason ?? ""),
      folded(JSON.stringify(p?.arguments ?? null, null, 2), "Arguments"),
      decisionForm(runId, callId, () => void refreshView()),
    );
    card.dataset["call"] = callId;
    pending.appendChild(card);
  };

  const onEntry = (entry: EntryLine) => {
    if (startedAt === 0) startedAt = Date.parse(entry.at);
    spent.wall_seconds = (Date.parse(entry.at) - startedAt) / 1000;
    const item = h("li", { class: `entry k-${entry.kind}`, "data-seq": entry.seq, "data-kind": entry.kind });
    const head = h("div", { class: "entry-head" }, h("span", { class: "seq" }, `#${entry.seq}`), h("span", { class: "kind" }, entry.kind));
    const branch = h("button", { type: "button", class: "link small", "aria-label": `Branch from entry ${entry.seq}` }, "Branch from here");
    on(branch, "click", () => panels.branchFrom(entry.seq));
    append(head, h("time", {}, new Date(entry.at).toLocaleTimeString()), branch);
    item.appendChild(head);
    switch (entry.kind) {
      case "run_started": {
        const p = entry.payload;
        task.textContent = p.spec.task;
        append(item, h("p", {}, `provider ${p.spec.provider}${p.spec.model ? ` · model ${p.spec.model}` : ""} · workspace ${p.spec.workspace}`));
        if (p.branch) append(item, h("p", {}, "branch of ", h("a", { href: `/ui/runs/${encodeURIComponent(p.branch.run_id)}` }, p.branch.run_id), ` at #${p.branch.seq}`));
        readBudget(p.writ, budget);
        break;
      }
      case "model_response": {
        const p = entry.payload;
        spent.model_calls += 1;
        spent.model_tokens += p.usage.input_tokens + p.usage.output_tokens;
        spent.usd += (p.cost_usd_micros ?? 0) / 1_000_000;
        streaming.textContent = "";
        append(item, h("p", { class: "muted" }, `step ${p.step} · ${p.model}`));
        if (p.content) append(item, folded(p.content, "Model text", 2000));
        for (const call of p.tool_calls) append(item, h("p", {}, "calls ", h("code", {}, call.name)));
        break;
      }
      case "proposal": {
        const p = entry.payload;
        proposals.set(p.call_id, { tool: p.tool, arguments: p.arguments, reason: p.reason });
        if (p.verdict === "deny") item.classList.add("failure");
        append(
          item,
          h("p", {}, h("code", {}, p.tool), " ", h("span", { class: `verdict v-${p.verdict}`, "data-testid": "verdict" }, p.verdict), " by rule ", h("code", { class: "rule" }, p.rule)),
          p.reason ? h("p", { class: "reason" }, p.reason) : null,
          folded(JSON.stringify(p.arguments, null, 2), "Arguments", 300),
        );
        break;
      }
      case "approval_requested": {
        const p = entry.payload;
        append(item, h("p", {}, "waits for a person: ", p.reason ?? ""));
        showPending(p.call_id);
        break;
      }
      case "approval_decided": {
        const p = entry.payload;
        if (!p.approved) item.classList.add("failure");
        append(item, h("p", {}, `${p.approved ? "approved" : "denied"} by ${p.by}`, p.reason ? `: ${p.reason}` : ""));
        for (const card of pending.querySelectorAll<HTMLElement>("[data-call]")) if (card.dataset["call"] === p.call_id) card.remove();
        break;
      }
      case "execution": {
        const p = entry.payload;
        spent.tool_calls += 1;
        for (const f of p.files_changed ?? []) spent.bytes_written += f.size ?? 0;
        if (p.status !== "ok" || p.outcome === "failed") item.classList.add("failure");
        append(
          item,
          h("p", {}, h("code", {}, p.tool), ` ${p.status}${p.exit_code != null ? ` (exit ${p.exit_code})` : ""} in ${duration(p.duration_ms)}`),
          p.files_changed?.length ? h("p", {}, "changed: ", p.files_changed.map((f) => f.path).join(", ")) : null,
          folded(p.output, "Observation"),
        );
        break;
      }
      case "invalid_output":
      case "model_error": {
        item.classList.add("failure");
        append(item, folded(JSON.stringify(entry.payload, null, 2), "Details", 400));
        break;
      }
      case "run_finished": {
        const p = entry.payload;
        finished = true;
        if (p.status !== "completed") item.classList.add("failure");
        replace(
          outcome,
          h("h2", {}, "Outcome"),
          h("p", { "data-testid": "stop-reason" }, `${p.status} · stop reason: ${p.stop_reason}`),
          p.final_answer ? h("div", { class: "final", "data-testid": "final-answer" }, folded(p.final_answer, "Final answer", 4000)) : null,
          p.error ? h("p", { class: "error" }, p.error) : null,
        );
        append(item, h("p", {}, `${p.status}: ${p.stop_reason}`));
        break;
      }
      default:
        break;
    }
    log.appendChild(item);
    drawCounters();
    panels.setLast(entry.seq);
  };

  const feed = new Feed(runId, {
    entry: onEntry,
    delta: (d) => streaming.append(d.text),
    connection: (state) => {
      connection.textContent = state === "live" ? "live" : state;
      if (state === "ended") {
        void refreshView();
        void checkChain();
      }
    },
  });
  drawCounters();
  void refreshView();
  feed.start();
  const timer = setInterval(() => {
    if (!finished) void refreshView();
  }, 1000);
  return () => {
    clearInterval(timer);
    feed.stop();
  };
}

/** The tightest budget of every writ block (a proposal must satisfy each). */
function readBudget(writ: unknown, into: Budget): void {
  const blocks = (writ as { blocks?: unknown } | null | undefined)?.blocks;
  if (!Array.isArray(blocks)) return;
  for (const block of blocks) {
    const b = (block as { budget?: Record<string, unknown> } | null)?.budget;
    if (!b) continue;
    for (const key of ["tool_calls", "model_calls", "model_tokens", "wall_seconds", "usd", "bytes_written"] as Counter[]) {
      const v = b[key];
      if (typeof v === "number" && v > 0) into[key] = Math.min(into[key] ?? Infinity, v);
    }
  }
}
