"""Real-browser fixtures: the real ``app.py`` in a subprocess, driven by Playwright + Debian's Chromium."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "test-artifacts"))

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python app.py RUN [RUN ...] --port N`` as a child process."""

    def __init__(self, *run_dirs: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ARTIFACTS / f"server-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *map(str, run_dirs), "--port", str(self.port)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}; see {self.log.name}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("app.py did not start within 90 s")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="session")
def artifacts_dir():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser(artifacts_dir):
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run"],
        )
        yield browser
        browser.close()


CHROMIUM_NOISE = (
    # Chromium's own GPU process, not the app: with --disable-gpu, WebGL (Plotly's scattergl)
    # runs on a software GL whose driver reports "GPU stall due to ReadPixels" as a warning.
    re.compile(r"^\[\.WebGL-[0-9a-fx]+\]GL Driver Message \("),
)


def is_chromium_noise(text: str) -> bool:
    """A console message that Chromium itself logs, whatever page it shows (see CHROMIUM_NOISE)."""
    return any(pattern.search(text) for pattern in CHROMIUM_NOISE)


def record_console(page) -> None:
    """Collect ``page.console_errors`` (errors, uncaught exceptions) and ``page.console_warnings``."""
    page.console_errors, page.console_warnings = [], []

    def on_console(message):
        if message.type == "error":
            page.console_errors.append(message.text)
        elif message.type == "warning" and not is_chromium_noise(message.text):
            page.console_warnings.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and warnings; the test asserts they are empty."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    record_console(page)
    yield page
    context.close()



@pytest.fixture(scope="session")
def e2e_run(request):
    """The browser tests run against the embedded demo store.

    ``SPRAY_E2E_RUN=DIR`` uses a demo store built beforehand (``python -m precompute demo
    --out DIR``) instead of building one for the session; the lab tests write drafts and
    experiments into it.
    """
    prebuilt = os.environ.get("SPRAY_E2E_RUN")
    if prebuilt:
        return Path(prebuilt)
    return request.getfixturevalue("demo_run")


@pytest.fixture(scope="session")
def server(e2e_run, artifacts_dir):
    """The real ``python app.py <demo run>``, shared by all browser tests."""
    server = Server(e2e_run)
    yield server
    server.stop()
