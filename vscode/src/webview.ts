// The run view's HTML: a strict CSP (no network, scripts and styles only with the nonce) and a
// script that shows log lines as text (`textContent`), never as HTML. No `vscode` import.

import { randomBytes } from 'node:crypto';

export function nonce(): string {
  return randomBytes(18).toString('base64url');
}

/** Escapes text for an HTML text node or a quoted attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function csp(nonceValue: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonceValue}'`,
    `style-src 'nonce-${nonceValue}'`,
    "img-src 'none'",
    "connect-src 'none'",
    "font-src 'none'",
    "frame-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/**
 * The run view. The extension host follows the feed (it holds the token) and posts
 * `{type: 'lines', lines: LogLine[]}` and `{type: 'state', text}`; the page only appends text.
 */
export function runViewHtml(runId: string, title: string, nonceValue: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp(nonceValue))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style nonce="${nonceValue}">
  body { font-family: var(--vscode-editor-font-family, monospace); font-size: var(--vscode-editor-font-size, 13px); color: var(--vscode-foreground); padding: 0 12px; }
  header { position: sticky; top: 0; z-index: 1; background: var(--vscode-editor-background, Canvas); padding: 8px 0; border-bottom: 1px solid var(--vscode-panel-border, #8884); }
  #state { opacity: .8; }
  .line { white-space: pre-wrap; word-break: break-word; margin: 2px 0; }
  .seq { opacity: .6; margin-right: .6em; }
  .kind { font-weight: bold; margin-right: .6em; }
  .delta { opacity: .75; font-style: italic; }
  .approval_requested .kind, .run_finished .kind { color: var(--vscode-charts-orange, orange); }
</style>
</head>
<body>
<header><div id="title"></div><div id="totals"></div><div id="state">connecting…</div></header>
<main id="log" aria-live="polite"></main>
<script nonce="${nonceValue}">
(function () {
  const log = document.getElementById('log');
  const state = document.getElementById('state');
  const totals = document.getElementById('totals');
  document.getElementById('title').textContent = ${JSON.stringify(`${title} (${runId})`).replace(/</g, '\\u003c')};
  let delta = null;
  let streamed = null;
  function add(line) {
    if (line.kind === 'delta') {
      if (!delta) {
        delta = document.createElement('div');
        delta.className = 'line delta';
        log.appendChild(delta);
        streamed = delta;
      }
      delta.textContent += String(line.text);
      return;
    }
    delta = null;
    // The recorded reply carries what was streamed: show it once.
    if (line.kind === 'model_response' && streamed) {
      streamed.remove();
      streamed = null;
    }
    const div = document.createElement('div');
    div.className = 'line ' + String(line.kind).replace(/[^a-z_]/g, '');
    const seq = document.createElement('span');
    seq.className = 'seq';
    seq.textContent = line.seq === null ? '' : '#' + String(line.seq);
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = String(line.kind);
    const text = document.createElement('span');
    text.textContent = String(line.text);
    div.append(seq, kind, text);
    log.appendChild(div);
  }
  window.addEventListener('message', function (e) {
    const m = e.data;
    if (!m || typeof m !== 'object') return;
    if (m.type === 'lines' && Array.isArray(m.lines)) {
      const atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
      m.lines.forEach(add);
      if (atEnd) window.scrollTo(0, document.body.scrollHeight);
    } else if (m.type === 'state') {
      state.textContent = String(m.text);
    } else if (m.type === 'totals') {
      totals.textContent = String(m.text);
    }
  });
}());
</script>
</body>
</html>`;
}
