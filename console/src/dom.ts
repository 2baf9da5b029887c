// The only way the console builds DOM: elements with attributes from a fixed list and text
// children as text nodes. Nothing here parses HTML, so what a model or a tool produced can
// never become markup (no innerHTML anywhere in the console).

export type Child = Node | string | number | null | undefined | false;

const ATTRIBUTES = new Set([
  "id", "class", "type", "name", "value", "for", "role", "title", "placeholder", "min", "max",
  "step", "rows", "cols", "colspan", "scope", "tabindex", "autocomplete", "aria-label",
  "aria-live", "aria-current", "aria-describedby", "aria-valuenow", "aria-valuemin",
  "aria-valuemax", "aria-busy", "aria-expanded", "data-seq", "data-kind", "data-status",
  "data-testid", "data-label", "required", "disabled", "checked", "selected", "open", "spellcheck", "href",
  "lang", "maxlength",
]);

export type Attrs = Record<string, string | number | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (!ATTRIBUTES.has(key)) throw new Error(`attribute ${key} is not allowed`);
    if (key === "href" && !String(value).startsWith("/ui/") && String(value) !== "/ui") {
      throw new Error("links stay inside the console");
    }
    el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

export function on<K extends keyof HTMLElementEventMap>(
  el: HTMLElement,
  event: K,
  handler: (ev: HTMLElementEventMap[K]) => void,
): HTMLElement {
  el.addEventListener(event, handler);
  return el;
}

/** A labelled form field: the label names the control (axe, screen readers). */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", {}, hint) : null);
}

/** Text that may be long: folded behind a summary when over `limit` characters or lines. */
export function folded(text: string, label: string, limit = 600): HTMLElement {
  const pre = h("pre", { class: "output" }, text);
  const lines = text.split("\n").length;
  if (text.length <= limit && lines <= 12) return pre;
  return h("details", { class: "fold" }, h("summary", {}, `${label} (${text.length} chars, ${lines} lines)`), pre);
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function usd(micros: number): string {
  return `$${(micros / 1_000_000).toFixed(micros < 10_000 ? 4 : 2)}`;
}
