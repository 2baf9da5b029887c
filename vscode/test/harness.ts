// A real `praxis serve` for the tests and the end-to-end script: a temporary data dir, an API
// token, an issuer key and a writ under which `fs_write` needs approval.

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PraxisClient, RunView } from '../src/api';

/** The `praxis` binary: PRAXIS_BIN, else the workspace's debug build. */
export function praxisBin(): string | undefined {
  const bin = process.env.PRAXIS_BIN ?? resolve(__dirname, '..', '..', '..', 'target', 'debug', 'praxis');
  return existsSync(bin) ? bin : undefined;
}

/** Why the server tests cannot run, or undefined. Under CI=true a missing binary is a failure. */
export function missing(): string | undefined {
  if (praxisBin()) return undefined;
  const why = 'no praxis binary (cargo build -p praxis-cli, or set PRAXIS_BIN)';
  if (process.env.CI === 'true') throw new Error(`CI=true: ${why}`);
  return why;
}

export class Served {
  private constructor(
    readonly home: string,
    readonly root: string,
    readonly bin: string,
    public child: ChildProcess,
    public url: string,
    public log: string[],
  ) {}

  /** `praxis serve` on a free port with a fresh data dir; `tenant`'s token and writ are made. */
  static async start(): Promise<Served> {
    const bin = praxisBin();
    if (!bin) throw new Error('no praxis binary');
    const root = mkdtempSync(join(tmpdir(), 'praxis-vscode-'));
    const home = join(root, 'home');
    const { child, url, log } = await spawnServe(bin, home, root, '127.0.0.1:0');
    return new Served(home, root, bin, child, url, log);
  }

  praxis(args: string[]): string {
    return execFileSync(this.bin, args, { env: { ...process.env, PRAXIS_HOME: this.home }, encoding: 'utf8' }).trim();
  }

  token(tenant: string): string {
    return this.praxis(['token', 'create', '--tenant', tenant]).split('\n').pop()!.trim();
  }

  /** A writ for `tenant` under which `fs_write` waits for a person. */
  approvalWrit(tenant: string): string {
    if (!existsSync(join(this.home, 'keys', 'issuer.key'))) this.praxis(['writ', 'keygen']);
    const spec = join(this.root, `writ-${tenant}.toml`);
    writeFileSync(
      spec,
      [
        'subject = "vscode-tests"',
        `tenant = "${tenant}"`,
        'expires_in = "1h"',
        'effect_ceiling = "exec"',
        '[[tools]]',
        'name = "fs_read"',
        'paths = ["**"]',
        '[[tools]]',
        'name = "fs_write"',
        'paths = ["**"]',
        '[approvals]',
        'tools = ["fs_write"]',
        'timeout_seconds = 3600',
        '',
      ].join('\n'),
    );
    return this.praxis(['writ', 'issue', '--spec', spec]);
  }

  /** A workspace under the server's accepted roots, holding `files`. */
  workspace(name: string, files: Record<string, string>): string {
    const dir = join(this.root, 'ws', name);
    for (const [path, content] of Object.entries(files)) {
      const full = join(dir, path);
      execFileSync('mkdir', ['-p', resolve(full, '..')]);
      writeFileSync(full, content);
    }
    return dir;
  }

  client(token: string | undefined, url = this.url): PraxisClient {
    return new PraxisClient({ baseUrl: url, token });
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** Stops the server (SIGKILL: it goes away without a goodbye). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Starts the server again on the same address and data dir. */
  async restart(): Promise<void> {
    await this.kill();
    const again = await spawnServe(this.bin, this.home, this.root, `127.0.0.1:${this.port}`);
    this.child = again.child;
    this.url = again.url;
    this.log = again.log;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}

async function spawnServe(bin: string, home: string, roots: string, bind: string): Promise<{ child: ChildProcess; url: string; log: string[] }> {
  const child = spawn(bin, ['serve', '--bind', bind], {
    env: { ...process.env, PRAXIS_HOME: home, PRAXIS_WORKSPACE_ROOTS: roots, PRAXIS_AUTH: 'on' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  const url = await new Promise<string>((ok, fail) => {
    let buffered = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        log.push(line);
        const m = /listening on (http:\/\/\S+)/.exec(line);
        if (m) ok(m[1]);
      }
    });
    child.once('exit', (code) => fail(new Error(`praxis serve exited (${code}) before listening:\n${log.join('\n')}`)));
  });
  return { child, url, log };
}

/** A script whose first turn writes `path` (needs approval under the writ), then answers. */
export function writeScript(path: string, content: string): unknown {
  return {
    turns: [
      { content: `writing ${path}`, tool_calls: [{ id: 'w1', name: 'fs_write', arguments: { path, content } }] },
      { content: `wrote ${path}` },
    ],
  };
}

/** Polls `f` until it answers something; the test runner's timeout bounds the wait. */
export async function until<T>(f: () => Promise<T | undefined>, what: string, tries = 600): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never: ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

export async function waitStatus(client: PraxisClient, id: string, statuses: string[]): Promise<RunView> {
  return until(async () => {
    const run = await client.getRun(id);
    return statuses.includes(run.status) ? run : undefined;
  }, `run ${id} in ${statuses.join('/')}`);
}

/**
 * A TCP relay in front of the server whose connections the test can cut: a dropped
 * connection as a client sees one. It remembers what each connection sent first.
 */
export class Relay {
  private readonly sockets = new Set<Socket>();
  readonly requests: string[] = [];
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(target: string): Promise<Relay> {
    const t = new URL(target);
    let relay: Relay | undefined;
    const server = createServer((inbound) => {
      const outbound = new Socket();
      outbound.connect(Number(t.port), t.hostname);
      relay!.sockets.add(inbound).add(outbound);
      let first = true;
      inbound.on('data', (d) => {
        if (first) relay!.requests.push(d.toString('latin1'));
        first = false;
        outbound.write(d);
      });
      outbound.on('data', (d) => inbound.write(d));
      const close = (): void => {
        inbound.destroy();
        outbound.destroy();
        relay!.sockets.delete(inbound);
        relay!.sockets.delete(outbound);
      };
      inbound.on('close', close).on('error', close);
      outbound.on('close', close).on('error', close);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('relay has no port');
    relay = new Relay(server, `http://127.0.0.1:${address.port}`);
    return relay;
  }

  /** Cuts every open connection. */
  drop(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return n;
  }

  async close(): Promise<void> {
    this.drop();
    await new Promise((r) => this.server.close(r));
  }
}
