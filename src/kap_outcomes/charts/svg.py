"""One PHQ-9 or GAD-7 chart as SVG text: values in, text out (no database, no clock).

The same function draws the chart embedded in the dashboard's patient page and the standalone
``GET /v1/patients/{id}/charts/{instrument}.svg`` that EHRs show beside their notes. What it
draws, back to front: the severity bands, the baseline and the MCID threshold below it, the
dosing and booster sessions as vertical markers, the trend line over the trend window, the
scores joined by a line, one point per valid score.

The output is self-contained: no script, no style sheet, no external font or link (generic
``sans-serif``), presentation attributes only (a strict Content-Security-Policy allows it).
Every element a reader or a test needs carries its numbers as ``data-`` attributes
(``data-total``, ``data-at``, ``data-slope-per-week``), and the chart has a ``<title>`` and a
``<desc>`` that say in words what it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from xml.sax.saxutils import escape, quoteattr

FONT = "sans-serif"
INK = "#1a1a1a"
POINT = "#1d4f91"
DOSING = "#5b2a86"
BOOSTER = "#9c4a00"
TREND = "#0b6e4f"
BASELINE = "#444444"
MCID = "#7a1f1f"
BAND_FILLS = ("#e6f4ea", "#f3f7d9", "#fdf3d6", "#fde4cf", "#f9d6d5")
"""Light fills, lowest band first; dark text on any of them has a contrast above 12:1."""


@dataclass(frozen=True, slots=True)
class Band:
    low: int
    high: int
    label: str


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    total: int
    severity: str | None = None
    assessment_id: str = ""


@dataclass(frozen=True, slots=True)
class Marker:
    at: datetime
    kind: str
    """``dosing`` or ``booster``."""


@dataclass(frozen=True, slots=True)
class TrendSegment:
    """The trend line over its window: where it starts and ends, in score points."""

    start: datetime
    end: datetime
    start_value: float
    end_value: float
    slope_per_week: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartSpec:
    instrument: str
    """``phq9`` or ``gad7``."""
    name: str
    """What people call it: ``PHQ-9``."""
    max_score: int
    bands: Sequence[Band]
    points: Sequence[Point]
    markers: Sequence[Marker]
    baseline: int | None
    mcid: int
    trend: TrendSegment | None
    trend_label: str
    zone: tzinfo = UTC
    """Dates are drawn as the clinic's calendar dates."""


@dataclass(frozen=True, slots=True)
class _Frame:
    left: float
    top: float
    right: float
    bottom: float
    start: datetime
    end: datetime
    max_score: int

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        share = (at - self.start).total_seconds() / span
        return round(self.left + share * (self.right - self.left), 2)

    def y(self, value: float) -> float:
        share = value / self.max_score
        return round(self.bottom - share * (self.bottom - self.top), 2)


def _time_range(spec: ChartSpec) -> tuple[datetime, datetime]:
    times = [p.at for p in spec.points] + [m.at for m in spec.markers]
    if not times:
        now = datetime(2000, 1, 1, tzinfo=UTC)
        return now, now + timedelta(days=28)
    start, end = min(times), max(times)
    pad = max((end - start) / 20, timedelta(days=1))
    if end - start < timedelta(days=7):
        pad = max(pad, (timedelta(days=7) - (end - start)) / 2)
    return start - pad, end + pad


def _day(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).date().isoformat()


def describe(spec: ChartSpec) -> str:
    """The chart in words: the text alternative of ``<desc>`` (the page adds a table)."""
    valid = len(spec.points)
    if not valid:
        return f"No valid {spec.name} score has been recorded yet."
    first, last = spec.points[0], spec.points[-1]
    parts = [
        f"{valid} valid {spec.name} score{'s' if valid != 1 else ''} from "
        f"{_day(first.at, spec.zone)} to {_day(last.at, spec.zone)}; "
        f"latest {last.total} of {spec.max_score}"
        + (f" ({last.severity.replace('_', ' ')})" if last.severity else "")
        + "."
    ]
    if spec.baseline is not None:
        parts.append(
            f"Baseline {spec.baseline}; an improvement of at least {spec.mcid} points "
            f"(the MCID) means a score of {max(spec.baseline - spec.mcid, 0)} or less."
        )
    doses = [m for m in spec.markers if m.kind == "dosing"]
    boosters = [m for m in spec.markers if m.kind == "booster"]
    parts.append(
        f"{len(doses)} dosing session{'s' if len(doses) != 1 else ''} and "
        f"{len(boosters)} booster session{'s' if len(boosters) != 1 else ''} marked."
    )
    if spec.trend is not None:
        parts.append(
            f"Trend {spec.trend_label.replace('_', ' ')}: "
            f"{spec.trend.slope_per_week:+.1f} points per week."
        )
    else:
        parts.append("Trend: not enough scores yet.")
    return " ".join(parts)


def render(
    spec: ChartSpec, *, width: int = 720, height: int = 320, id_prefix: str = "chart"
) -> str:
    """The chart as an ``<svg>`` element (with its XML namespace, so that it also stands alone)."""
    frame = _Frame(
        left=44.0,
        top=30.0,
        right=float(width) - 165.0,
        bottom=float(height) - 34.0,
        start=_time_range(spec)[0],
        end=_time_range(spec)[1],
        max_score=spec.max_score,
    )
    title_id, desc_id = f"{id_prefix}-title", f"{id_prefix}-desc"
    title = f"{spec.name} over time"
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" class="kap-chart" '
        f'data-instrument="{spec.instrument}" font-family="{FONT}" font-size="12">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(describe(spec))}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    out += _bands(spec, frame)
    out += _axes(spec, frame)
    out += _reference_lines(spec, frame)
    out += _markers(spec, frame)
    out += _trend(spec, frame)
    out += _scores(spec, frame)
    out += _legend(spec, frame)
    out.append("</svg>")
    return "\n".join(out)


def _bands(spec: ChartSpec, f: _Frame) -> list[str]:
    out = ['<g class="severity-bands">']
    for i, band in enumerate(spec.bands):
        top = f.y(band.high + 0.5 if band.high < spec.max_score else spec.max_score)
        bottom = f.y(band.low - 0.5 if band.low > 0 else 0)
        fill = BAND_FILLS[min(i, len(BAND_FILLS) - 1)]
        label = band.label.replace("_", " ")
        out.append(
            f'<rect class="band" data-low="{band.low}" data-high="{band.high}" '
            f'x="{f.left}" y="{top}" width="{round(f.right - f.left, 2)}" '
            f'height="{round(bottom - top, 2)}" fill="{fill}"/>'
        )
        out.append(
            f'<text x="{f.right + 6}" y="{round((top + bottom) / 2 + 4, 2)}" fill="{INK}">'
            f"{escape(label)} {band.low}–{band.high}</text>"
        )
    out.append("</g>")
    return out


def _axes(spec: ChartSpec, f: _Frame) -> list[str]:
    out = [
        f'<g class="axes" fill="{INK}">',
        f'<line x1="{f.left}" y1="{f.bottom}" x2="{f.right}" y2="{f.bottom}" stroke="{INK}"/>',
        f'<line x1="{f.left}" y1="{f.top}" x2="{f.left}" y2="{f.bottom}" stroke="{INK}"/>',
    ]
    step = 5
    for value in range(0, spec.max_score + 1, step):
        y = f.y(value)
        out.append(f'<line x1="{f.left - 4}" y1="{y}" x2="{f.left}" y2="{y}" stroke="{INK}"/>')
        out.append(f'<text x="{f.left - 8}" y="{y + 4}" text-anchor="end">{value}</text>')
    ticks = 5
    for i in range(ticks):
        at = f.start + (f.end - f.start) * (i + 0.5) / ticks
        x = f.x(at)
        out.append(f'<line x1="{x}" y1="{f.bottom}" x2="{x}" y2="{f.bottom + 4}" stroke="{INK}"/>')
        out.append(
            f'<text x="{x}" y="{f.bottom + 18}" text-anchor="middle">{_day(at, spec.zone)}</text>'
        )
    out.append("</g>")
    return out


def _reference_lines(spec: ChartSpec, f: _Frame) -> list[str]:
    if spec.baseline is None:
        return []
    y = f.y(spec.baseline)
    out = [
        f'<line class="baseline" data-value="{spec.baseline}" x1="{f.left}" y1="{y}" '
        f'x2="{f.right}" y2="{y}" stroke="{BASELINE}" stroke-width="1.5" '
        'stroke-dasharray="6 3"/>',
        f'<text x="{f.left + 4}" y="{y - 4}" fill="{INK}">baseline {spec.baseline}</text>',
    ]
    threshold = spec.baseline - spec.mcid
    if threshold >= 0:
        ty = f.y(threshold)
        out += [
            f'<line class="mcid" data-value="{threshold}" data-mcid="{spec.mcid}" '
            f'x1="{f.left}" y1="{ty}" x2="{f.right}" y2="{ty}" stroke="{MCID}" '
            'stroke-width="1.5" stroke-dasharray="2 3"/>',
            f'<text x="{f.left + 4}" y="{ty + 14}" fill="{MCID}">'
            f"MCID: {threshold} (baseline − {spec.mcid})</text>",
        ]
    return out


def _markers(spec: ChartSpec, f: _Frame) -> list[str]:
    out = ['<g class="sessions">']
    for marker in spec.markers:
        x = f.x(marker.at)
        colour = BOOSTER if marker.kind == "booster" else DOSING
        dash = "4 2" if marker.kind == "booster" else "1 0"
        out.append(
            f'<line class="dose-marker" data-kind="{escape(marker.kind)}" '
            f'data-at="{marker.at.isoformat()}" x1="{x}" y1="{f.top}" x2="{x}" y2="{f.bottom}" '
            f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}" '
            'stroke-opacity="0.8"/>'
        )
        shape = (
            f'<polygon points="{x - 5},{f.top - 10} {x + 5},{f.top - 10} {x},{f.top - 2}" '
            if marker.kind == "dosing"
            else f'<rect x="{x - 4}" y="{f.top - 10}" width="8" height="8" '
        )
        out.append(shape + f'fill="{colour}"/>')
    out.append("</g>")
    return out


def _trend(spec: ChartSpec, f: _Frame) -> list[str]:
    segment = spec.trend
    if segment is None:
        return []

    def clamp(value: float) -> float:
        return min(max(value, 0.0), float(spec.max_score))

    return [
        f'<line class="trend-line" data-slope-per-week="{segment.slope_per_week}" '
        f"data-label={quoteattr(segment.label)} "
        f'data-start="{segment.start.isoformat()}" data-end="{segment.end.isoformat()}" '
        f'data-start-value="{round(segment.start_value, 3)}" '
        f'data-end-value="{round(segment.end_value, 3)}" '
        f'x1="{f.x(segment.start)}" y1="{f.y(clamp(segment.start_value))}" '
        f'x2="{f.x(segment.end)}" y2="{f.y(clamp(segment.end_value))}" '
        f'stroke="{TREND}" stroke-width="3" stroke-linecap="round"/>'
    ]


def _scores(spec: ChartSpec, f: _Frame) -> list[str]:
    if not spec.points:
        return [
            f'<text x="{(f.left + f.right) / 2}" y="{(f.top + f.bottom) / 2}" '
            f'text-anchor="middle" fill="{INK}">No valid {escape(spec.name)} score yet</text>'
        ]
    path = " ".join(f"{f.x(p.at)},{f.y(p.total)}" for p in spec.points)
    out = [
        f'<polyline class="score-line" points="{path}" fill="none" stroke="{POINT}" '
        'stroke-width="2"/>',
        '<g class="scores">',
    ]
    for p in spec.points:
        out.append(
            f'<circle class="score-point" data-total="{p.total}" '
            f'data-at="{p.at.isoformat()}" data-assessment-id={quoteattr(p.assessment_id)} '
            f'cx="{f.x(p.at)}" cy="{f.y(p.total)}" r="4.5" fill="{POINT}" stroke="#ffffff" '
            f'stroke-width="1.5"><title>{_day(p.at, spec.zone)}: {p.total}</title></circle>'
        )
    out.append("</g>")
    return out


def _legend(spec: ChartSpec, f: _Frame) -> list[str]:
    y = 14
    items = [
        (POINT, "score"),
        (DOSING, "dosing"),
        (BOOSTER, "booster"),
        (TREND, "trend"),
        (BASELINE, "baseline"),
        (MCID, "MCID"),
    ]
    out = ['<g class="legend">']
    x = f.left
    for colour, label in items:
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{y}" fill="{INK}">{label}</text>')
        x += 20 + 7 * len(label)
    out.append("</g>")
    return out
