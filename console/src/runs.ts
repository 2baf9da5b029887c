// The runs list: status, task, provider, started, duration, steps, cost; filtered by
// status, paged, refreshed every two seconds.

import { get, type RunList, type RunView } from "./api.js";
import { duration, h, on, replace, usd } from "./dom.js";
import type { Cleanup } from "./main.js";

const STATUSES = ["", "queued", "running", "awaiting_approval", "completed", "failed", "cancelled", "interrupted"];
const PAGE = 20;

export function runsPage(main: HTMLElement, params: URLSearchParams): Cleanup {
  let status = params.get("status") ?? "";
  let offset = Number(params.get("offset") ?? 0) || 0;
  const select = h("select", { id: "status-filter", name: "status" }, ...STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "any")));
  const body = h("tbody");
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "Newer");
  const next = h("button", { type: "button" }, "Older");
  replace(
    main,
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status"), select, prev, next, summary),
    h(
      "table",
      { class: "runs" },
      h("thead", {}, h("tr", {}, ...["Status", "Task", "Provider", "Started", "Duration", "Steps", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
      body,
    ),
  );
  const refresh = async () => {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status) q.set("status", status);
    let list: RunList;
    try {
      list = await get<RunList>(`/v1/runs?${q}`);
    } catch (e) {
      replace(summary, `Could not list runs: ${String(e)}`);
      return;
    }
    replace(body, ...list.runs.map(row));
    if (list.runs.length === 0) replace(body, h("tr", {}, h("td", { colspan: 7 }, "No runs.")));
    const last = Math.min(offset + list.runs.length, list.total);
    replace(summary, list.total === 0 ? "" : `${offset + 1}–${last} of ${list.total}`);
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE >= list.total;
  };
  const go = () => {
    const q = new URLSearchParams();
    if (status) q.set("status", status);
    if (offset) q.set("offset", String(offset));
    history.replaceState(null, "", `/ui/${q.size ? `?${q}` : ""}`);
    void refresh();
  };
  on(select, "change", () => {
    status = select.value;
    offset = 0;
    go();
  });
  on(prev, "click", () => {
    offset = Math.max(0, offset - PAGE);
    go();
  });
  on(next, "click", () => {
    offset += PAGE;
    go();
  });
  void refresh();
  const timer = setInterval(() => void refresh(), 2000);
  return () => clearInterval(timer);
}

function row(run: RunView): HTMLElement {
  const started = Date.parse(run.started_at);
  const ended = run.ended_at ? Date.parse(run.ended_at) : Date.now();
  return h(
    "tr",
    { "data-status": run.status },
    h("td", {}, h("span", { class: `badge s-${run.status}` }, run.status)),
    h("td", { class: "task" }, h("a", { href: `/ui/runs/${encodeURIComponent(run.id)}` }, run.task || run.id)),
    h("td", { "data-label": "provider" }, run.provider),
    h("td", { "data-label": "started" }, Number.isFinite(started) ? new Date(started).toLocaleString() : run.started_at),
    h("td", { "data-label": "took" }, Number.isFinite(started) ? duration(ended - started) : "–"),
    h("td", { class: "num", "data-label": "steps" }, run.steps),
    h("td", { class: "num", "data-label": "cost" }, usd(run.cost_usd_micros)),
  );
}
