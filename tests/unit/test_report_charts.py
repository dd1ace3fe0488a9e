"""Charts are real PNGs, and empty data gives a visible notice, never a blank image or a crash."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from closed_loop.reporting.charts import no_data_chart, render_charts
from closed_loop.reporting.data import ReportData
from closed_loop.reporting.metrics import compute_metrics
from closed_loop.reporting.quarters import Quarter
from devtools.synthetic import synthetic_report_data

Q = Quarter(2026, 3)
ACCENT = (0xC2, 0x41, 0x0C)  # bar / line colour of the charts


def image(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png)).convert("RGB")


def ink_share(img: Image.Image) -> float:
    """Share of pixels that are clearly not background."""
    grey = img.convert("L")
    return sum(1 for p in grey.getdata() if p < 200) / (img.width * img.height)


def near(img: Image.Image, colour, tolerance=30) -> int:
    return sum(
        1 for p in img.getdata() if all(abs(a - b) <= tolerance for a, b in zip(p, colour, strict=True))
    )


@pytest.fixture(scope="module")
def charts():
    return render_charts(compute_metrics(synthetic_report_data(Q.trailing(6)), Q))


@pytest.fixture(scope="module")
def empty_charts():
    return render_charts(compute_metrics(ReportData(), Q))


def test_all_charts_render_with_data(charts):
    assert set(charts) == {"trend", "pareto_questions", "pareto_topics", "sla"}
    for name, png in charts.items():
        img = image(png)
        assert img.width == 960, name
        assert img.height == 450 or name.startswith("pareto"), name  # a Pareto grows with its bars
        assert len(set(img.getdata())) > 50, name  # antialiased lines, bars and text
    for name in ("trend", "pareto_questions", "pareto_topics"):
        assert near(image(charts[name]), ACCENT) > 500, name


def test_empty_data_draws_a_notice_not_a_blank(empty_charts, charts):
    for name, png in empty_charts.items():
        img = image(png)
        assert img.size == (960, 450)
        assert 0.001 < ink_share(img) < 0.2, name  # some text and a frame, no data marks
        assert near(img, ACCENT) == 0, name
        assert png != charts[name]


def test_no_data_chart_message_is_drawn():
    blank = image(no_data_chart("Title", message=""))
    with_text = image(no_data_chart("Title"))
    assert ink_share(with_text) > ink_share(blank)


def test_single_quarter_and_missing_values_do_not_crash():
    import pandas as pd

    responses = pd.DataFrame(
        {"response_id": ["r"], "date_created": ["2026-08-01T00:00:00Z"], "negative": [True]}
    )
    pngs = render_charts(compute_metrics(ReportData(responses=responses), Q))
    assert near(image(pngs["trend"]), ACCENT) > 50


def test_labels_break_between_words_only():
    from closed_loop.reporting.charts import LABEL_CHARS, wrap_label

    text = "The implementation team understood our business needs and Internationalisation-requirements."
    wrapped = wrap_label(text)
    words = set(text.replace("\u2026", "").split())
    for line in wrapped.split("\n"):
        assert all(w in words or w == "\u2026" for w in line.split()), line  # no word cut in two
    assert len(wrapped.split("\n")) <= 3
    one_word = "Supercalifragilisticexpialidocious-and-more-than-a-line"
    assert len(one_word) > LABEL_CHARS and wrap_label(one_word) == one_word
    long = " ".join(["word"] * 40)
    assert wrap_label(long).endswith("\u2026") and all(
        len(x) <= LABEL_CHARS for x in wrap_label(long).split("\n")
    )
