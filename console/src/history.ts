// History panels of a run: the world at any entry (step slider, changed files, diff against
// the previous entry), branch from an entry, diff of two runs, and what-if under a writ.

import { ApiFailure, type Branched, get, post, type RunDiff, runPath, type WhatIfAnswer, type WorldView, authHeaders } from "./api.js";
import { field, folded, h, on, replace } from "./dom.js";
import { navigate } from "./main.js";

export interface HistoryPanels {
  element: HTMLElement;
  setLast(seq: number): void;
  branchFrom(seq: number): void;
}

export function historyPanels(runId: string): HistoryPanels {
  // --- world -------------------------------------------------------------------------
  const slider = h("input", { type: "range", id: "world-at", name: "at", min: 1, max: 1, step: 1, value: 1 });
  const atLabel = h("output", { for: "world-at", "data-testid": "world-at" }, "1");
  const files = h("ul", { class: "files", "aria-label": "Changed files" });
  const fileView = h("div", { class: "file-view", "aria-live": "polite" });
  const worldNote = h("p", { class: "muted", "aria-live": "polite" });
  const load = h("button", { type: "button" }, "Show world");
  let last = 0;
  let followTail = true;
  let selected: string | null = null;

  const showFile = async (at: number, path: string) => {
    selected = path;
    const content = await fileAt(runId, at, path);
    const before = at > 1 ? await fileAt(runId, at - 1, path) : null;
    if (selected !== path || Number(slider.value) !== at) return; // a newer choice won
    replace(
      fileView,
      h("h4", {}, path, ` after #${at}`),
      content === null ? h("p", { class: "muted" }, "(does not exist at this entry)") : h("pre", { class: "output", "data-testid": "file-content" }, content),
      h("h4", {}, `Diff against #${at - 1}`),
      h("pre", { class: "output diff", "data-testid": "file-diff" }, ...lineDiff(before ?? "", content ?? "")),
    );
  };

  const showWorld = async () => {
    const at = Number(slider.value);
    atLabel.textContent = String(at);
    try {
      const world = await get<WorldView>(`${runPath(runId)}/world?at=${at}`);
      replace(worldNote, `${Object.keys(world.files).length} files at #${world.at}; ${world.changed.length} changed by the run so far`);
      replace(
        files,
        ...world.changed.map((path) => {
          const b = h("button", { type: "button", class: "link" }, path);
          on(b, "click", () => void showFile(at, path));
          return h("li", {}, b, world.files[path] === undefined ? " (deleted)" : "");
        }),
      );
      if (selected) await showFile(at, selected);
    } catch (e) {
      replace(worldNote, e instanceof ApiFailure ? e.message : String(e));
      replace(files);
    }
  };
  on(slider, "input", () => {
    followTail = Number(slider.value) === last;
    atLabel.textContent = slider.value;
  });
  on(slider, "change", () => void showWorld());
  on(load, "click", () => void showWorld());

  // --- branch ------------------------------------------------------------------------
  const branchAt = h("input", { type: "number", id: "branch-at", name: "at", min: 1, value: 1 });
  const branchProvider = h("select", { id: "branch-provider", name: "provider" }, h("option", { value: "" }, "server default"), h("option", { value: "mock" }, "mock"), h("option", { value: "scripted" }, "scripted"));
  const branchModel = h("input", { type: "text", id: "branch-model", name: "model", autocomplete: "off" });
  const branchScript = h("textarea", { id: "branch-script", name: "script", rows: 4, spellcheck: "false", placeholder: '{"turns": [{"content": "..."}]}' });
  const branchTask = h("textarea", { id: "branch-task", name: "task", rows: 2, placeholder: "an instruction for the branch" });
  const branchNote = h("p", { class: "muted", "aria-live": "polite" });
  const branchForm = h(
    "form",
    { class: "card", "aria-label": "Branch from an entry" },
    h("h3", {}, "Branch from here"),
    field("Entry (seq)", branchAt),
    field("Provider", branchProvider),
    field("Model", branchModel),
    field("Script (scripted provider)", branchScript),
    field("Instruction", branchTask),
    h("button", { type: "submit" }, "Branch"),
    branchNote,
  );
  on(branchForm, "submit", (ev) => {
    ev.preventDefault();
    void (async () => {
      const body: Record<string, unknown> = { at: Number(branchAt.value) };
      if (branchProvider.value) body["provider"] = branchProvider.value;
      if (branchModel.value.trim()) body["model"] = branchModel.value.trim();
      if (branchTask.value.trim()) body["task"] = branchTask.value.trim();
      try {
        if (branchScript.value.trim()) body["script"] = JSON.parse(branchScript.value);
      } catch (e) {
        branchNote.textContent = `The script is not JSON: ${String(e)}`;
        return;
      }
      try {
        const b = await post<Branched>(`${runPath(runId)}/branch`, body);
        navigate(`/ui/runs/${encodeURIComponent(b.id)}`);
      } catch (e) {
        branchNote.textContent = e instanceof ApiFailure ? e.message : String(e);
      }
    })();
  });

  // --- compare -----------------------------------------------------------------------
  const other = h("input", { type: "text", id: "compare-other", name: "other", autocomplete: "off", placeholder: "another run id" });
  const compareOut = h("div", { class: "compare", "aria-live": "polite" });
  const compareForm = h("form", { class: "card", "aria-label": "Compare with another run" }, h("h3", {}, "Diff with another run"), field("Other run", other), h("button", { type: "submit" }, "Compare"), compareOut);
  on(compareForm, "submit", (ev) => {
    ev.preventDefault();
    void (async () => {
      try {
        const d = await get<RunDiff>(`${runPath(runId)}/diff/${encodeURIComponent(other.value.trim())}`);
        replace(compareOut, ...renderDiff(d));
      } catch (e) {
        replace(compareOut, h("p", { class: "error" }, e instanceof ApiFailure ? e.message : String(e)));
      }
    })();
  });

  // --- what-if -----------------------------------------------------------------------
  const writ = h("textarea", { id: "whatif-writ", name: "writ", rows: 4, spellcheck: "false", placeholder: "paste a writ token" });
  const whatifOut = h("div", { class: "whatif", "aria-live": "polite" });
  const whatifForm = h("form", { class: "card", "aria-label": "What if" }, h("h3", {}, "What if"), field("Writ", writ), h("button", { type: "submit" }, "Re-judge"), whatifOut);
  on(whatifForm, "submit", (ev) => {
    ev.preventDefault();
    void (async () => {
      try {
        const a = await post<WhatIfAnswer>(`${runPath(runId)}/whatif`, { writ: writ.value });
        replace(
          whatifOut,
          h("p", { "data-testid": "whatif-summary" }, `${a.changed.length} verdict(s) would change`),
          a.changed.length
            ? h(
                "table",
                {},
                h("thead", {}, h("tr", {}, ...["Seq", "Tool", "Before", "After", "Why"].map((c) => h("th", { scope: "col" }, c)))),
                h("tbody", {}, ...a.changed.map((c) => h("tr", {}, h("td", {}, c.seq), h("td", {}, c.tool), h("td", {}, c.before), h("td", {}, c.after), h("td", {}, c.reason)))),
              )
            : null,
        );
      } catch (e) {
        replace(whatifOut, h("p", { class: "error" }, e instanceof ApiFailure ? e.message : String(e)));
      }
    })();
  });

  const element = h(
    "section",
    { class: "history", "aria-label": "History" },
    h("h2", {}, "History"),
    h("div", { class: "card world" }, h("h3", {}, "World"), h("div", { class: "toolbar" }, h("label", { for: "world-at" }, "After entry"), slider, atLabel, load), worldNote, files, fileView),
    branchForm,
    compareForm,
    whatifForm,
  );
  return {
    element,
    setLast(seq: number) {
      if (seq <= last) return;
      last = seq;
      slider.max = String(seq);
      if (followTail) {
        slider.value = String(seq);
        atLabel.textContent = String(seq);
      }
    },
    branchFrom(seq: number) {
      branchAt.value = String(seq);
      branchForm.scrollIntoView({ block: "center" });
      branchAt.focus();
    },
  };
}

/** A file's text after entry `at`; null when it did not exist then. */
async function fileAt(runId: string, at: number, path: string): Promise<string | null> {
  // Ask the listing first: a missing file is an answer, not a failed request.
  const world = await get<WorldView>(`${runPath(runId)}/world?at=${at}`);
  if (!(path in world.files)) return null;
  const res = await fetch(`${runPath(runId)}/world?at=${at}&path=${encodeURIComponent(path)}`, { headers: authHeaders(), credentials: "omit" });
  if (res.status === 404) return null;
  if (!res.ok) throw new ApiFailure(res.status, await res.text());
  return res.text();
}

/** A line diff (longest common subsequence), as `- `/`+ `/`  ` lines in spans. */
export function lineDiff(before: string, after: string): HTMLElement[] {
  const a = before === "" ? [] : before.split("\n");
  const b = after === "" ? [] : after.split("\n");
  if (a.length * b.length > 4_000_000) return [h("span", {}, "(files too large to diff here)")];
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    const row = lcs[i]!;
    const below = lcs[i + 1]!;
    for (let j = b.length - 1; j >= 0; j--) row[j] = a[i] === b[j] ? below[j + 1]! + 1 : Math.max(below[j]!, row[j + 1]!);
  }
  const out: HTMLElement[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(h("span", { class: "same" }, `  ${a[i]}\n`));
      i++;
      j++;
    } else if (i < a.length && (j >= b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push(h("span", { class: "del" }, `- ${a[i]}\n`));
      i++;
    } else {
      out.push(h("span", { class: "add" }, `+ ${b[j]}\n`));
      j++;
    }
  }
  if (out.length === 0) out.push(h("span", { class: "same" }, "(no change)"));
  return out;
}

function renderDiff(d: RunDiff): HTMLElement[] {
  const step = (s: RunDiff["rest_a"][number] | null) => s ?? "(none)";
  const div = d.divergence;
  return [
    h("p", { "data-testid": "compare-summary" }, `${d.run_a}: ${d.steps_a} steps (${d.end_a ?? "unfinished"}) · ${d.run_b}: ${d.steps_b} steps (${d.end_b ?? "unfinished"}) · ${d.common_prefix} identical leading steps`),
    div
      ? h(
          "div",
          {},
          h("h4", {}, `First difference at step ${div.index}`),
          h("pre", { class: "output" }, `A: ${div.a ? `${div.a.content}\n${div.a.calls.map((c) => `${c.tool} ${c.verdict} (${c.rule}) ${c.status ?? ""}`).join("\n")}` : "(no more steps)"}`),
          h("pre", { class: "output" }, `B: ${div.b ? `${div.b.content}\n${div.b.calls.map((c) => `${c.tool} ${c.verdict} (${c.rule}) ${c.status ?? ""}`).join("\n")}` : "(no more steps)"}`),
          h("p", {}, `then A: ${d.rest_a.map(step).join("; ") || "–"}`),
          h("p", {}, `then B: ${d.rest_b.map(step).join("; ") || "–"}`),
        )
      : h("p", {}, "The trajectories are identical."),
    h("h4", {}, `${d.files.length} file(s) differ`),
    ...d.files.map((f) => h("div", {}, h("p", {}, h("code", {}, f.path), ` ${f.change}${f.note ? ` (${f.note})` : ""}`), f.diff ? folded(f.diff, "Diff", 3000) : null)),
  ];
}
