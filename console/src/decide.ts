// Approve or deny a pending proposal, with a reason; used by the run page and the
// approvals page. The server records the decision under the token's tenant.

import { ApiFailure, post } from "./api.js";
import { field, h, on } from "./dom.js";

export function decisionForm(runId: string, callId: string, done: () => void): HTMLElement {
  const reason = h("input", { type: "text", name: "reason", placeholder: "why (shown to the model on deny)", autocomplete: "off" });
  const approve = h("button", { type: "button", class: "approve" }, "Approve");
  const deny = h("button", { type: "button", class: "deny" }, "Deny");
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const decide = async (decision: "approve" | "deny") => {
    approve.disabled = deny.disabled = true;
    status.textContent = decision === "approve" ? "Approving…" : "Denying…";
    try {
      await post(`/v1/approvals/${encodeURIComponent(`${runId}:${callId}`)}`, { decision, reason: reason.value });
      status.textContent = decision === "approve" ? "Approved." : "Denied.";
      done();
    } catch (e) {
      status.textContent = e instanceof ApiFailure ? e.message : String(e);
      approve.disabled = deny.disabled = false;
    }
  };
  on(approve, "click", () => void decide("approve"));
  on(deny, "click", () => void decide("deny"));
  return h("div", { class: "decide" }, field("Reason", reason), h("div", { class: "buttons" }, approve, deny), status);
}
