"""Map a rendered Plotly scatter's data to screen pixels, and draw lassos around point groups."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

READ_SCATTER_JS = """(graphId) => {
  const gd = document.querySelector('#' + graphId + ' .js-plotly-plot');
  const layout = gd._fullLayout;
  const box = document.querySelector('#' + graphId + ' .nsewdrag').getBoundingClientRect();
  const trace = gd._fullData[0];
  return {x: Array.from(trace.x), y: Array.from(trace.y), ids: Array.from(trace.customdata),
          xrange: layout.xaxis.range, yrange: layout.yaxis.range,
          box: {left: box.left, top: box.top, width: box.width, height: box.height}};
}"""


def read_scatter(page, graph_id: str) -> Dict:
    """Point coordinates (data and pixels) and sample ids of the first trace of a graph."""
    info = page.evaluate(READ_SCATTER_JS, graph_id)
    xs, ys = np.asarray(info["x"], float), np.asarray(info["y"], float)
    (x0, x1), (y0, y1) = info["xrange"], info["yrange"]
    box = info["box"]
    px = box["left"] + (xs - x0) / (x1 - x0) * box["width"]
    py = box["top"] + (1 - (ys - y0) / (y1 - y0)) * box["height"]
    return {"ids": np.asarray(info["ids"], int), "pixels": np.stack([px, py], axis=1), "box": box}


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Monotone-chain convex hull, counter-clockwise, (m, 2)."""
    pts = sorted(map(tuple, np.asarray(points, float)))
    if len(pts) < 3:
        return np.asarray(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: List[Tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: List[Tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1])


def grow(polygon: np.ndarray, margin: float) -> np.ndarray:
    """Push each vertex ``margin`` pixels away from the centroid."""
    centre = polygon.mean(axis=0)
    direction = polygon - centre
    length = np.linalg.norm(direction, axis=1, keepdims=True)
    return polygon + direction / np.maximum(length, 1e-9) * margin


def inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Ray-casting point-in-polygon test, (n,) bool."""
    x, y = points[:, 0], points[:, 1]
    result = np.zeros(len(points), bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result ^= crosses & (x < at)
    return result


def distance_to_edges(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of each point to the polygon's boundary, (n,)."""
    best = np.full(len(points), np.inf)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best


def lasso_around(page, pixels_of_group: np.ndarray, all_pixels: np.ndarray,
                 margins: Sequence[float] = (8, 12, 6, 16, 4)) -> Tuple[np.ndarray, np.ndarray]:
    """Drag a real mouse lasso around a group; return (polygon, mask of points inside it).

    Chooses a margin whose polygon passes no closer than 3 px to any point, so the
    expected selection is unambiguous.
    """
    hull = convex_hull(pixels_of_group)
    for margin in margins:
        polygon = grow(hull, margin)
        if distance_to_edges(polygon, all_pixels).min() >= 3:
            break
    page.mouse.move(*polygon[0])
    page.mouse.down()
    for vertex in list(polygon[1:]) + [polygon[0]]:
        page.mouse.move(*vertex, steps=8)
    page.mouse.up()
    return polygon, inside(polygon, all_pixels)


def lasso_artifact_carriers(page, url: str, run_dir, class_name: str = "star") -> np.ndarray:
    """Open ``class_name`` in the explorer at ``url`` and lasso most of the samples that carry its
    planted artifact (``run_dir/truth.csv``); returns the selected mask (n,) once the page shows it."""
    from precompute.evaluate import read_truth
    from precompute.store import RunStore

    store = RunStore(run_dir)
    truth = read_truth(store.root / "truth.csv")
    carriers = np.array([bool(truth[str(p)][1]) for p in store.arrays(store.id_for_name(class_name))["paths"]])
    page.goto(f"{url}/class/{class_name}")
    page.wait_for_function("document.querySelector('#embedding .js-plotly-plot')?._fullData?.[0]?.x?.length > 0")
    scatter = read_scatter(page, "embedding")
    group = scatter["pixels"][carriers[scatter["ids"]]]
    distance = np.linalg.norm(group - np.median(group, axis=0), axis=1)
    _, selected = lasso_around(page, group[distance <= np.quantile(distance, 0.9)], scatter["pixels"])
    page.wait_for_function(f"document.querySelector('#selection-summary b')?.innerText === '{int(selected.sum())}'")
    return selected
