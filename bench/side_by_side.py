#!/usr/bin/env python3
"""Side-by-side run throughput: Praxis's server, the floor of the job, and optionally a peer.

The job: one run = 2 streamed model calls to a local fake OpenAI-compatible server
(bench/fake_openai.py) + 1 file write by the run's tool, created over HTTP and polled until
it is done. Measured sequentially and with --concurrency clients at once, best of --rounds.

The floor is measured in the same run, by this script, without any runtime: 2 keep-alive
round trips to the same fake server, 1 small file write and --floor-fsyncs fsyncs in the
data directory's file system. Praxis is reported as a ratio to it and, with --peer-bin
(OpenThymos's `thymos-server`), as a ratio to the peer measured in the same run.

    bench/side_by_side.py --praxis-bin target/release/praxis [--peer-bin PATH] [--n 300]
    bench/side_by_side.py --short        # CI: few runs, fails unless every run completes

Loopback only; every server gets a free port. Writes a Markdown table to stdout and, with
--json FILE, every figure as JSON.
"""
import argparse
import datetime
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FS_WRITE = '{"path":"hello.txt","content":"hi\\n"}'
PEER_FS_PATCH = '{"path":"hello.txt","mode":"write","content":"hi\\n"}'


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_ms(pid):
    """CPU time of `pid` and of its children it has reaped (their reaped children too), in
    ms: user + system. A server's runs (its workers, their commands) are all in here."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the name: state is field 3, utime..cstime are fields 14..17.
    ticks = sum(int(x) for x in fields[11:15])
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def fs_type(path):
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mount = parts[1]
            if path.startswith(mount) and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


class Conn:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def req(self, method, path, body=None, raw=False):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                if raw:
                    return r.status, payload
                return r.status, (json.loads(payload) if payload else None)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise


def start_fake(tool, args):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_openai.py"), "--port", "0",
                          "--tool", tool, "--args", args], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        p.kill()
        raise SystemExit("the fake OpenAI server did not start")
    return p, int(line[1])


def wait_port(port, proc, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} within {seconds}s")


# ------------------------------------------------------------------------------------------
# The floor: the job's unavoidable work, done by this script without a runtime.

def floor_job(conn, data_dir, i, fsyncs):
    """2 streamed model calls (the second after a tool result), 1 write, `fsyncs` fsyncs."""
    first = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    second = {"model": "fake", "stream": True, "messages": [
        {"role": "user", "content": "go"},
        {"role": "tool", "tool_call_id": "x", "content": "ok"}]}
    conn.req("POST", "/v1/chat/completions", first, raw=True)
    path = os.path.join(data_dir, f"floor-{threading.get_ident()}-{i % 4}")
    with open(path, "wb") as f:
        f.write(b"hi\n")
    fd = os.open(os.path.join(data_dir, f"floor-log-{threading.get_ident()}"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(fsyncs):
            os.write(fd, b"x" * 200)
            os.fsync(fd)
    finally:
        os.close(fd)
    conn.req("POST", "/v1/chat/completions", second, raw=True)


def floor_parts(port, data_dir, n):
    """p50 of each part of the floor alone, in ms."""
    conn = Conn(port)
    body = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    rtt, fsync, write = [], [], []
    fd = os.open(os.path.join(data_dir, "fsync-probe"), os.O_WRONLY | os.O_CREAT, 0o600)
    for i in range(n):
        t = time.perf_counter()
        conn.req("POST", "/v1/chat/completions", body, raw=True)
        rtt.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        os.write(fd, b"x" * 200)
        os.fsync(fd)
        fsync.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        with open(os.path.join(data_dir, "write-probe"), "wb") as f:
            f.write(b"hi\n")
        write.append((time.perf_counter() - t) * 1e3)
    os.close(fd)
    return {"round_trip_ms": pct(rtt, .5), "fsync_ms": pct(fsync, .5), "write_ms": pct(write, .5)}


def drive(n, concurrency, one):
    """Runs `one(conn_state, i)` n times over `concurrency` threads; returns samples + wall."""
    results, lock, counter = [], threading.Lock(), iter(range(n))

    def worker():
        state = {}
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            r = one(state, i)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def summarize(results, wall):
    total = [r["total_ms"] for r in results]
    accept = [r["accept_ms"] for r in results if r.get("accept_ms") is not None]
    ok = sum(1 for r in results if r["ok"])
    out = {"runs": len(results), "ok": ok, "runs_per_s": len(results) / wall,
           "p50_ms": pct(total, .5), "p99_ms": pct(total, .99)}
    if accept:
        out["post_p50_ms"] = pct(accept, .5)
        out["post_p99_ms"] = pct(accept, .99)
    bad = [r for r in results if not r["ok"]][:2]
    if bad:
        out["sample_failures"] = bad
    return out


def floor_round(port, data_dir, n, concurrency, fsyncs):
    def one(state, i):
        conn = state.setdefault("conn", Conn(port))
        t = time.perf_counter()
        floor_job(conn, data_dir, i, fsyncs)
        return {"ok": True, "total_ms": (time.perf_counter() - t) * 1e3}
    return summarize(*drive(n, concurrency, one))


# ------------------------------------------------------------------------------------------
# A runtime's server: create over HTTP, poll until it leaves a running state.

class Target:
    def __init__(self, name, port, create, status, id_field, body, running, ok, pid):
        self.name, self.port, self.create, self.status = name, port, create, status
        self.id_field, self.body, self.running, self.ok, self.pid = id_field, body, running, ok, pid

    def round(self, n, concurrency, poll_ms, tag):
        def one(state, i):
            conn = state.setdefault("conn", Conn(self.port))
            body = dict(self.body, task=f"bench {tag} #{i}")
            posted_at = time.time()
            t0 = time.perf_counter()
            st, resp = conn.req("POST", self.create, body)
            accept = (time.perf_counter() - t0) * 1e3
            if st not in (200, 201, 202):
                return {"ok": False, "http": st, "resp": resp, "total_ms": accept,
                        "accept_ms": accept}
            run_id = resp[self.id_field]
            while True:
                st, rec = conn.req("GET", f"{self.status}/{run_id}")
                status = (rec or {}).get("status")
                if status not in self.running:
                    break
                time.sleep(poll_ms / 1e3)
            total = (time.perf_counter() - t0) * 1e3
            return {"ok": status in self.ok, "status": status, "total_ms": total,
                    "accept_ms": accept, "id": run_id, "posted_at": posted_at,
                    "seen_done_at": time.time()}
        cpu_before = cpu_ms(self.pid)
        results, wall = drive(n, concurrency, one)
        cpu_after = cpu_ms(self.pid)
        out = summarize(results, wall)
        if cpu_before is not None and cpu_after is not None:
            out["cpu_ms_per_run"] = (cpu_after - cpu_before) / max(1, len(results))
        out["last_id"] = next((r.get("id") for r in reversed(results) if r.get("id")), None)
        out["samples"] = [{k: r[k] for k in ("id", "posted_at", "seen_done_at")}
                          for r in results[-50:] if r.get("ok")]
        return out


# The run from which the issue asks RSS to stay flat (within 10%) up to run 3,000.
MEMORY_FROM = 300


def memory_track(target, done, until, poll_ms):
    """Sequential runs until `target` has done `until` runs in all (`done` so far); its RSS
    when it has done MEMORY_FROM (or now, if it has done more) and at the end. Every run must
    complete."""
    start = max(done, MEMORY_FROM)
    out = {"from_run": start, "to_run": until}
    for mark, key in ((start, "from_kib"), (until, "to_kib")):
        if done < mark:
            r = target.round(mark - done, 1, poll_ms, f"memory {mark}")
            if r["ok"] != r["runs"]:
                raise SystemExit(f"{target.name}: {r['runs'] - r['ok']} runs failed while "
                                 f"tracking memory: {r.get('sample_failures')}")
            done = mark
            print(f"{target.name}: {done} runs done, RSS {rss_kib(target.pid) / 1024:.0f} MB",
                  file=sys.stderr)
        out[key] = rss_kib(target.pid)
    out["change"] = out["to_kib"] / out["from_kib"] - 1
    return out


def start_praxis(binary, root, fake_port):
    home = os.path.join(root, "praxis-home")
    roots = os.path.join(root, "praxis-workspaces")
    ws = os.path.join(roots, "ws")
    os.makedirs(ws)
    env = dict(os.environ, PRAXIS_HOME=home, PRAXIS_WORKSPACE_ROOTS=roots,
               OPENAI_BASE_URL=f"http://127.0.0.1:{fake_port}/v1", OPENAI_API_KEY="x")
    log = open(os.path.join(root, "praxis-serve.log"), "w+")
    proc = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:0"], env=env,
                            stdout=log, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 60
    while time.time() < deadline and port is None:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"praxis serve exited ({proc.wait()}) before listening")
        log.write(line)
        if "listening on http://" in line:
            port = int(line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1])
    if port is None:
        raise SystemExit("praxis serve did not report its address")
    # Keep draining its stderr so the server never blocks on a full pipe.
    threading.Thread(target=lambda: shutil.copyfileobj(proc.stderr, log), daemon=True).start()
    target = Target("praxis", port, "/v1/runs", "/v1/runs", "id",
                    {"workspace": ws, "provider": "openai:fake"},
                    {"queued", "running"}, {"completed"}, proc.pid)
    return proc, target, ws


def praxis_layers(target, run_id):
    """What a finished run recorded about its sandbox and fabric, from its ledger."""
    st, raw = Conn(target.port).req("GET", f"/v1/runs/{run_id}/ledger", raw=True)
    if st != 200:
        return {"error": f"GET ledger: HTTP {st}"}
    for line in raw.decode().splitlines():
        entry = json.loads(line)
        if entry.get("kind") != "run_started":
            continue
        env = entry["payload"].get("environment", {})
        sandbox = env.get("sandbox", {})
        layers = sandbox.get("layers", [])
        return {"fabric": sandbox.get("fabric") or env.get("tool_fabric"),
                "active": [l["name"] for l in layers if l.get("active")],
                "inactive": [l["name"] for l in layers if not l.get("active")],
                # The run started no command: did its spawner wait (make no namespace)?
                "spawner_waits": sandbox.get("worker", {}).get("spawner_waits"),
                # Its worker was forked by the pool's fork server (not exec'd)?
                "worker_forked": sandbox.get("worker", {}).get("forked")}
    return {"error": "no run_started entry"}


def ledger_entries(target, run_id):
    st, raw = Conn(target.port).req("GET", f"/v1/runs/{run_id}/ledger", raw=True)
    if st != 200:
        raise SystemExit(f"GET /v1/runs/{run_id}/ledger: HTTP {st}")
    return [json.loads(line) for line in raw.decode().splitlines()]


def at_seconds(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def praxis_phases(target, samples):
    """Mean time of each phase of a run (ms), from the client's clock around it and the
    ledger's entry times (millisecond stamps, so only the mean over many runs is useful)."""
    sums, counts, order = {}, {}, []

    def add(label, seconds):
        if label not in sums:
            order.append(label)
            sums[label], counts[label] = 0.0, 0
        sums[label] += seconds * 1e3
        counts[label] += 1

    for sample in samples:
        entries = ledger_entries(target, sample["id"])
        previous = ("POST sent", sample["posted_at"])
        for entry in entries:
            now = at_seconds(entry["at"])
            add(f"{previous[0]} -> {entry['kind']} durable", now - previous[1])
            previous = (entry["kind"], now)
        add(f"{previous[0]} -> the client sees `completed` (polling)",
            sample["seen_done_at"] - previous[1])
    return [{"phase": label, "mean_ms": sums[label] / counts[label], "runs": counts[label]}
            for label in order]


def start_peer(binary, root, fake_port):
    ws = os.path.join(root, "peer-ws")
    os.makedirs(ws)
    port = free_port()
    env = dict(os.environ, THYMOS_BIND_ADDR=f"127.0.0.1:{port}",
               THYMOS_LEDGER_PATH=os.path.join(root, "peer-ledger.db"), THYMOS_WORKSPACE=ws,
               OPENAI_API_KEY="x")
    log = open(os.path.join(root, "peer.log"), "w")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, "the peer")
    body = {"cognition": {"provider": "openai", "base_url": f"http://127.0.0.1:{fake_port}/v1",
                          "model": "fake"}}
    target = Target("peer", port, "/runs", "/runs", "run_id", body,
                    {"running", "queued", "pending"}, {"completed"}, proc.pid)
    return proc, target


def best(rounds):
    return max(rounds, key=lambda r: r["runs_per_s"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--praxis-bin", default=os.path.join(REPO, "target", "release", "praxis"))
    ap.add_argument("--peer-bin", help="OpenThymos thymos-server binary (optional)")
    ap.add_argument("--n", type=int, default=300, help="runs per round and mode")
    ap.add_argument("--rounds", type=int, default=2, help="best of this many rounds")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--poll-ms", type=float, default=0.5)
    ap.add_argument("--floor-fsyncs", type=int, default=3)
    ap.add_argument("--dir", help="where data dirs go (default: a temp dir under target/)")
    ap.add_argument("--memory-runs", type=int, default=0, metavar="N",
                    help="after the rounds, go on with sequential runs until each server has done "
                         "N and report its RSS at run 300 and at run N (the issue's target: flat "
                         "within 10%% from run 300 to run 3,000)")
    ap.add_argument("--short", action="store_true", help="CI: 20 runs, 1 round, must all complete")
    ap.add_argument("--json", help="also write every figure to this file")
    a = ap.parse_args()
    if a.short:
        a.n, a.rounds = 20, 1
    base = a.dir or os.path.join(REPO, "target")
    os.makedirs(base, exist_ok=True)
    root = tempfile.mkdtemp(prefix="praxis-bench-", dir=base)
    data_dir = os.path.join(root, "floor")
    os.makedirs(data_dir)
    procs = []
    try:
        fake, fake_port = start_fake("fs_write", FS_WRITE)
        procs.append(fake)
        praxis, praxis_target, praxis_ws = start_praxis(a.praxis_bin, root, fake_port)
        procs.append(praxis)
        targets = [praxis_target]
        if a.peer_bin:
            peer_fake, peer_fake_port = start_fake("fs_patch", PEER_FS_PATCH)
            procs.append(peer_fake)
            peer, peer_target = start_peer(a.peer_bin, root, peer_fake_port)
            procs.append(peer)
            targets.append(peer_target)

        report = {"job": "2 streamed model calls + 1 file write, created over HTTP, polled",
                  "n": a.n, "rounds": a.rounds, "concurrency": a.concurrency,
                  "data_fs": fs_type(os.path.realpath(root)), "cores": os.cpu_count()}
        report["floor_parts"] = floor_parts(fake_port, data_dir, 20 if a.short else 200)
        rss = {t.name: {"before_kib": rss_kib(t.pid)} for t in targets}
        # One warm-up run each (the first connection, lazily built state), not counted.
        for t in targets:
            t.round(1, 1, a.poll_ms, "warm-up")
        seq = {t.name: [] for t in targets}
        conc = {t.name: [] for t in targets}
        floor_seq, floor_conc = [], []
        done = {t.name: 0 for t in targets}
        for r in range(a.rounds):
            floor_seq.append(floor_round(fake_port, data_dir, a.n, 1, a.floor_fsyncs))
            floor_conc.append(floor_round(fake_port, data_dir, a.n, a.concurrency, a.floor_fsyncs))
            for t in targets:
                seq[t.name].append(t.round(a.n, 1, a.poll_ms, f"seq {r}"))
                conc[t.name].append(t.round(a.n, a.concurrency, a.poll_ms, f"conc {r}"))
                done[t.name] += 2 * a.n
                if r == 0:
                    rss[t.name]["after_first_round_kib"] = rss_kib(t.pid)
        for t in targets:
            rss[t.name]["after_kib"] = rss_kib(t.pid)
            rss[t.name]["runs"] = done[t.name] + 1
            if a.memory_runs > MEMORY_FROM:
                rss[t.name]["memory"] = memory_track(t, done[t.name] + 1, a.memory_runs, a.poll_ms)
        report["floor"] = {"sequential": best(floor_seq), "concurrent": best(floor_conc)}
        report["targets"] = {t.name: {"sequential": best(seq[t.name]),
                                      "concurrent": best(conc[t.name]),
                                      "rss": rss[t.name]} for t in targets}
        report["praxis_sandbox"] = praxis_layers(praxis_target,
                                                 report["targets"]["praxis"]["sequential"]["last_id"])
        report["praxis_phases"] = praxis_phases(
            praxis_target, report["targets"]["praxis"]["sequential"]["samples"])
        report["praxis_fsync"] = "on: SQLite WAL with synchronous=FULL (the ledger has no other mode)"
        report["praxis_wrote"] = open(os.path.join(praxis_ws, "hello.txt")).read() == "hi\n"
        print_report(report)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=1)
        failures = [name for name, t in report["targets"].items()
                    for mode in ("sequential", "concurrent") if t[mode]["ok"] != t[mode]["runs"]]
        if "error" in report["praxis_sandbox"]:
            print(f"FAILED: the sandbox record: {report['praxis_sandbox']['error']}", file=sys.stderr)
            return 1
        if failures or not report["praxis_wrote"]:
            for name in failures:
                print(f"FAILED runs in {name}: "
                      f"{report['targets'][name]['sequential'].get('sample_failures')}"
                      f"{report['targets'][name]['concurrent'].get('sample_failures')}",
                      file=sys.stderr)
            if not report["praxis_wrote"]:
                print("FAILED: the Praxis runs did not write hello.txt", file=sys.stderr)
            return 1
        return 0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if os.environ.get("PRAXIS_BENCH_KEEP"):
            print(f"kept: {root} (PRAXIS_BENCH_KEEP)", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def print_report(r):
    fp = r["floor_parts"]
    fl = r["floor"]
    t = r["targets"]
    names = list(t)
    print(f"job: {r['job']}; {r['n']} runs per mode, best of {r['rounds']}, "
          f"{r['concurrency']} concurrent; {r['cores']} cores; data on {r['data_fs']}")
    print(f"floor parts (p50): round trip {fp['round_trip_ms']:.3f} ms, fsync {fp['fsync_ms']:.3f} ms, "
          f"bare write {fp['write_ms']:.3f} ms")
    sb = r["praxis_sandbox"]
    print(f"praxis sandbox: fabric {sb.get('fabric')}; active layers: {', '.join(sb.get('active', []))}"
          f"; inactive: {', '.join(sb.get('inactive', [])) or 'none'}"
          f"; worker forked by the fork server: {sb.get('worker_forked')}"
          f"; spawner set up only at a first command: {sb.get('spawner_waits')}")
    print(f"praxis fsync: {r['praxis_fsync']}")
    print()
    header = "| | floor | " + " | ".join(names) + " |"
    print(header)
    print("|---" * (2 + len(names)) + "|")

    def row(label, floor_value, fn):
        cells = [fn(t[n]) for n in names]
        print(f"| {label} | {floor_value} | " + " | ".join(cells) + " |")

    row("sequential runs/s", f"{fl['sequential']['runs_per_s']:.0f}",
        lambda x: f"{x['sequential']['runs_per_s']:.0f}")
    row("sequential p50 / p99 ms", f"{fl['sequential']['p50_ms']:.2f} / {fl['sequential']['p99_ms']:.2f}",
        lambda x: f"{x['sequential']['p50_ms']:.2f} / {x['sequential']['p99_ms']:.2f}")
    row(f"{r['concurrency']} concurrent runs/s", f"{fl['concurrent']['runs_per_s']:.0f}",
        lambda x: f"{x['concurrent']['runs_per_s']:.0f}")
    row(f"{r['concurrency']} concurrent p50 / p99 ms",
        f"{fl['concurrent']['p50_ms']:.2f} / {fl['concurrent']['p99_ms']:.2f}",
        lambda x: f"{x['concurrent']['p50_ms']:.2f} / {x['concurrent']['p99_ms']:.2f}")
    row("POST until 201, p50 / p99 ms (sequential)", "-",
        lambda x: f"{x['sequential']['post_p50_ms']:.2f} / {x['sequential']['post_p99_ms']:.2f}")
    row("RSS MB: before -> after 1st round -> end (runs)", "-",
        lambda x: f"{x['rss']['before_kib'] / 1024:.0f} -> {x['rss']['after_first_round_kib'] / 1024:.0f}"
                  f" -> {x['rss']['after_kib'] / 1024:.0f} ({x['rss']['runs']})")
    if all("memory" in x["rss"] for x in t.values()):
        m0 = next(iter(t.values()))["rss"]["memory"]
        row(f"RSS MB at run {m0['from_run']} -> run {m0['to_run']} (change)", "-",
            lambda x: f"{x['rss']['memory']['from_kib'] / 1024:.1f} -> "
                      f"{x['rss']['memory']['to_kib'] / 1024:.1f} "
                      f"({100 * x['rss']['memory']['change']:+.1f}%)")
    row("CPU ms per run, the server and its reaped children (sequential)", "-",
        lambda x: f"{x['sequential'].get('cpu_ms_per_run', float('nan')):.1f}")
    row("sequential p50 as a multiple of the floor", "1.00",
        lambda x: f"{x['sequential']['p50_ms'] / fl['sequential']['p50_ms']:.2f}x")
    row("overhead above the floor, sequential p50 ms", "0",
        lambda x: f"{x['sequential']['p50_ms'] - fl['sequential']['p50_ms']:.2f}")
    print()
    print("Praxis, sequential: mean time per phase of a run (last runs of the best round)")
    print()
    print("| phase | mean ms |")
    print("|---|---|")
    for p in r["praxis_phases"]:
        print(f"| {p['phase']} | {p['mean_ms']:.2f} |")
    if "peer" in t:
        p = t["peer"]
        x = t["praxis"]
        print()
        print(f"praxis / peer: sequential runs/s {x['sequential']['runs_per_s'] / p['sequential']['runs_per_s']:.2f}x, "
              f"{r['concurrency']} concurrent runs/s {x['concurrent']['runs_per_s'] / p['concurrent']['runs_per_s']:.2f}x, "
              f"POST p50 {x['sequential']['post_p50_ms'] / p['sequential']['post_p50_ms']:.2f}x the peer's time")


if __name__ == "__main__":
    sys.exit(main())
