// The Praxis operator console: a small single-page app over the `/v1` API.
// Routes: /ui/ (runs), /ui/runs/{id}, /ui/approvals, /ui/new. With auth on, nothing but the
// token prompt is shown until the server accepts the token.

import { ApiFailure, get, type Session, setToken, token, whenUnauthorized } from "./api.js";
import { h, on, replace } from "./dom.js";
import { approvalsPage } from "./approvals.js";
import { newRunPage } from "./newrun.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

/** What a page returns: a function that stops its timers and feeds. */
export type Cleanup = () => void;

const root = document.getElementById("app") as HTMLElement;
let cleanup: Cleanup = () => {};

export function navigate(path: string): void {
  history.pushState(null, "", path);
  void route();
}

/** Same-page links: let the router handle clicks on `a[href^="/ui/"]`. */
document.addEventListener("click", (ev) => {
  const target = ev.target instanceof Element ? ev.target.closest("a") : null;
  if (!target || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  const href = target.getAttribute("href");
  if (href && href.startsWith("/ui")) {
    ev.preventDefault();
    navigate(href);
  }
});
window.addEventListener("popstate", () => void route());

whenUnauthorized(() => {
  const had = token();
  setToken(null);
  prompt(had ? "The server refused the token. Enter a valid API token." : undefined);
});

function prompt(message?: string): void {
  cleanup();
  cleanup = () => {};
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h(
    "form",
    { class: "card token-form", "aria-label": "API token" },
    h("h1", {}, "Praxis console"),
    h("p", {}, "This server needs an API token (create one with `praxis token create --tenant T`). It is kept for this browser session only."),
    h("label", { for: "token" }, "API token"),
    input,
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("button", { type: "submit" }, "Sign in"),
  );
  on(form, "submit", (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    void start();
  });
  replace(root, h("main", { id: "main" }, form));
  input.focus();
}

async function start(): Promise<void> {
  let session: Session;
  try {
    session = await get<Session>("/v1/session");
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) return; // the token prompt is up

    replace(root, h("main", { id: "main" }, h("p", { class: "error", role: "alert" }, `The server did not answer: ${String(e)}`)));
    return;
  }
  shell(session);
  await route();
}

let main: HTMLElement = h("main", { id: "main" });

function shell(session: Session): void {
  const signOut = h("button", { type: "button", class: "link" }, "Sign out");
  on(signOut, "click", () => {
    setToken(null);
    prompt();
  });
  main = h("main", { id: "main", tabindex: "-1" });
  replace(
    root,
    h(
      "header",
      { class: "top" },
      h("a", { href: "/ui/", class: "brand" }, "Praxis"),
      h(
        "nav",
        { "aria-label": "Console" },
        h("a", { href: "/ui/" }, "Runs"),
        h("a", { href: "/ui/approvals" }, "Approvals"),
        h("a", { href: "/ui/new" }, "New run"),
      ),
      h("span", { class: "who" }, `tenant ${session.tenant}`, session.auth ? signOut : null),
    ),
    main,
  );
}

async function route(): Promise<void> {
  if (!main.isConnected) return;
  cleanup();
  cleanup = () => {};
  const path = location.pathname.replace(/\/+$/, "");
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href")?.replace(/\/+$/, "") === (path || "/ui"));
  }
  const run = /^\/ui\/runs\/([A-Za-z0-9_-]{1,128})$/.exec(path);
  if (run?.[1]) cleanup = runPage(main, run[1]);
  else if (path === "/ui/approvals") cleanup = approvalsPage(main);
  else if (path === "/ui/new") cleanup = newRunPage(main);
  else cleanup = runsPage(main, new URLSearchParams(location.search));
}

void start();
