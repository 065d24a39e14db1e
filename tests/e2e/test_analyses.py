"""Several analyses of one run in a real headless Chromium: `analyse` adds one through the CLI, the
leaderboard shows its τ, and the explorer switches to it with the state in the URL."""
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from precompute.store import RunStore
from tests.e2e.conftest import Server, needs_chromium

pytestmark = needs_chromium
ROOT = Path(__file__).resolve().parents[2]


def leaderboard_shows_tau(page, url, store, name, analysis):
    """Class ``name``'s id and stored ``analysis`` summary, once its τ cell for that analysis on the
    leaderboard is checked to show the stored τ."""
    cid = store.id_for_name(name)
    summary = store.summary(cid, analysis)
    page.goto(url + "/")
    page.wait_for_selector(f"#leaderboard .ag-header-cell[col-id=analysis_tau_{analysis}]")
    shown = page.inner_text(f"#leaderboard .ag-row[row-id={cid}] [col-id=analysis_tau_{analysis}]")
    assert shown == f"{summary['tau']:.3f}"
    return cid, summary


def default_cluster_sizes(store, cid, analysis):
    """Sorted cluster sizes of the analysis's default clustering, from the store."""
    arrays = store.arrays(cid, analysis)
    names = [str(name) for name in arrays["clustering_names"]]
    labels = arrays["clustering_labels"][names.index(store.summary(cid, analysis)["default_clustering"])]
    return sorted(np.bincount(labels).tolist())


def wait_for_cluster_sizes(page, sizes):
    """Wait until the cluster buttons show exactly these sizes (in any order)."""
    page.wait_for_function(
        "expected => JSON.stringify(Array.from(document.querySelectorAll('.cluster-button b'))"
        ".map(b => parseInt(b.textContent)).sort((a, b) => a - b)) === JSON.stringify(expected)",
        arg=sorted(sizes))


@pytest.fixture(scope="module")
def run_with_cosine(e2e_run, tmp_path_factory):
    """A copy of the demo run with a cosine analysis of two classes, added by the command line."""
    out = tmp_path_factory.mktemp("analyses") / "demo"
    shutil.copytree(e2e_run, out, ignore=shutil.ignore_patterns("experiments", "variants"))
    done = subprocess.run([sys.executable, "-m", "precompute", "analyse", str(out), "--distance", "cosine",
                           "--classes", "star,circle", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "cosine: 2 classes analysed" in done.stderr
    done = subprocess.run([sys.executable, "-m", "precompute", "analyse", str(out), "--distance", "gw",
                           "--classes", "star", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "gw: 1 classes analysed" in done.stderr, done.stderr
    return out


@pytest.fixture(scope="module")
def analyses_server(run_with_cosine, artifacts_dir):
    server = Server(run_with_cosine)
    yield server
    server.stop()


def test_explorer_switches_analysis_and_the_url_restores_it(page, analyses_server, run_with_cosine, artifacts_dir):
    store = RunStore(run_with_cosine)
    cid, cosine = leaderboard_shows_tau(page, analyses_server.url, store, "star", "cosine")
    page.goto(analyses_server.url + "/class/star")
    page.wait_for_selector(".cluster-button")
    assert "?" not in page.url or "analysis=" not in page.url
    page.click("#explorer-analysis-select")
    page.get_by_role("option", name=f"cosine · τ {cosine['tau']:.3f}").click()
    page.wait_for_function("new URLSearchParams(location.search).get('analysis') === 'cosine'")
    page.wait_for_selector(".cluster-button")
    family, _, k = cosine["default_clustering"].rpartition("-k")
    # the cosine analysis's default clustering, not the primary one's (the old buttons linger a moment)
    wait_for_cluster_sizes(page, default_cluster_sizes(store, cid, "cosine"))
    page.locator(".cluster-button").nth(0).click()
    page.wait_for_function("new URLSearchParams(location.search).get('cluster') !== null")
    query = parse_qs(urlparse(page.url).query)
    assert query["analysis"] == ["cosine"] and query["color"] == [family] and query["k"] == [k]
    page.reload()
    page.wait_for_selector(".gallery-tile")
    assert parse_qs(urlparse(page.url).query)["analysis"] == ["cosine"]
    # the header's tau is the shown analysis's, labelled with its name
    fact = page.locator(".fact", has_text="cosine")
    assert fact.locator("b").inner_text() == f"{cosine['tau']:.3f}"
    page.screenshot(path=str(artifacts_dir / "explorer-analysis.png"), full_page=True)
    # a class without the cosine analysis shows no switch and ignores the stale parameter
    page.goto(analyses_server.url + "/class/arrow?analysis=cosine")
    page.wait_for_selector(".cluster-button")
    assert not page.locator("#explorer-analysis-select").is_visible()
    assert page.console_errors == [] and page.console_warnings == []


def test_a_gw_analysis_opens_from_the_url(page, analyses_server, run_with_cosine, artifacts_dir):
    """The Gromov-Wasserstein analysis (POT, candidate pairs) is served like any other."""
    store = RunStore(run_with_cosine)
    cid, gw = leaderboard_shows_tau(page, analyses_server.url, store, "star", "gw")
    page.goto(analyses_server.url + "/class/star?analysis=gw")
    wait_for_cluster_sizes(page, default_cluster_sizes(store, cid, "gw"))
    assert page.locator(".fact", has_text="gw").locator("b").inner_text() == f"{gw['tau']:.3f}"
    page.locator(".cluster-button").nth(0).click()  # its gallery: the cluster's samples
    page.wait_for_selector(".gallery-tile")
    assert parse_qs(urlparse(page.url).query)["analysis"] == ["gw"]
    # the prototype of a GW cluster is its medoid's heatmap (a mean would smear shapes at different places)
    page.wait_for_function("(() => { const img = document.querySelector('.prototype-img'); "
                           "return img && img.complete && img.naturalWidth > 0; })()")
    assert page.inner_text(".prototype figcaption") == "medoid heatmap (gw prototype)"
    assert "analysis=gw" in page.get_attribute(".prototype-img", "src")
    page.screenshot(path=str(artifacts_dir / "explorer-gw.png"), full_page=True)
    assert page.console_errors == [] and page.console_warnings == []
