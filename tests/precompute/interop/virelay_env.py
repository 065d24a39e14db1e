"""The real ViRelAy, in a virtual environment of its own, and a way to ask its WSGI app questions.

virelay 0.6.1 pins ``pillow<11`` and ``flask-cors<6``, so it cannot share the project's
environment. :func:`virelay_python` builds ``~/.cache/spray-studio/virelay-0.6.1``
(``python -m venv`` + ``pip install virelay==0.6.1``, 17 s measured) once; later sessions
reuse it. A lock keeps parallel workers (pytest-xdist) from building it twice, and a
``.complete`` marker, written last, tells a finished environment from a half-built one.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

VIRELAY_VERSION = "0.6.1"
CACHE = Path(os.environ.get("SPRAY_VIRELAY_VENV", Path.home() / ".cache" / "spray-studio" / f"virelay-{VIRELAY_VERSION}"))


def virelay_python() -> Path:
    """The Python of a virtual environment with virelay installed; skips the test if it cannot be built."""
    python = CACHE / "bin" / "python"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f".virelay-{VIRELAY_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.is_file() and (CACHE / ".complete").is_file():
            return python
        shutil.rmtree(CACHE, ignore_errors=True)  # a build that died half-way
        try:
            # built in place (venv scripts hold absolute paths); complete only once ".complete" exists
            subprocess.run([sys.executable, "-m", "venv", str(CACHE)], check=True, capture_output=True, timeout=120)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"virelay=={VIRELAY_VERSION}"], check=True, capture_output=True, text=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
            shutil.rmtree(CACHE, ignore_errors=True)
            detail = getattr(error, "stderr", "") or str(error)
            pytest.skip(f"could not install virelay=={VIRELAY_VERSION} into a virtual environment: "
                        f"{str(detail).strip()[-500:]}")
        (CACHE / ".complete").write_text(VIRELAY_VERSION)
        return python


# Runs in ViRelAy's environment: loads the projects into its real WSGI app and answers GET requests.
_CLIENT = textwrap.dedent('''
    import json, sys
    from virelay.application import run_wsgi_app

    projects, requests = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    client = run_wsgi_app(projects).test_client()
    answers = []
    for url in requests:
        response = client.get(url)
        body = response.get_json(silent=True) if response.mimetype == "application/json" else None
        answers.append({"url": url, "status": response.status_code, "mimetype": response.mimetype,
                        "bytes": len(response.data), "json": body})
    print(json.dumps(answers))
''')


def ask_virelay(python: Path, projects: List[Path], urls: List[str], timeout: float = 300) -> List[Dict[str, Any]]:
    """Answers of ViRelAy's app (status, mimetype, bytes, JSON body) to GET ``urls``, with ``projects`` loaded."""
    process = subprocess.run([str(python), "-c", _CLIENT, json.dumps([str(p) for p in projects]), json.dumps(urls)],
                             capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])
