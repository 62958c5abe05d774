"""The pure chart renderer (charts/svg.py): geometry and well-formedness, without a database.

The numbers a chart shows are checked against the API in tests/api/test_charts.py; here, that
what is drawn is where it must be: a higher score higher up, a later time further right, every
mark inside the plot, and the document well-formed whatever the input.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kap_outcomes.charts.svg import Band, ChartSpec, Marker, Point, TrendSegment, render

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BANDS = [Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"),
         Band(15, 19, "moderately_severe"), Band(20, 27, "severe")]  # fmt: skip


def _spec(points, markers=(), baseline=None, trend=None) -> ChartSpec:
    return ChartSpec(
        instrument="phq9",
        name="PHQ-9",
        max_score=27,
        bands=BANDS,
        points=points,
        markers=list(markers),
        baseline=baseline,
        mcid=5,
        trend=trend,
        trend_label="improving" if trend else "insufficient_data",
    )


def _circles(svg: str) -> list[tuple[float, float, int]]:
    root = ET.fromstring(svg)
    return [
        (float(c.get("cx")), float(c.get("cy")), int(c.get("data-total")))
        for c in root.iter("{http://www.w3.org/2000/svg}circle")
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 27)),
        min_size=1,
        max_size=30,
        unique_by=lambda p: p[0],
    ),
    st.integers(240, 2000),
    st.integers(160, 1200),
)
def test_higher_scores_are_higher_and_later_times_further_right(raw, width, height):
    points = [Point(T0 + timedelta(hours=h), total) for h, total in sorted(raw)]
    svg = render(_spec(points), width=width, height=height)
    circles = _circles(svg)
    assert [total for _, _, total in circles] == [p.total for p in points]
    xs = [x for x, _, _ in circles]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    for (_, y1, a), (_, y2, b) in itertools.pairwise(circles):
        assert (a > b) == (y1 < y2) or a == b
    for x, y, _ in circles:
        assert 0 < x < width and 0 < y < height


def test_a_score_of_zero_sits_on_the_axis_and_the_maximum_on_top():
    svg = render(_spec([Point(T0, 0), Point(T0 + timedelta(days=7), 27)]), height=320)
    (_, y_zero, _), (_, y_max, _) = _circles(svg)
    root = ET.fromstring(svg)
    axis = next(e for e in root.iter() if e.get("class") == "axes")
    x_axis = next(iter(axis))
    assert y_zero == float(x_axis.get("y1"))
    assert y_max < y_zero and y_max >= 0


def test_markers_and_trend_stay_inside_the_plot():
    markers = [Marker(T0 - timedelta(days=3), "dosing"), Marker(T0 + timedelta(days=40), "booster")]
    trend = TrendSegment(T0, T0 + timedelta(days=28), 30.0, -4.0, -8.5, "improving")
    svg = render(_spec([Point(T0, 20), Point(T0 + timedelta(days=28), 5)], markers, 20, trend))
    root = ET.fromstring(svg)
    lines = {e.get("class"): e for e in root.iter() if e.get("class")}
    x_axis = next(iter(next(e for e in root.iter() if e.get("class") == "axes")))
    left, right = float(x_axis.get("x1")), float(x_axis.get("x2"))
    bottom = float(x_axis.get("y1"))
    for marker in (e for e in root.iter() if e.get("class") == "dose-marker"):
        assert left <= float(marker.get("x1")) <= right
    line = lines["trend-line"]
    # drawn clamped to the scale (0 … 27) even though the line's values run past it
    assert float(line.get("y1")) >= 0 and float(line.get("y2")) <= bottom
    assert line.get("data-start-value") == "30.0" and line.get("data-end-value") == "-4.0"
    assert lines["mcid"].get("data-value") == "15"


def test_an_empty_chart_says_so():
    svg = render(_spec([]))
    root = ET.fromstring(svg)
    assert _circles(svg) == []
    assert "No valid PHQ-9 score has been recorded yet." in svg
    assert root.get("role") == "img"


def test_a_baseline_below_the_mcid_draws_no_negative_threshold():
    svg = render(_spec([Point(T0, 3)], baseline=3))
    assert 'class="mcid"' not in svg and 'class="baseline"' in svg
