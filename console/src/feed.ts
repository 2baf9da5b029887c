// A run's live feed over server-sent events, read with fetch (EventSource cannot send the
// Authorization header). On a dropped connection it reconnects with `Last-Event-ID` = the
// last seq it handed on, and drops any entry at or below it, so the caller sees every entry
// exactly once and in order.

import { authHeaders, runPath } from "./api.js";
import type { Delta, EntryLine } from "./generated/feed.js";

export interface FeedHandlers {
  entry(entry: EntryLine): void;
  delta(delta: Delta): void;
  connection(state: "live" | "reconnecting" | "ended" | "unauthorized"): void;
}

export class Feed {
  private lastSeq = 0;
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(
    private readonly runId: string,
    private readonly handlers: FeedHandlers,
  ) {}

  /** The last seq handed on (what a reconnection resumes after). */
  get position(): number {
    return this.lastSeq;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async loop(): Promise<void> {
    let delay = 250;
    while (!this.stopped) {
      let finished = false;
      try {
        const res = await fetch(`${runPath(this.runId)}/events`, {
          headers: { ...authHeaders(), Accept: "text/event-stream", "Last-Event-ID": String(this.lastSeq) },
          signal: this.abort.signal,
          cache: "no-store",
          credentials: "omit",
        });
        if (res.status === 401) {
          this.handlers.connection("unauthorized");
          return;
        }
        if (!res.ok || !res.body) throw new Error(`feed answered ${res.status}`);
        this.handlers.connection("live");
        delay = 250;
        finished = await this.read(res.body);
      } catch {
        if (this.stopped) return;
      }
      if (finished) {
        this.handlers.connection("ended");
        return;
      }
      if (this.stopped) return;
      this.handlers.connection("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** Reads one connection; true when the run's feed ended after `run_finished`. */
  private async read(body: ReadableStream<Uint8Array>): Promise<boolean> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let sawFinish = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return sawFinish;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        if (this.dispatch(block)) sawFinish = true;
      }
    }
  }

  /** Handles one SSE event block; true for `run_finished`. */
  private dispatch(block: string): boolean {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "event") event = value;
      else if (name === "data") data.push(value);
    }
    if (data.length === 0) return false;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return false;
    }
    if (event === "delta") {
      this.handlers.delta(parsed as Delta);
      return false;
    }
    const entry = parsed as EntryLine;
    if (typeof entry.seq !== "number" || entry.seq <= this.lastSeq) return false; // already shown
    this.lastSeq = entry.seq;
    try {
      this.handlers.entry(entry);
    } catch (e) {
      // A rendering bug must not cost the rest of the feed.
      console.error(`rendering entry ${entry.seq} (${entry.kind})`, e);
    }
    return entry.kind === "run_finished";
  }
}
