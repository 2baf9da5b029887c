// Start a run: task, workspace (under the server's workspace roots), provider, writ, limits.

import { ApiFailure, type Created, post } from "./api.js";
import { field, h, on, replace } from "./dom.js";
import type { Cleanup } from "./main.js";
import { navigate } from "./main.js";

export function newRunPage(main: HTMLElement): Cleanup {
  const task = h("textarea", { id: "run-task", name: "task", rows: 3, required: true });
  const workspace = h("input", { type: "text", id: "run-workspace", name: "workspace", autocomplete: "off", placeholder: "default: a fresh directory on the server" });
  const provider = h("select", { id: "run-provider", name: "provider" }, h("option", { value: "" }, "server default"), h("option", { value: "mock" }, "mock"), h("option", { value: "scripted" }, "scripted"), h("option", { value: "openai" }, "openai"), h("option", { value: "anthropic" }, "anthropic"), h("option", { value: "ollama" }, "ollama"));
  const model = h("input", { type: "text", id: "run-model", name: "model", autocomplete: "off" });
  const script = h("textarea", { id: "run-script", name: "script", rows: 5, spellcheck: "false", placeholder: '{"turns": [{"content": "..."}]}' });
  const writ = h("textarea", { id: "run-writ", name: "writ", rows: 3, spellcheck: "false", placeholder: "default: the development writ (not in production mode)" });
  const maxSteps = h("input", { type: "number", id: "run-max-steps", name: "max_steps", min: 1 });
  const maxSeconds = h("input", { type: "number", id: "run-max-seconds", name: "max_seconds", min: 1 });
  const approve = h("select", { id: "run-approve", name: "approve" }, h("option", { value: "wait" }, "wait for a person"), h("option", { value: "never" }, "deny all"), h("option", { value: "auto" }, "approve all"));
  const note = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card new-run", "aria-label": "New run" },
    field("Task", task),
    field("Workspace", workspace, "a directory under the server's PRAXIS_WORKSPACE_ROOTS"),
    field("Provider", provider),
    field("Model", model),
    field("Script (scripted provider)", script),
    field("Writ", writ),
    field("Max steps", maxSteps),
    field("Max seconds", maxSeconds),
    field("Approvals", approve),
    h("button", { type: "submit" }, "Start run"),
    note,
  );
  on(form, "submit", (ev) => {
    ev.preventDefault();
    void (async () => {
      const body: Record<string, unknown> = { task: task.value, approve: approve.value };
      const text = (el: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, key: string) => {
        if (el.value.trim()) body[key] = el.value.trim();
      };
      text(workspace, "workspace");
      text(provider, "provider");
      text(model, "model");
      text(writ, "writ");
      const limits: Record<string, number> = {};
      if (maxSteps.value) limits["max_steps"] = Number(maxSteps.value);
      if (maxSeconds.value) limits["max_seconds"] = Number(maxSeconds.value);
      if (Object.keys(limits).length) body["limits"] = limits;
      try {
        if (script.value.trim()) body["script"] = JSON.parse(script.value);
      } catch (e) {
        note.textContent = `Script: not JSON (${String(e)})`;
        return;
      }
      try {
        const created = await post<Created>("/v1/runs", body);
        navigate(`/ui/runs/${encodeURIComponent(created.id)}`);
      } catch (e) {
        note.textContent = e instanceof ApiFailure ? `${e.field ? `${e.field}: ` : ""}${e.message}` : String(e);
      }
    })();
  });
  replace(main, h("h1", {}, "New run"), form);
  return () => {};
}
