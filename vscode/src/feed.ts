// A run's live feed (`GET /v1/runs/{id}/events`, server-sent events), followed without a gap:
// after a dropped connection it reconnects with `Last-Event-ID` = the last seq it delivered,
// and never delivers a seq twice. No `vscode` import.

import { EntryLine, PraxisClient, PraxisError, readEntry } from './api';

/** One server-sent event as the wire carries it. */
export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/** Incremental `text/event-stream` parser (WHATWG rules: fields, comments, CR/LF/CRLF). */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  private sawCr = false;

  /** Feeds a chunk; answers the events it completed. */
  push(chunk: string): SseMessage[] {
    const out: SseMessage[] = [];
    let text = chunk;
    if (this.sawCr && text.startsWith('\n')) text = text.slice(1);
    this.sawCr = text.endsWith('\r');
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (this.data.length > 0) {
          out.push({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
        }
        this.data = [];
        this.event = '';
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      switch (field) {
        case 'data':
          this.data.push(value);
          break;
        case 'event':
          this.event = value;
          break;
        case 'id':
          if (!value.includes('\0')) this.id = value;
          break;
        default:
          break;
      }
    }
    return out;
  }
}

/** What a follower hands on: a durable entry, or streamed model text (not ledgered). */
export type FeedEvent = { type: 'entry'; entry: EntryLine } | { type: 'delta'; text: string };

export type FollowState = 'connecting' | 'live' | 'reconnecting' | 'ended' | 'stopped';

export interface FollowOptions {
  /** Deliver entries after this seq (0: from the start). */
  after?: number;
  onEvent: (event: FeedEvent) => void;
  onState?: (state: FollowState, detail?: string) => void;
  /** First reconnect delay; doubles up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
}

/**
 * Follows one run until its feed ends after `run_finished`, reconnecting from the last
 * delivered seq whenever the connection drops or the server is away.
 */
export class Follower {
  private readonly controller = new AbortController();
  private lastSeq: number;
  private finished = false;
  /** Connections opened (1 + reconnects). */
  connections = 0;
  readonly done: Promise<void>;

  constructor(
    private readonly client: PraxisClient,
    readonly runId: string,
    private readonly options: FollowOptions,
  ) {
    this.lastSeq = options.after ?? 0;
    this.done = this.loop();
  }

  get seq(): number {
    return this.lastSeq;
  }

  stop(): void {
    this.controller.abort();
  }

  private state(state: FollowState, detail?: string): void {
    this.options.onState?.(state, detail);
  }

  private async loop(): Promise<void> {
    let delay = this.options.retryMs ?? 250;
    const maxDelay = this.options.maxRetryMs ?? 5000;
    this.state('connecting');
    while (!this.controller.signal.aborted) {
      try {
        const ended = await this.once();
        if (ended) {
          this.state('ended');
          return;
        }
        delay = this.options.retryMs ?? 250;
        this.state('reconnecting', 'the feed closed before the run finished');
      } catch (e) {
        if (this.controller.signal.aborted) break;
        if (e instanceof PraxisError && (e.kind === 'unauthorized' || (e.status !== undefined && e.status >= 400 && e.status < 500))) {
          // A refused token or an unknown run will not get better by retrying.
          this.state('stopped', e.message);
          throw e;
        }
        this.state('reconnecting', e instanceof Error ? e.message : String(e));
      }
      await sleep(delay, this.controller.signal);
      delay = Math.min(delay * 2, maxDelay);
    }
    this.state('stopped');
  }

  /** One connection; `true` when the feed ended after the run's end. */
  private async once(): Promise<boolean> {
    this.connections += 1;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.lastSeq > 0) headers['last-event-id'] = String(this.lastSeq);
    const response = await this.client.request('GET', `/v1/runs/${encodeURIComponent(this.runId)}/events`, undefined, this.controller.signal, headers);
    if (!response.body) throw new PraxisError('protocol', 'the feed answered without a body');
    this.state('live');
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const message of parser.push(decoder.decode(value, { stream: true }))) {
          this.deliver(message);
        }
      }
    } finally {
      reader.releaseLock();
    }
    return this.finished;
  }

  private deliver(message: SseMessage): void {
    if (message.event === 'delta') {
      let text: unknown;
      try {
        text = (JSON.parse(message.data) as { text?: unknown }).text;
      } catch {
        return;
      }
      if (typeof text === 'string') this.options.onEvent({ type: 'delta', text });
      return;
    }
    const entry = readEntry(JSON.parse(message.data));
    // A resumed connection starts after Last-Event-ID; anything older is a repeat.
    if (entry.seq <= this.lastSeq) return;
    this.lastSeq = entry.seq;
    if (entry.kind === 'run_finished') this.finished = true;
    this.options.onEvent({ type: 'entry', entry });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
