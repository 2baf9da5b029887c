// The API client and the view models against a real `praxis serve`.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PraxisClient, PraxisError } from '../src/api';
import { FeedEvent, Follower } from '../src/feed';
import { LiveState, Tally, diffSides, logLine, parseWorldPath, runItem, statusText, worldDocument, worldPath } from '../src/models';
import { Relay, Served, missing, until, waitStatus, writeScript } from './harness';

const skip = missing();
if (skip) console.log(`# skipping the server tests: ${skip}`);

describe('against a real praxis serve', { skip }, () => {
  let served: Served;
  let token: string;
  let writ: string;
  let client: PraxisClient;

  before(async () => {
    served = await Served.start();
    token = served.token('acme');
    writ = served.approvalWrit('acme');
    client = served.client(token);
  });

  after(async () => {
    await served?.stop();
  });

  /** A run that waits for approval of writing `README.md`. */
  async function waitingRun(task: string, name: string): Promise<string> {
    const workspace = served.workspace(name, { 'README.md': 'hello\n' });
    const created = await client.createRun({ task, workspace, writ, script: writeScript('README.md', 'hello world\n') });
    await waitStatus(client, created.id, ['awaiting_approval']);
    return created.id;
  }

  async function approvalOf(runId: string) {
    return until(async () => (await client.approvals()).find((a) => a.run_id === runId), `an approval for ${runId}`);
  }

  it('lists runs with their task text, status, steps and tokens', async () => {
    const workspace = served.workspace('list', { 'README.md': 'listed\n' });
    const created = await client.createRun({
      task: 'Summarize the readme, please',
      workspace,
      script: { turns: [{ content: 'It says listed.' }] },
    });
    const done = await waitStatus(client, created.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const runs = await client.listRuns();
    const run = runs.find((r) => r.id === created.id);
    if (!run) throw new Error('the created run is not listed');
    const item = runItem(run);
    assert.equal(item.label, 'Summarize the readme, please');
    assert.equal(item.context, 'run.done');
    assert.match(item.description, /^completed · 1 step · \d+ tok · \$\d+\.\d{4}$/);
    assert.ok(run.usage.input_tokens > 0);

    const state = new LiveState(client);
    const snapshot = await state.refresh();
    assert.equal(snapshot.error, undefined);
    assert.ok(snapshot.runs.some((r) => r.id === created.id));
  });

  it('follows a live run without a gap after a dropped connection', async () => {
    const relay = await Relay.start(served.url);
    try {
      const id = await waitingRun('Follow me across a drop', 'follow');
      const events: FeedEvent[] = [];
      const follower = new Follower(new PraxisClient({ baseUrl: relay.url, token }), id, {
        onEvent: (e) => events.push(e),
        retryMs: 50,
      });
      const seqs = (): number[] => events.flatMap((e) => (e.type === 'entry' ? [e.entry.seq] : []));
      // Everything up to the approval request arrives on the first connection.
      await until(async () => (events.some((e) => e.type === 'entry' && e.entry.kind === 'approval_requested') ? true : undefined), 'approval_requested on the feed');
      const before = Math.max(...seqs());
      assert.ok(relay.drop() > 0, 'a connection was cut');
      // The rest of the run happens while the follower has to reconnect.
      await client.decide((await approvalOf(id)).id, 'approve', '');
      await follower.done;
      const all = seqs();
      assert.deepEqual(all, Array.from({ length: all.length }, (_, i) => i + 1), `no gap and no repeat: ${all}`);
      assert.ok(all.length > before, 'entries after the drop arrived');
      assert.ok(events.some((e) => e.type === 'entry' && e.entry.kind === 'run_finished'));
      assert.ok(follower.connections >= 2, 'it reconnected');
      assert.ok(
        relay.requests.some((r) => new RegExp(`^last-event-id: ${before}\\r$`, 'im').test(r)),
        `a reconnect resumed with Last-Event-ID ${before}`,
      );
      // The run view's totals, counted from the feed, agree with the server's view of the run.
      const tally = new Tally();
      for (const e of events) if (e.type === 'entry') tally.add(e.entry);
      const view = await client.getRun(id);
      assert.equal(tally.steps, view.steps);
      assert.equal(tally.toolCalls, view.tool_calls);
      assert.equal(tally.inputTokens + tally.outputTokens, view.usage.input_tokens + view.usage.output_tokens);
      assert.ok(tally.inputTokens > 0);
      // The log shows text, model text included, as it came.
      const finished = events.find((e) => e.type === 'entry' && e.entry.kind === 'run_finished');
      assert.match(logLine(finished!).text, /^finished: completed\nwrote README\.md$/);
    } finally {
      await relay.close();
    }
  });

  it('approves and denies, recorded under the token\'s tenant', async () => {
    const approved = await waitingRun('Approve this write', 'approve');
    const denied = await waitingRun('Deny this write', 'deny');
    const a = await approvalOf(approved);
    const d = await approvalOf(denied);
    assert.equal(a.tool, 'fs_write');
    assert.deepEqual(a.arguments, { path: 'README.md', content: 'hello world\n' });

    // A denial without a reason is refused before it is sent.
    await assert.rejects(client.decide(d.id, 'deny', '  '), (e: PraxisError) => e.field === 'reason');

    const yes = await client.decide(a.id, 'approve', '');
    assert.equal(yes.by, 'api:acme');
    const no = await client.decide(d.id, 'deny', 'not the readme');
    assert.equal(no.decision, 'deny');

    assert.equal((await waitStatus(client, approved, ['completed', 'failed'])).status, 'completed');
    await waitStatus(client, denied, ['completed', 'failed']);
    const decided = (await client.entries(denied)).find((e) => e.kind === 'approval_decided');
    assert.equal(decided?.payload.approved, false);
    assert.equal(decided?.payload.reason, 'not the readme');
    assert.equal(decided?.payload.by, 'api:acme');
    assert.equal(await client.fileAt(denied, 'README.md'), 'hello\n', 'the denied write did not happen');
    // Deciding twice is a conflict the server names.
    await assert.rejects(client.decide(a.id, 'approve', ''), (e: PraxisError) => e.kind === 'http' && (e.status === 409 || e.status === 404));
    assert.ok(!(await client.approvals()).some((p) => p.run_id === approved || p.run_id === denied));
  });

  it('opens a world diff: the file at the start and after an entry', async () => {
    const id = await waitingRun('Change the readme', 'world');
    await client.decide((await approvalOf(id)).id, 'approve', '');
    await waitStatus(client, id, ['completed']);
    const entries = await client.entries(id);
    const execution = entries.find((e) => e.kind === 'execution');
    if (!execution) throw new Error('no execution entry');
    const world = await client.world(id, execution.seq);
    assert.deepEqual(world.changed, ['README.md']);

    const sides = diffSides(id, execution.seq, 'README.md');
    // The documents travel as URIs: what the content provider parses is what was built.
    const left = parseWorldPath(worldPath(sides.left));
    const right = parseWorldPath(worldPath(sides.right));
    assert.equal(await worldDocument(client, left), 'hello\n');
    assert.equal(await worldDocument(client, right), 'hello world\n');
    // Before the write, the entry before the execution still has the old text.
    assert.equal(await worldDocument(client, { ...right, at: execution.seq - 1 }), 'hello\n');
    // A file that did not exist is an empty side, not an error.
    assert.equal(await worldDocument(client, { ...right, path: 'new/file.txt' }), '');
    await assert.rejects(client.world(id, 10_000), (e: PraxisError) => e.status === 422 && e.field === 'at');
  });

  it('branches from an entry and cancels a live run', async () => {
    const origin = await waitingRun('Branch me', 'branch');
    await client.decide((await approvalOf(origin)).id, 'approve', '');
    await waitStatus(client, origin, ['completed']);
    const entries = await client.entries(origin);
    const firstReply = entries.find((e) => e.kind === 'model_response');
    if (!firstReply) throw new Error('no model_response');
    // Branch before the write: the branch's world is the origin's at that point.
    const branched = await client.branch(origin, { at: firstReply.seq - 1, task: 'answer instead', script: { turns: [{ content: 'branched answer' }] } });
    assert.equal(branched.branch_of, origin);
    const done = await waitStatus(client, branched.id, ['completed', 'failed']);
    assert.equal(done.final_answer, 'branched answer', JSON.stringify(done));
    assert.equal(await client.fileAt(branched.id, 'README.md'), 'hello\n');
    await assert.rejects(client.branch(origin, { at: 10_000 }), (e: PraxisError) => e.status === 422 && e.field === 'at');

    const live = await waitingRun('Cancel me', 'cancel');
    assert.equal(runItem(await client.getRun(live)).context, 'run.live');
    await client.cancelRun(live);
    const cancelled = await waitStatus(client, live, ['cancelled', 'failed', 'completed']);
    assert.equal(cancelled.status, 'cancelled');
    await assert.rejects(client.cancelRun(live), (e: PraxisError) => e.status === 409);
  });

  it('a wrong token is refused and shows nothing', async () => {
    const wrong = served.client('prx_not-a-token');
    await assert.rejects(wrong.listRuns(), (e: PraxisError) => e.kind === 'unauthorized' && e.status === 401 && /Set Token/.test(e.message));
    await assert.rejects(served.client(undefined).approvals(), (e: PraxisError) => e.kind === 'unauthorized');
    const state = new LiveState(client);
    assert.ok((await state.refresh()).runs.length > 0);
    state.setClient(wrong);
    const s = await state.refresh();
    assert.equal(s.error?.kind, 'unauthorized');
    assert.deepEqual(s.runs, [], 'nothing of the last tenant stays on screen');
    assert.match(statusText(s).text, /lock/);
    // Another tenant's token sees none of acme's runs.
    const other = await served.client(served.token('globex')).listRuns();
    assert.ok(!other.some((r) => r.tenant === 'acme'));
  });

  it('a server that goes away and comes back', async () => {
    const state = new LiveState(client);
    const seen: (string | undefined)[] = [];
    state.onChange((s) => seen.push(s.error?.kind));
    const first = await state.refresh();
    assert.equal(first.error, undefined);
    const known = first.runs.length;
    assert.ok(known > 0);

    await served.kill();
    const away = await state.refresh();
    assert.equal(away.error?.kind, 'unreachable');
    assert.match(away.error!.message, /praxis\.serverUrl/);
    assert.equal(away.runs.length, known, 'the last known runs stay listed while the server is away');
    assert.match(statusText(away).text, /disconnect/);

    // A follower started while it is away waits and reconnects.
    const events: FeedEvent[] = [];
    const finishedRun = first.runs.find((r) => r.status === 'completed')!;
    const follower = new Follower(client, finishedRun.id, { onEvent: (e) => events.push(e), retryMs: 50, maxRetryMs: 200 });

    await served.restart();
    const back = await state.refresh();
    assert.equal(back.error, undefined);
    assert.equal(back.runs.length, known);
    assert.deepEqual(seen, [undefined, 'unreachable', undefined]);
    await follower.done;
    assert.ok(follower.connections >= 2);
    assert.equal(events.filter((e) => e.type === 'entry').length, finishedRun.last_seq);
  });
});
