"""Bounded load test of the dashboard on loopback: N concurrent clients for T seconds.

    python benchmarks/load_test.py [RUN] [--clients 20] [--seconds 60]

It starts ``python app.py RUN`` on 127.0.0.1 (the real server: waitress) and runs the
clients. Each client repeatedly:
- browses a random class, making the explorer's two main callbacks with a random selection;
- fetches thumbnails;
- now and then runs a paste experiment through the lab's callbacks, waits for it, and
  checks that the saved record is exactly the one it asked for (two users' experiments
  must never mix).

It reports errors, latency percentiles per kind of request, and the server's memory
(RSS) over time. Traffic goes to 127.0.0.1 only, and the loops stop after the set time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from precompute.store import RunStore  # noqa: E402
from spray_dash import ids  # noqa: E402
from spray_dash.selection import encode_mask  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    def __init__(self, base: str, callbacks: dict, store: RunStore, seed: int, stats, lock, paste_every: int):
        self.base, self.callbacks, self.store = base, callbacks, store
        self.rng = random.Random(seed)
        self.stats, self.lock = stats, lock
        self.paste_every = paste_every
        self.classes = [(r.id, r.name, r.summary["n"]) for r in store.classes()]
        self.artifacts = [e for e in store.artifact_entries() if e.get("position")]

    def record(self, kind: str, seconds: float, ok: bool, note: str = "") -> None:
        with self.lock:
            self.stats[kind].append(seconds)
            if not ok:
                self.stats["errors"].append(f"{kind}: {note}")

    def get(self, kind: str, path: str) -> bytes:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as response:
                body = response.read()
            self.record(kind, time.perf_counter() - started, True)
            return body
        except (urllib.error.URLError, OSError) as error:
            self.record(kind, time.perf_counter() - started, False, f"{path}: {error}")
            return b""

    def callback(self, kind: str, first_output: str, outputs, inputs, state=(), changed=()):
        payload = {
            "output": self.callbacks[first_output],
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
            "changedPropIds": list(changed),
        }
        request = urllib.request.Request(self.base + "/_dash-update-component", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = json.loads(response.read())
            self.record(kind, time.perf_counter() - started, True)
            return body.get("response", {})
        except (urllib.error.URLError, OSError, ValueError) as error:
            self.record(kind, time.perf_counter() - started, False, f"{first_output}: {error}")
            return {}

    def browse(self):
        cid, name, n = self.rng.choice(self.classes)
        self.get("page", f"/class/{name}")
        view = {"map": "umap", "dims": "1,2", "color": "kmeans_lead", "k": 2}
        self.callback("callback: embedding", f"{ids.EMBEDDING}.figure", [
            (ids.EMBEDDING, "figure"), (ids.CLUSTER_BUTTONS, "children"), (ids.K_SELECT, "options"),
            (ids.K_SELECT, "value"), (ids.K_SELECT, "disabled"), (ids.SPECTRAL_DIMS, "style"),
            (ids.VIEW_STATE, "data")],
            inputs=[(ids.MAP_SELECT, "value", "umap"), (ids.SPECTRAL_X, "value", 1), (ids.SPECTRAL_Y, "value", 2),
                    (ids.COLOR_SELECT, "value", "kmeans_lead"), (ids.K_SELECT, "value", 2)],
            state=[(ids.CLASS_ID, "data", cid), (ids.SELECTION, "data", {"token": None})])
        chosen = self.rng.sample(range(n), self.rng.randint(1, n))
        token = encode_mask(chosen, n)
        self.callback("callback: gallery", f"{ids.GALLERY}.children", [
            (ids.GALLERY, "children"), (ids.GALLERY_PAGER, "children"), (ids.GALLERY_PREV, "disabled"),
            (ids.GALLERY_NEXT, "disabled"), (ids.PROTOTYPE, "children"), (ids.EXPORT, "children"),
            (ids.SELECTION_SUMMARY, "children")],
            inputs=[(ids.SELECTION, "data", {"token": token, "count": len(chosen), "cluster": None}),
                    (ids.GALLERY_PAGE, "data", 0), (ids.VIEW_STATE, "data", view)],
            state=[(ids.CLASS_ID, "data", cid)])
        self.get("prototype", f"/prototype/{cid}.webp?sel={token}")
        for index in self.rng.sample(range(n), min(12, n)):
            self.get("thumbnail", f"/thumb/{cid}/{self.rng.choice(['image', 'heatmap'])}/{index}.webp")

    def paste(self):
        if not self.artifacts:
            return
        artifact = self.rng.choice(self.artifacts)
        origin = self.store.id_for_name(artifact["class"])
        seed, count = self.rng.randint(0, 10**6), self.rng.choice([8, 16, 24])
        started = time.perf_counter()
        response = self.callback("callback: lab start", f"{ids.LAB_JOB}.data", [
            (ids.LAB_JOB, "data"), (ids.LAB_POLL, "disabled"), (ids.LAB_MESSAGE, "children")],
            inputs=[(ids.LAB_RUN_PASTE, "n_clicks", 1), (ids.LAB_RUN_REMOVAL, "n_clicks", 0)],
            state=[(ids.LAB_ARTIFACT, "value", artifact["id"]), (ids.LAB_ORIGIN, "value", origin),
                   (ids.LAB_PLACEMENT, "value", "original"), (ids.LAB_CORNER, "value", "bl"), (ids.LAB_X, "value", 0),
                   (ids.LAB_Y, "value", 0), (ids.LAB_SCALE, "value", 1.0), (ids.LAB_OPACITY, "value", 1.0),
                   (ids.LAB_N, "value", count), (ids.LAB_SEED, "value", seed), (ids.LAB_TARGETS, "value", None),
                   (ids.LAB_REMOVAL, "data", None)],
            changed=[f"{ids.LAB_RUN_PASTE}.n_clicks"])
        job = response.get(ids.LAB_JOB, {}).get("data")
        if not job:
            self.record("experiment", time.perf_counter() - started, False, "no job id")
            return
        poll_outputs = [(ids.LAB_PROGRESS, "children"), (ids.LAB_POLL, "disabled"), (ids.LAB_EXPERIMENT, "data"),
                        (ids.LAB_MESSAGE, "children"), (ids.LAB_CANCEL, "disabled"), (ids.LAB_RUN_PASTE, "disabled"),
                        (ids.LAB_EXPERIMENTS, "rowData")]
        deadline = time.time() + 300
        while time.time() < deadline:
            time.sleep(0.5)
            status = self.callback("callback: lab poll", f"{ids.LAB_PROGRESS}.children", poll_outputs,
                                   inputs=[(ids.LAB_POLL, "n_intervals", 1)], state=[(ids.LAB_JOB, "data", job)])
            experiment = status.get(ids.LAB_EXPERIMENT, {}).get("data")
            if experiment:
                record = json.loads(self.get("experiment json", f"/experiment/{experiment}.json") or b"{}")
                params = record.get("params", {})
                mixed = (params.get("seed"), params.get("n"), params.get("origin_id")) != (seed, count, origin)
                self.record("experiment", time.perf_counter() - started, not mixed,
                            f"mixed results: asked {(seed, count, origin)}, got {params}")
                with self.lock:
                    self.stats["experiments"].append(experiment)
                return
            if status.get(ids.LAB_POLL, {}).get("disabled") is True:
                self.record("experiment", time.perf_counter() - started, False, f"job ended without result: {status}")
                return
        self.record("experiment", time.perf_counter() - started, False, "timed out")

    def run(self, deadline: float, index: int):
        step = 0
        while time.time() < deadline:
            step += 1
            if self.paste_every and step % self.paste_every == 0 and index % 4 == 0:
                self.paste()
            else:
                self.browse()


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--paste-every", type=int, default=6,
                        help="every k-th step of every 4th client is a paste experiment (0: none)")
    args = parser.parse_args(argv)
    store = RunStore(args.run)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), str(args.run), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        dependencies = json.loads(urllib.request.urlopen(base + "/_dash-dependencies").read())
        callbacks = {}
        for dep in dependencies:
            first = dep["output"].lstrip(".").split("...")[0].split("@")[0]
            callbacks.setdefault(first, dep["output"])
        stats, lock = defaultdict(list), threading.Lock()
        warm = Client(base, callbacks, store, 0, defaultdict(list), threading.Lock(), 0)
        for _ in range(3):
            warm.browse()  # fill caches and load the model, so memory is measured at steady state
        warm.paste()
        memory = [(0.0, rss_mb(server.pid))]
        started = time.time()
        deadline = started + args.seconds
        clients = [Client(base, callbacks, store, k + 1, stats, lock, args.paste_every) for k in range(args.clients)]
        threads = [threading.Thread(target=c.run, args=(deadline, k), daemon=True) for k, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(1.0)
            memory.append((time.time() - started, rss_mb(server.pid)))
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait(10)
    errors = stats.pop("errors", [])
    experiments = stats.pop("experiments", [])
    total = sum(len(v) for v in stats.values())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; server: app.py (waitress, 8 threads) on 127.0.0.1")
    print(f"run: {args.run} ({len(store.finished_ids())} classes); {args.clients} clients for {args.seconds:.0f} s")
    print(f"{'request':24s} {'count':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for kind in sorted(stats):
        values = stats[kind]
        print(f"{kind:24s} {len(values):7d} {1000 * statistics.median(values):8.1f} "
              f"{1000 * percentile(values, 95):8.1f} {1000 * max(values):8.1f}")
    all_values = [v for kind, values in stats.items() if kind != "experiment" for v in values]
    p95 = 1000 * percentile(all_values, 95)
    start_rss, end_rss, peak_rss = memory[0][1], memory[-1][1], max(m for _, m in memory)
    print(f"requests: {total}, errors: {len(errors)}, experiments: {len(experiments)} (all distinct: "
          f"{len(set(experiments)) == len(experiments)})")
    for error in errors[:10]:
        print("  error:", error)
    print(f"server RSS: start {start_rss:.0f} MB, end {end_rss:.0f} MB, peak {peak_rss:.0f} MB")
    # flat or leaking: the timeline, and the growth over the second half alone
    marks = [m for m in memory if m is memory[0] or int(m[0]) % 10 == 0]
    print("server RSS over time: " + ", ".join(f"{t:.0f} s {mb:.0f} MB" for t, mb in marks))
    half = min(memory, key=lambda m: abs(m[0] - args.seconds / 2))
    print(f"server RSS growth over the second half: {half[1]:.0f} -> {end_rss:.0f} MB "
          f"({100 * (end_rss / half[1] - 1):+.1f} %)")
    print(f"requests={total} errors={len(errors)} p95_ms={p95:.1f} rss_start_mb={start_rss:.0f} "
          f"rss_end_mb={end_rss:.0f} rss_growth={end_rss / start_rss:.2f}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
