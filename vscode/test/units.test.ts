// The parts that need no server: the SSE parser, the run view's HTML, the world URIs, reading
// answers at the door, and the rule that the plain modules never import `vscode`.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PraxisClient, PraxisError, readRun } from '../src/api';
import { SseParser } from '../src/feed';
import { Tally, logLine, parseWorldPath, worldPath } from '../src/models';
import { csp, runViewHtml } from '../src/webview';

describe('SseParser', () => {
  it('assembles events split anywhere, CRLF included, and skips comments', () => {
    const wire = ': heartbeat\r\nid: 7\r\nevent: proposal\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: delta\ndata: {"text":"hi"}\n\n';
    for (let cut = 0; cut <= wire.length; cut++) {
      const p = new SseParser();
      const got = [...p.push(wire.slice(0, cut)), ...p.push(wire.slice(cut))];
      assert.deepEqual(
        got,
        [
          { id: '7', event: 'proposal', data: '{"a":\n1}' },
          { id: undefined, event: 'delta', data: '{"text":"hi"}' },
        ],
        `cut at ${cut}`,
      );
    }
  });

  it('does not leak an id or event name into the next event', () => {
    const p = new SseParser();
    const got = p.push('id: 1\nevent: x\n\ndata: y\n\n');
    assert.deepEqual(got, [{ id: undefined, event: 'message', data: 'y' }]);
  });
});

describe('the run view', () => {
  it('has a strict CSP: nothing without the nonce, no inline, no network', () => {
    const policy = csp('N0nce');
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'nonce-N0nce'(;|$)/);
    assert.doesNotMatch(policy, /unsafe/);
    const html = runViewHtml('01abc', 'task', 'N0nce');
    assert.ok(html.includes(`content="${policy.replace(/'/g, '&#39;')}"`));
    const scripts = html.match(/<script[^>]*>/g) ?? [];
    assert.deepEqual(scripts, ['<script nonce="N0nce">']);
    // The page renders with textContent only.
    assert.doesNotMatch(html, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  it('never lets a task or model text become markup', () => {
    const evil = '</script><img src=x onerror=alert(1)><b>';
    const html = runViewHtml('01abc', evil, 'n');
    assert.ok(!html.includes('<img'), 'the task is escaped in the page');
    assert.ok(!html.includes('</script><'), 'the task cannot close the script');
    const line = logLine({ type: 'entry', entry: { run_id: 'r', seq: 3, kind: 'model_response', at: '', payload: { content: evil } } });
    assert.equal(line.text, `model: ${evil}`, 'the log line is the text itself; the page shows it as text');
  });
});

describe('world documents', () => {
  it('round-trip paths with spaces, unicode and ? # %', () => {
    const ref = { runId: '01m950m7nn4g9dxvcqycbqe16v', at: 12, path: 'src/a b/ü?#%.txt' };
    assert.deepEqual(parseWorldPath(worldPath(ref)), ref);
  });

  it('refuse what is not a run id or a seq', () => {
    assert.throws(() => worldPath({ runId: '../etc', at: 1, path: 'x' }));
    assert.throws(() => parseWorldPath('/01abc/notanumber/x'));
    assert.throws(() => parseWorldPath('/01abc/3/'));
  });
});

describe('answers are typed at the door', () => {
  it('a run without a task is refused naming the field', () => {
    const run = { id: 'r', status: 'running', steps: 1, tool_calls: 0, usage: { input_tokens: 1, output_tokens: 1 }, workspace: '', provider: '', started_at: '', last_seq: 1, tenant: 't' };
    assert.throws(() => readRun(run), (e: PraxisError) => e.kind === 'protocol' && e.field === 'task');
    assert.throws(() => readRun({ ...run, task: 't', usage: { input_tokens: 'many' } }), (e: PraxisError) => e.field === 'input_tokens');
  });

  it('the server URL setting is checked and named', () => {
    assert.throws(() => new PraxisClient({ baseUrl: 'not a url' }), (e: PraxisError) => e.field === 'praxis.serverUrl');
    assert.throws(() => new PraxisClient({ baseUrl: 'file:///etc' }), (e: PraxisError) => e.field === 'praxis.serverUrl');
    assert.equal(new PraxisClient({ baseUrl: 'http://h:1/base/' }).baseUrl, 'http://h:1/base');
  });
});

describe('layering', () => {
  it('only extension.ts imports vscode', () => {
    const src = join(__dirname, '..', '..', 'src');
    const offenders = readdirSync(src)
      .filter((f) => f.endsWith('.ts') && f !== 'extension.ts')
      .filter((f) => /from ['"]vscode['"]|require\(['"]vscode['"]\)/.test(readFileSync(join(src, f), 'utf8')));
    assert.deepEqual(offenders, []);
  });
});

describe('Tally', () => {
  it('sums priced calls and says unpriced otherwise', () => {
    const t = new Tally();
    const entry = (seq: number, kind: string, payload: Record<string, unknown>) => ({ run_id: 'r', seq, kind, at: '', payload });
    t.add(entry(1, 'model_response', { usage: { input_tokens: 10, output_tokens: 5 } }));
    assert.equal(t.text(), '1 step · 0 tool calls · 15 tokens · unpriced');
    t.add(entry(2, 'execution', {}));
    t.add(entry(3, 'model_response', { usage: { input_tokens: 1, output_tokens: 1 }, cost_usd_micros: 1500 }));
    t.add(entry(4, 'model_response', { usage: { input_tokens: 1, output_tokens: 1 }, cost_usd_micros: 500 }));
    assert.equal(t.text(), '3 steps · 1 tool call · 19 tokens · $0.0020');
  });
});
