// What waits for a person: the tool, its arguments, why it needs approval.

import { type ApprovalView, get } from "./api.js";
import { folded, h, replace } from "./dom.js";
import { decisionForm } from "./decide.js";
import type { Cleanup } from "./main.js";

export function approvalsPage(main: HTMLElement): Cleanup {
  const list = h("div", { class: "approvals", "aria-live": "polite" });
  replace(main, h("h1", {}, "Pending approvals"), list);
  const shown = new Map<string, HTMLElement>();
  const refresh = async () => {
    let approvals: ApprovalView[];
    try {
      approvals = (await get<{ approvals: ApprovalView[] }>("/v1/approvals")).approvals;
    } catch (e) {
      replace(list, h("p", { class: "error" }, `Could not list approvals: ${String(e)}`));
      return;
    }
    const ids = new Set(approvals.map((a) => a.id));
    for (const [id, card] of shown) if (!ids.has(id)) (card.remove(), shown.delete(id));
    for (const a of approvals) {
      if (shown.has(a.id)) continue;
      const card = approvalCard(a, () => void refresh());
      shown.set(a.id, card);
      list.appendChild(card);
    }
    const empty = list.querySelector(".empty");
    if (shown.size === 0 && !empty) list.appendChild(h("p", { class: "empty muted" }, "Nothing waits for approval."));
    if (shown.size > 0) empty?.remove();
  };
  void refresh();
  const timer = setInterval(() => void refresh(), 2000);
  return () => clearInterval(timer);
}

function approvalCard(a: ApprovalView, done: () => void): HTMLElement {
  return h(
    "section",
    { class: "card approval", "aria-label": `Approval for ${a.tool}` },
    h("h2", {}, "Tool ", h("code", {}, a.tool), " in run ", h("a", { href: `/ui/runs/${encodeURIComponent(a.run_id)}` }, a.run_id)),
    h("p", {}, h("strong", {}, "Why: "), a.reason),
    folded(JSON.stringify(a.arguments, null, 2), "Arguments"),
    decisionForm(a.run_id, a.call_id, done),
  );
}
