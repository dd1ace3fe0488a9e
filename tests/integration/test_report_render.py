"""The archived HTML report, opened in Debian's headless Chromium, shows its charts."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from closed_loop.reporting.charts import render_charts
from closed_loop.reporting.email import render_standalone_html
from closed_loop.reporting.metrics import compute_metrics
from closed_loop.reporting.quarters import Quarter
from devtools.synthetic import synthetic_report_data

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1000, 2400)
PROBES = {  # a flat, unmistakable colour per chart: where it shows up is where that chart is drawn
    "trend": (255, 0, 255),
    "pareto_questions": (0, 255, 255),
    "pareto_topics": (255, 255, 0),
    "sla": (0, 0, 255),
}

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make browser)"
    ),
]


def screenshot(html: str, tmp_path: Path, name: str) -> Image.Image:
    page, png = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
    page.write_text(html, encoding="utf-8")
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / ('profile-' + name)}", f"--screenshot={png}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)  # hang guard
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return Image.open(png).convert("RGB")


def solid_png(like: bytes, colour) -> bytes:
    size = Image.open(io.BytesIO(like)).size
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def regions(shot: Image.Image) -> dict[str, tuple[int, int, int, int]]:
    """Bounding box of each probe colour in a screenshot (charts below the window are absent)."""
    pixels = np.asarray(shot)
    found = {}
    for name, colour in PROBES.items():
        ys, xs = np.nonzero((pixels == colour).all(axis=2))
        if len(xs) and xs.max() - xs.min() > 300 and ys.max() - ys.min() > 100:
            found[name] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return found


def chart_like(crop: Image.Image) -> bool:
    """Many distinct colours and some saturated ink (coloured bars, lines): a drawn chart, not alt text.

    Measured on the synthetic report: charts have 1.7-27% saturated pixels, failed images under 0.05%.
    """
    pixels = np.asarray(crop).reshape(-1, 3).astype(int)
    saturated = (pixels.max(axis=1) - pixels.min(axis=1) > 80).mean()
    return len(np.unique(pixels, axis=0)) > 150 and saturated > 0.005


@pytest.fixture(scope="module")
def metrics():
    q = Quarter(2026, 3)
    return compute_metrics(synthetic_report_data(q.trailing(6)), q)


def test_screenshot_shows_the_charts(metrics, tmp_path):
    charts = render_charts(metrics)
    shot = screenshot(render_standalone_html(metrics, charts), tmp_path, "report")
    assert shot.size == WINDOW
    assert len(np.unique(np.asarray(shot).reshape(-1, 3), axis=0)) > 500, "the page rendered (nearly) blank"

    probe = screenshot(
        render_standalone_html(metrics, {n: solid_png(png, PROBES[n]) for n, png in charts.items()}),
        tmp_path,
        "probe",
    )
    boxes = regions(probe)
    assert {"trend", "pareto_questions", "pareto_topics"} <= set(boxes), boxes
    for name, box in boxes.items():
        assert chart_like(shot.crop(box)), f"{name} chart not visible at {box}"

    # Control: the same page whose images cannot load fails the very same check.
    broken = render_standalone_html(metrics, {n: b"not a png" for n in charts})
    broken_shot = screenshot(broken, tmp_path, "broken")
    assert not any(chart_like(broken_shot.crop(box)) for box in boxes.values())
