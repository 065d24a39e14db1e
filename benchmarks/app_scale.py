"""The app at scale: a 1,000-class x 1,300-sample store in a real headless Chromium.

    python benchmarks/app_scale.py [--store runs/scale1000] [--classes 1000] [--per-class 1300]

It builds (or reuses, if present and complete) a synthetic store with
:func:`precompute.synthetic.write_synthetic_store` (``analysis_pool`` distinct analyses
and ``thumb_pool`` distinct thumbnails per class, reused by the other classes, so it
builds in minutes; heatmaps are small because the app reads thumbnails and embeddings,
and raw heatmaps only for a selection's prototype), and a baseline store of
``--baseline-classes`` classes of the same shape. For each store it starts the real
``python app.py STORE --port P`` (waitress) and drives it with Playwright and Debian's
``/usr/bin/chromium``:

- leaderboard load: navigation start -> grid rows shown -> a header click re-sorts the grid,
  on a first visit and with the scripts cached (the leaderboard loads no plotly.js);
- class switch: in-app navigation (what a leaderboard link does) to ``--visits`` random
  distinct classes -> the new class's scatter and spectrum plots rendered;
- lasso -> gallery: a real mouse lasso around groups of several sizes -> gallery tiles shown
  (and their thumbnails loaded);
- server RSS (app.py and its children) sampled every 0.2 s throughout, and after a sweep
  that loads every class once through the embedding callback (the per-class cache bound).

Server time per callback is the time to first byte of each ``_dash-update-component``
request on 127.0.0.1 as Chromium records it (server work + loopback), grouped by the
callback's first output. The server time of one interaction (a class switch, a lasso) is
the union of the request -> first byte intervals of the callbacks it sets off. The same
requests are then replayed one at a time with the browser idle. Goals (issue): leaderboard
interactive <= 1 s; class switch and selection <= 300 ms server time; every callback < 300 ms
server time; RSS <= 1.5 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from precompute.errors import StoreError  # noqa: E402
from precompute.store import RunStore  # noqa: E402
from tests.helpers.plot_geometry import (  # noqa: E402
    convex_hull, distance_to_edges, grow, inside, read_scatter)

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
BUILD_FILE = "benchmark-build.json"
GOALS = {"leaderboard_interactive_first_visit_ms": 1000.0, "leaderboard_interactive_cached_ms": 1000.0,
         "class_switch_server_p95_ms": 300.0, "selection_server_p95_ms": 300.0, "callback_server_p95_ms": 300.0,
         "rss_peak_mb": 1536.0}
# first output of a callback -> a readable name (the function in spray_dash/pages)
CALLBACK_NAMES = {
    "_pages_content.children": "page layout",
    "embedding.figure": "render_embedding",
    "explorer-selection.data": "select",
    "gallery.children": "render_gallery",
    "explorer-url-sync.data": "url_for_view",
    "explorer-propose.disabled": "propose_enabled",
    "inspector.children": "inspect",
    "explorer-navigate-lab.href": "to_lab",
    "navigate.pathname": "open_class",
    "gallery-page.data": "turn_page",
}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def percentile(values, q):
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


def summary_ms(values):
    return {"n": len(values), "median": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else float("nan")}


def fmt(stats):
    return f"n={stats['n']:3d} median={stats['median']:7.1f} p95={stats['p95']:7.1f} max={stats['max']:7.1f} ms"


def free_port(start: int = 8765) -> int:
    for port in range(start, start + 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    versions = []
    for package in ("dash", "plotly", "dash-ag-grid", "flask-caching", "waitress", "numpy", "playwright"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:  # noqa: BLE001 - a missing package is only reported
            versions.append(f"{package} ?")
    try:
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        chromium = "chromium ?"
    return (f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"python {platform.python_version()}; {', '.join(versions)}; {chromium}")


def tree_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------
def ensure_store(path: Path, params: dict) -> dict:
    """Build the synthetic store at ``path`` unless a complete one with ``params`` is there."""
    from precompute.synthetic import write_synthetic_store

    record_path = path / BUILD_FILE
    try:
        record = json.loads(record_path.read_text())
        if record.get("params") == params and len(RunStore(path).finished_ids()) == params["n_classes"]:
            record["reused"] = True
            print(f"store: reusing {path} ({params['n_classes']} classes, built in {record['seconds']:.0f} s)",
                  flush=True)
            return record
    except (OSError, ValueError, StoreError):
        pass
    print(f"store: building {path}: {params}", flush=True)
    started = time.perf_counter()
    write_synthetic_store(path, progress=True, **params)
    seconds = time.perf_counter() - started
    record = {"params": params, "seconds": seconds, "bytes": tree_bytes(path)}
    record_path.write_text(json.dumps(record, indent=1))
    record["reused"] = False
    print(f"store: built {path} in {seconds:.0f} s", flush=True)
    return record


# ---------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------
class Server:
    """``python app.py STORE --port P`` with an RSS sampler (the process and its children)."""

    def __init__(self, store: Path, log: Path):
        import psutil

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), str(store), "--port", str(self.port)],
                                        cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.process.pid)
        deadline = time.time() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}; see {log}")
            try:
                urllib.request.urlopen(self.url + "/_dash-layout", timeout=5).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("app.py did not answer within 180 s") from None
                time.sleep(0.2)
        self.start_seconds = time.perf_counter() - started
        self.samples = []  # (t, rss MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss_mb(self) -> float:
        import psutil

        total = 0
        for proc in [self.ps] + self.ps.children(recursive=True):
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def _sample(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.rss_mb()))
            except Exception:  # noqa: BLE001 - the process may be exiting
                pass
            self._stop.wait(0.2)

    def peak_mb(self) -> float:
        return max((m for _, m in self.samples), default=float("nan"))

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


# ---------------------------------------------------------------------------------------------
# the browser
# ---------------------------------------------------------------------------------------------
class Recorder:
    """Every finished ``_dash-update-component`` request: callback kind, time to first byte, size.

    A request is tagged with the phase and step (one navigation or one lasso) current
    when it was sent, so the callbacks that one interaction sets off can be summed.
    """

    def __init__(self):
        self.records = []
        self.phase = "setup"
        self.step = 0
        self._tags = {}

    def attach(self, page):
        page.on("request", self._sent)
        page.on("requestfinished", self._finished)

    def _sent(self, request):
        if is_callback(request.url):
            self._tags[id(request)] = (self.phase, self.step)

    def _finished(self, request):
        if not is_callback(request.url):
            return
        phase, step = self._tags.pop(id(request), (self.phase, self.step))
        try:
            body = json.loads(request.post_data or "{}")
        except ValueError:
            return
        timing = request.timing
        ttfb = timing["responseStart"] - timing["requestStart"]
        at = timing["startTime"] + timing["requestStart"]  # epoch ms
        try:
            size = request.sizes()["responseBodySize"]
        except Exception:  # noqa: BLE001 - sizes are informative only
            size = -1
        self.records.append({"phase": phase, "step": step, "kind": callback_kind(body), "ttfb_ms": ttfb,
                             "interval": (at, at + ttfb), "bytes": size, "body": request.post_data})

    def by_kind(self, phase=None):
        groups = defaultdict(list)
        for record in self.records:
            if phase is None or record["phase"] == phase:
                groups[record["kind"]].append(record["ttfb_ms"])
        return groups

    def per_step(self, phase, how="union"):
        """Server time of each step of ``phase``: the union of its callbacks' request -> first byte
        intervals (``"union"``: wall time with at least one of them at the server; callbacks of one
        step that run in parallel count once), or their plain ``"sum"``."""
        steps = defaultdict(list)
        for record in self.records:
            if record["phase"] == phase:
                steps[record["step"]].append(record["interval"])
        if how == "sum":
            return [sum(b - a for a, b in intervals) for intervals in steps.values()]
        totals = []
        for intervals in steps.values():
            total, end = 0.0, float("-inf")
            for a, b in sorted(intervals):
                if b > end:
                    total += b - max(a, end)
                    end = b
            totals.append(total)
        return totals


def is_callback(url: str) -> bool:
    return urllib.parse.urlsplit(url).path == "/_dash-update-component"


def callback_kind(body: dict) -> str:
    first = body.get("output", "").lstrip(".").split("...")[0].split("@")[0]
    name = CALLBACK_NAMES.get(first, first)
    if name == "page layout":
        path = next((i.get("value") for i in body.get("inputs", []) if i.get("property") == "pathname"), "")
        name += " (explorer)" if str(path).startswith("/class/") else " (leaderboard)" if path == "/" else f" ({path})"
    return name


WAIT_ROWS_JS = """() => {
  const cell = document.querySelector('#leaderboard .ag-center-cols-container .ag-row[row-index="0"] [col-id=name]');
  return cell && cell.innerText ? {t: performance.now(), name: cell.innerText} : false;
}"""

LONG_TASKS_JS = """
window.__longTasks = [];
new PerformanceObserver(list => list.getEntries().forEach(
  entry => window.__longTasks.push([entry.startTime, entry.duration]))).observe({type: 'longtask', buffered: true});
"""

WAIT_CLASS_JS = """([name, cid, n]) => {
  const h1 = document.querySelector('.class-title h1');
  const gd = document.querySelector('#embedding .js-plotly-plot');
  const spectrum = document.querySelector('#spectrum .js-plotly-plot');
  if (!h1 || h1.innerText !== name || !gd || !spectrum || !spectrum._fullData) return false;
  const layout = gd._fullLayout, trace = gd._fullData && gd._fullData[0];
  if (!layout || !String(layout.uirevision || '').startsWith(cid + '-') || !trace || trace.x.length !== n) return false;
  if (!gd.querySelector('.nsewdrag')) return false;
  return performance.now() - window.__switchStart;
}"""

WAIT_GALLERY_JS = """() => {
  const b = document.querySelector('#selection-summary b');
  const tiles = Array.from(document.querySelectorAll('.gallery-tile'));
  if (!b || !tiles.length) return false;
  if (window.__tilesAt === undefined) window.__tilesAt = performance.now() - window.__lassoEnd;
  const images = Array.from(document.querySelectorAll('.gallery-tile img'));
  if (!images.every(img => img.complete && img.naturalWidth > 0)) return false;
  return {tiles: window.__tilesAt, images: performance.now() - window.__lassoEnd, n: tiles.length,
          shown: Number(b.innerText)};
}"""


def navigate(page, href: str):
    page.evaluate("""(href) => {
        window.__switchStart = performance.now();
        if (window.sprayNavigate) { window.sprayNavigate(href); return; }
        window.history.pushState({}, '', href);
        window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
    }""", href)


def leaderboard_load(browser, url: str, recorder: Recorder, phase: str, last: str, context=None) -> dict:
    """One load: in a fresh browser context (first visit: nothing cached), or in a new page of ``context``."""
    own = context is None
    context = browser.new_context(viewport={"width": 1440, "height": 1000}) if own else context
    page = context.new_page()
    page.add_init_script(LONG_TASKS_JS)
    recorder.attach(page)
    recorder.phase = phase
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/", wait_until="commit")
    shown = page.wait_for_function(WAIT_ROWS_JS, polling="raf", timeout=60000).json_value()
    # rank is sorted ascending: one click on its header sorts it descending, so the last class comes first
    sort_start = page.evaluate("performance.now()")
    page.click("#leaderboard .ag-header-cell[col-id=rank] .ag-header-cell-label")
    sorted_at = page.wait_for_function(
        """(last) => {
          const cell = document.querySelector(
            '#leaderboard .ag-center-cols-container .ag-row[row-index="0"] [col-id=name]');
          return cell && cell.innerText === last ? performance.now() : false;
        }""", arg=last, polling="raf", timeout=30000).json_value()
    rows = page.eval_on_selector_all("#leaderboard .ag-center-cols-container .ag-row", "rs => rs.length")
    tasks = page.evaluate("() => window.__longTasks || []")
    after_rows = [duration for start, duration in tasks if start + duration > shown["t"]]
    page.close()
    if own:
        context.close()
    return {"rows_ms": shown["t"], "sort_ms": sorted_at - sort_start, "interactive_ms": sorted_at, "rows": rows,
            "errors": errors, "longest_task_after_rows_ms": max(after_rows, default=0.0)}


def lasso(page, rng: random.Random, target: int) -> dict:
    """A real mouse lasso around about ``target`` points near a random point; time mouse-up -> gallery.

    The polygon is chosen as in ``tests.helpers.plot_geometry.lasso_around`` (no point
    closer than 3 px to its edge, so the expected selection is unambiguous).
    """
    scatter = read_scatter(page, "embedding")
    pixels, sample_ids = scatter["pixels"], scatter["ids"]
    box = page.evaluate("() => { const r = document.querySelector('#embedding .nsewdrag').getBoundingClientRect();"
                        " return [r.left, r.top, r.right, r.bottom]; }")
    for _ in range(20):  # a group whose lasso fits the plot and passes no point closely
        centre = pixels[rng.randrange(len(pixels))]
        group = np.argsort(np.linalg.norm(pixels - centre, axis=1))[:target]
        hull = convex_hull(pixels[group])
        for margin in (8, 12, 6, 16, 4):
            polygon = grow(hull, margin)
            polygon[:, 0] = np.clip(polygon[:, 0], box[0] + 2, box[2] - 2)
            polygon[:, 1] = np.clip(polygon[:, 1], box[1] + 2, box[3] - 2)
            if distance_to_edges(polygon, pixels).min() >= 3:
                break
        else:
            continue
        break
    expected = sorted(int(i) for i in sample_ids[inside(polygon, pixels)])
    page.evaluate("() => { window.__tilesAt = undefined; }")
    page.mouse.move(*polygon[0])
    page.mouse.down()
    for vertex in list(polygon[1:]) + [polygon[0]]:
        page.mouse.move(*vertex, steps=4)
    page.evaluate("() => { window.__lassoEnd = performance.now(); }")
    page.mouse.up()
    try:
        result = page.wait_for_function(WAIT_GALLERY_JS, polling="raf", timeout=30000).json_value()
    except Exception:  # noqa: BLE001 - a lasso that selected nothing is reported, not fatal
        return {"selected": len(expected), "error": "the gallery stayed empty"}
    result["selected"] = len(expected)
    # the script's pixel estimate of the points may be off by a pixel or so near the polygon's edge
    if abs(result["shown"] - len(expected)) > max(3, 0.05 * len(expected)):
        result["error"] = f"the gallery shows {result['shown']} points, the lasso enclosed about {len(expected)}"
    return result


def browse(browser, server: Server, store: RunStore, recorder: Recorder, *, visits: int, lassos, seed: int,
           artifacts: Path, label: str) -> dict:
    rng = random.Random(seed)
    records = store.classes()
    n_by_id = {r.id: int(r.summary["n"]) for r in records}
    names = {r.id: r.name for r in records}
    order = sorted(records, key=lambda r: (-r.summary["tau"], r.name))  # the leaderboard's ranking
    last = order[-1].name
    # leaderboard: the first load (server caches cold), then warm loads, each in a fresh browser context
    loads = [leaderboard_load(browser, server.url, recorder, "leaderboard cold", last)]
    rss_after_leaderboard = server.rss_mb()
    for _ in range(4):
        loads.append(leaderboard_load(browser, server.url, recorder, "leaderboard warm", last))
    # a returning user: the browser has the app's scripts cached
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    leaderboard_load(browser, server.url, recorder, "leaderboard warm", last, context)
    cached = [leaderboard_load(browser, server.url, recorder, "leaderboard warm", last, context) for _ in range(4)]
    context.close()

    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    recorder.attach(page)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    recorder.phase = "setup"
    page.goto(server.url + "/")
    page.wait_for_function(WAIT_ROWS_JS, polling="raf", timeout=60000)
    # the first switch is a real click on the top class's link in the grid
    top = order[0]
    recorder.phase, recorder.step = "class switch", 1
    page.evaluate("() => { window.__switchStart = performance.now(); }")
    page.click(f"#leaderboard a.class-link:text-is('{top.name}')")
    switches = [page.wait_for_function(WAIT_CLASS_JS, arg=[top.name, top.id, n_by_id[top.id]], polling="raf",
                                       timeout=60000).json_value()]
    visited = [top.id]
    pool = [r.id for r in records if r.id != top.id]
    rng.shuffle(pool)
    lasso_results = []
    lasso_sizes = list(lassos)
    for cid in pool[:max(0, visits - 1)]:
        recorder.phase = "class switch"
        recorder.step += 1
        navigate(page, f"/class/{names[cid]}")
        switches.append(page.wait_for_function(WAIT_CLASS_JS, arg=[names[cid], cid, n_by_id[cid]], polling="raf",
                                               timeout=60000).json_value())
        visited.append(cid)
        if lasso_sizes:
            page.wait_for_selector(".empty-gallery", timeout=30000)  # the page's own callbacks have settled
            page.wait_for_timeout(300)
            recorder.phase = "selection"
            recorder.step += 1
            lasso_results.append(lasso(page, rng, lasso_sizes.pop(0)))
            if len(lasso_results) == 1:
                page.screenshot(path=str(artifacts / f"app-scale-{label}-lasso.png"), full_page=True)
    recorder.phase = "idle"
    page.wait_for_timeout(500)
    context.close()
    return {"loads": loads, "cached_loads": cached, "switches": switches,
            "visited": visited, "lassos": lasso_results,
            "rss_after_leaderboard": rss_after_leaderboard, "rss_after_visits": server.rss_mb(), "errors": errors}


# ---------------------------------------------------------------------------------------------
# replay and sweep (no browser): server time with the browser idle, and the memory bound
# ---------------------------------------------------------------------------------------------
def post(url: str, body: str) -> float:
    request = urllib.request.Request(url + "/_dash-update-component", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    return 1000 * (time.perf_counter() - started)


def replay(server: Server, recorder: Recorder, per_kind: int = 10) -> dict:
    bodies = defaultdict(list)
    for record in recorder.records:
        if record["body"] and len(bodies[record["kind"]]) < per_kind:
            bodies[record["kind"]].append(record["body"])
    return {kind: [post(server.url, body) for body in items] for kind, items in bodies.items()}


def sweep(server: Server, recorder: Recorder, store: RunStore) -> dict:
    """The embedding callback for every class once (cold class cache): time and RSS."""
    template = next((json.loads(r["body"]) for r in recorder.records if r["kind"] == "render_embedding"), None)
    if template is None:
        return {}
    times, rss = [], []
    for cid in store.finished_ids():
        for state in template["state"]:
            if state["id"] == "explorer-class-id":
                state["value"] = cid
            if state["id"] == "explorer-selection":
                state["value"] = {"token": None, "count": 0, "cluster": None}
        times.append(post(server.url, json.dumps(template)))
        rss.append(server.rss_mb())
    return {"times": times, "rss_end": rss[-1], "rss_max": max(rss)}


def layout_floor(server: Server, repeat: int = 20) -> list:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        urllib.request.urlopen(server.url + "/_dash-layout", timeout=30).read()
        times.append(1000 * (time.perf_counter() - started))
    return times


# ---------------------------------------------------------------------------------------------
def measure(browser, store_path: Path, args, label: str, artifacts: Path) -> dict:
    store = RunStore(store_path)
    load_before = os.getloadavg()
    server = Server(store_path, artifacts / f"app-scale-{label}-server.log")
    print(f"[{label}] app.py up on {server.url} in {server.start_seconds:.1f} s, RSS {server.rss_mb():.0f} MiB",
          flush=True)
    try:
        rss_start = server.rss_mb()
        recorder = Recorder()
        visits = min(args.visits, len(store.finished_ids()))
        result = browse(browser, server, store, recorder, visits=visits, lassos=args.lasso_sizes, seed=args.seed,
                        artifacts=artifacts, label=label)
        result["floor"] = layout_floor(server)
        result["replay"] = replay(server, recorder)
        result["rss_before_sweep"] = server.rss_mb()
        result["sweep"] = sweep(server, recorder, store) if args.sweep else {}
        result.update(rss_start=rss_start, rss_end=server.rss_mb(), rss_peak=server.peak_mb(),
                      start_seconds=server.start_seconds, callbacks=recorder.by_kind(),
                      callbacks_by_phase={phase: recorder.by_kind(phase) for phase in
                                          ("leaderboard cold", "leaderboard warm", "class switch", "selection")},
                      switch_totals=recorder.per_step("class switch"),
                      selection_totals=recorder.per_step("selection"),
                      switch_sums=recorder.per_step("class switch", "sum"),
                      selection_sums=recorder.per_step("selection", "sum"),
                      bytes={kind: max(r["bytes"] for r in recorder.records if r["kind"] == kind)
                             for kind in recorder.by_kind()},
                      classes=len(store.finished_ids()), load=(load_before, os.getloadavg()))
    finally:
        server.stop()
    report(label, result)
    return result


def report(label: str, r: dict) -> None:
    cold, warm = r["loads"][0], r["loads"][1:]
    print(f"\n[{label}] {r['classes']} classes; app.py start {r['start_seconds']:.1f} s; load average (1, 5, 15 min) "
          f"before {', '.join(f'{v:.2f}' for v in r['load'][0])}, after {', '.join(f'{v:.2f}' for v in r['load'][1])}")
    print(f"  leaderboard cold: rows {cold['rows_ms']:.0f} ms, interactive (sorted) {cold['interactive_ms']:.0f} ms, "
          f"sort {cold['sort_ms']:.0f} ms, {cold['rows']} rows rendered")
    print(f"  leaderboard warm server, first visit: rows {fmt(summary_ms([x['rows_ms'] for x in warm]))}")
    print(f"                         interactive {fmt(summary_ms([x['interactive_ms'] for x in warm]))}")
    print(f"                         sort click  {fmt(summary_ms([x['sort_ms'] for x in warm]))}")
    print(f"                         longest main-thread task after the rows showed "
          f"{fmt(summary_ms([x['longest_task_after_rows_ms'] for x in warm]))}")
    cached = r["cached_loads"]
    print(f"  leaderboard warm server, scripts cached: rows {fmt(summary_ms([x['rows_ms'] for x in cached]))}")
    print(f"                         interactive {fmt(summary_ms([x['interactive_ms'] for x in cached]))}")
    print(f"  class switch (browser, nav -> plots rendered): {fmt(summary_ms(r['switches']))}")
    for item in r["lassos"]:
        if "tiles" not in item:
            print(f"  lasso {item['selected']:5d} points: {item['error']}")
            continue
        print(f"  lasso {item['shown']:5d} points -> tiles {item['tiles']:.0f} ms, thumbnails loaded "
              f"{item['images']:.0f} ms ({item['n']} tiles)")
        if "error" in item:
            print(f"    ({item['error']})")
    print("  server time (Chromium time to first byte on 127.0.0.1) per callback, all phases:")
    for kind, values in sorted(r["callbacks"].items()):
        print(f"    {kind:32s} {fmt(summary_ms(values))}  largest response {r['bytes'][kind] / 1024:.0f} KiB")
    for phase in ("class switch", "selection"):
        print(f"  server time per callback during '{phase}':")
        for kind, values in sorted(r["callbacks_by_phase"][phase].items()):
            print(f"    {kind:32s} {fmt(summary_ms(values))}")
    print("  server time of one interaction (union of its callbacks' request -> first byte intervals; plain sum):")
    print(f"    class switch    {fmt(summary_ms(r['switch_totals']))}; sum p95 "
          f"{percentile(r['switch_sums'], 95):.1f} ms")
    print(f"    lasso selection {fmt(summary_ms(r['selection_totals']))}; sum p95 "
          f"{percentile(r['selection_sums'], 95):.1f} ms")
    print("  callback server time, replayed one at a time with the browser idle (warm caches):")
    for kind, values in sorted(r["replay"].items()):
        print(f"    {kind:32s} {fmt(summary_ms(values))}")
    if r["sweep"]:
        print(f"  sweep: render_embedding once per class (cold class cache): {fmt(summary_ms(r['sweep']['times']))}")
    print(f"  empty /_dash-layout request: {fmt(summary_ms(r['floor']))}")
    print(f"  RSS MiB: start {r['rss_start']:.0f}, after leaderboard {r['rss_after_leaderboard']:.0f}, after "
          f"{len(r['visited'])} class visits {r['rss_after_visits']:.0f}, before sweep {r['rss_before_sweep']:.0f}, "
          f"end {r['rss_end']:.0f}, peak {r['rss_peak']:.0f}")
    if r["errors"] or any(x["errors"] for x in r["loads"]):
        print(f"  page errors: {r['errors'] + [e for x in r['loads'] for e in x['errors']]}")


def goals(r: dict) -> dict:
    """The goal figures: a switch's or a selection's server time is the sum over the callbacks it sets off."""
    callback_p95 = max(percentile(values, 95) for kind, values in r["callbacks"].items())
    return {
        "leaderboard_interactive_first_visit_ms": percentile([x["interactive_ms"] for x in r["loads"][1:]], 50),
        "leaderboard_interactive_cached_ms": percentile([x["interactive_ms"] for x in r["cached_loads"]], 50),
        "class_switch_server_p95_ms": percentile(r["switch_totals"], 95),
        "selection_server_p95_ms": percentile(r["selection_totals"], 95),
        "callback_server_p95_ms": callback_p95,
        "rss_peak_mb": r["rss_peak"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=ROOT / "runs" / "scale1000")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=1300)
    parser.add_argument("--size", type=int, default=32, help="heatmap side (the app reads thumbnails, not heatmaps)")
    parser.add_argument("--analysis-pool", type=int, default=16)
    parser.add_argument("--thumb-pool", type=int, default=32)
    parser.add_argument("--baseline-classes", type=int, default=8, help="0: no baseline store")
    parser.add_argument("--visits", type=int, default=50, help="distinct classes visited in the browser")
    parser.add_argument("--lasso-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[40, 150, 500, 1100])
    parser.add_argument("--no-sweep", dest="sweep", action="store_false",
                        help="skip loading every class once through the embedding callback")
    parser.add_argument("--build-only", action="store_true", help="build (or check) the stores and stop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "test-artifacts")
    args = parser.parse_args(argv)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"date: {date.today().isoformat()}; command: python benchmarks/app_scale.py {' '.join(sys.argv[1:])}",
          flush=True)

    def params(classes):
        return {"n_classes": classes, "n_per_class": args.per_class, "size": args.size, "planted_every": 3,
                "seed": args.seed, "maps": ["umap", "tsne"], "thumb_pool": args.thumb_pool,
                "analysis_pool": min(args.analysis_pool, classes)}

    stores = [("scale", args.store, ensure_store(args.store, params(args.classes)))]
    if args.baseline_classes:
        path = args.store.with_name(args.store.name + f"-baseline{args.baseline_classes}")
        stores.append(("baseline", path, ensure_store(path, params(args.baseline_classes))))
    for label, path, record in stores:
        print(f"store {label}: {path}: {record['params']['n_classes']} x {record['params']['n_per_class']} samples, "
              f"{record['bytes'] / 2**30:.2f} GiB on disk, built in {record['seconds']:.0f} s"
              + (" (reused)" if record["reused"] else ""), flush=True)

    if args.build_only:
        return 0
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run"])
        try:
            for label, path, _ in stores:
                results[label] = measure(browser, path, args, label, args.artifacts)
        finally:
            browser.close()

    scale = goals(results["scale"])
    base = goals(results["baseline"]) if "baseline" in results else {}
    print(f"\ngoals ({results['scale']['classes']}-class store; baseline = the same interactions on the "
          f"{args.baseline_classes}-class store):")
    met_all = True
    for key, goal in GOALS.items():
        value = scale[key]
        met = value <= goal if key != "callback_server_p95_ms" else value < goal
        met_all &= met
        extra = f" baseline={base[key]:.1f} vs_baseline={value / base[key]:.2f}" if base else ""
        print(f"{key}={value:.1f} goal={goal:.0f} ratio={value / goal:.2f} {'met' if met else 'MISSED'}{extra}")
    switches = summary_ms(results["scale"]["switches"])
    print(f"\nsummary: classes={results['scale']['classes']} leaderboard_interactive_ms="
          f"{scale['leaderboard_interactive_first_visit_ms']:.0f}/{scale['leaderboard_interactive_cached_ms']:.0f} "
          f"(first visit/cached) class_switch_browser_p95_ms={switches['p95']:.0f} "
          f"class_switch_server_p95_ms={scale['class_switch_server_p95_ms']:.0f} "
          f"selection_server_p95_ms={scale['selection_server_p95_ms']:.0f} "
          f"callback_server_p95_ms={scale['callback_server_p95_ms']:.0f} rss_peak_mb={scale['rss_peak_mb']:.0f} "
          f"goals={'met' if met_all else 'MISSED'}")
    return 0 if met_all else 1


if __name__ == "__main__":
    sys.exit(main())
