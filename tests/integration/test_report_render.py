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


SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# Chromium's headless window is at least 500 px wide, so the page is laid out in an iframe of the device's
# width and measured from the outside (the wrapper reads the frame's document: same file origin).
WRAPPER = """<!DOCTYPE html><html><head><style>body{margin:0;background:#fff}iframe{border:0;display:block}
</style></head><body><iframe id="f" src="%(src)s" style="width:%(width)dpx;height:%(height)dpx"></iframe>
<script>
document.getElementById("f").addEventListener("load", () => {
  const doc = document.getElementById("f").contentDocument, win = doc.defaultView;
  const view = doc.documentElement.clientWidth;
  let smallest = 99, outside = 0;
  for (const el of doc.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own) smallest = Math.min(smallest, parseFloat(win.getComputedStyle(el).fontSize));
    const box = el.getBoundingClientRect();
    if (box.width && box.right > view + 1) outside++;
  }
  document.title = JSON.stringify({scroll: doc.documentElement.scrollWidth, view, smallest, outside,
                                   height: doc.documentElement.scrollHeight});
});
</script></body></html>"""


def chromium(tmp_path: Path, name: str, url: str, window: tuple[int, int], *extra: str):
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--allow-file-access-from-files", "--virtual-time-budget=5000",
        f"--user-data-dir={tmp_path / ('profile-' + name)}", f"--window-size={window[0]},{window[1]}",
        *extra, url,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)  # hang guard


def layout(html: str, tmp_path: Path, device: str, width: int, height: int = 900) -> tuple[dict, Path]:
    """Layout facts of the report in a ``width`` px wide frame, from the browser itself."""
    import json
    import re

    report = tmp_path / f"{device}-report.html"
    report.write_text(html, encoding="utf-8")
    wrapper = tmp_path / f"{device}.html"
    wrapper.write_text(WRAPPER % {"src": report.name, "width": width, "height": height}, encoding="utf-8")
    done = chromium(
        tmp_path, f"m-{device}-{height}", wrapper.as_uri(), (max(width, 500), height), "--dump-dom"
    )
    found = re.search(r"<title>(\{.*?\})</title>", done.stdout.replace("&quot;", '"'))
    assert found, f"no measurement (exit {done.returncode}): {done.stderr[-1500:]}"
    return json.loads(found.group(1)), wrapper


@pytest.mark.parametrize(("device", "width"), [("phone", 390), ("desktop", 1280)])
def test_report_reads_on_a_phone_and_a_desktop(metrics, tmp_path, device, width):
    """At 390 px (a phone) nothing is wider than the screen and no text is smaller than 12 px; the full-page
    screenshots of both widths are kept in test-output/screenshots/ for people to look at."""
    html = render_standalone_html(metrics, render_charts(metrics))
    facts, _ = layout(html, tmp_path, device, width)
    assert facts["view"] == width, facts
    assert facts["scroll"] <= width, facts  # no sideways scrolling
    assert facts["outside"] == 0, facts  # no element sticking out of the screen
    assert facts["smallest"] >= 12, facts

    height = facts["height"]
    _, wrapper = layout(html, tmp_path, device, width, height)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = SCREENSHOTS / f"quarterly_report_{device}.png"
    png.unlink(missing_ok=True)
    chromium(tmp_path, f"s-{device}", wrapper.as_uri(), (max(width, 500), height), f"--screenshot={png}")
    shot = Image.open(png).convert("RGB").crop((0, 0, width, height))
    shot.save(png)
    pixels = np.asarray(shot)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500, "blank page"
    # the report's dark header band (688 px at most) spans the frame: the page was drawn, not left empty
    assert (pixels[40] < 80).all(axis=-1).sum() > 0.6 * min(width, 688)
