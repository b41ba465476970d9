"""Chart geometry for the administrators' pages, drawn by the templates as inline SVG: no script, no
external service, printable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WIDTH = 720
HEIGHT = 180
LEFT = 48  # room for the value axis labels
BOTTOM = 22  # room for the time axis labels


def bar_chart(points: Sequence[tuple[str, int]], width: int = WIDTH, height: int = 160) -> dict[str, Any]:
    """Bars for labelled counts (e.g. consultations per day)."""
    top = max((v for _, v in points), default=0) or 1
    n = max(len(points), 1)
    slot = (width - 40) / n
    bars = [{"x": round(40 + i * slot + slot * 0.1, 1), "w": round(max(slot * 0.8, 1), 1),
             "h": round((height - 30) * v / top, 1), "y": round(height - 20 - (height - 30) * v / top, 1),
             "label": label, "value": v, "show_label": n <= 14 or i % max(1, n // 10) == 0}
            for i, (label, v) in enumerate(points)]
    return {"width": width, "height": height, "bars": bars, "top": top}


def _nice_top(value: float) -> float:
    """A round upper bound for the value axis (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(value)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, unit: str,
               width: int = WIDTH, height: int = HEIGHT) -> dict[str, Any]:
    """Polylines for time series: {name: [(seconds since the start, value), ...]}."""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    span = max(max(xs, default=0) - min(xs, default=0), 1.0)
    x0 = min(xs, default=0.0)
    top = _nice_top(max(ys, default=0.0))
    plot_w, plot_h = width - LEFT - 8, height - BOTTOM - 8

    def point(x: float, y: float) -> str:
        return f"{LEFT + plot_w * (x - x0) / span:.1f},{8 + plot_h * (1 - min(y, top) / top):.1f}"

    lines = [{"name": name, "points": " ".join(point(x, y) for x, y in points), "n": len(points),
              "last": points[-1][1] if points else None}
             for name, points in series.items() if points]
    return {"width": width, "height": height, "left": LEFT, "bottom": height - BOTTOM, "top": top, "unit": unit,
            "span_s": round(span), "lines": lines, "mid": round(top / 2, 1)}
