"""The analytics charts as plain shapes for SVG templates, laid out on the server: daily volume
bars with the day's average score as a line, the band split as one stacked bar, and top tags as
horizontal bars. No chart library and nothing run in the browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 40, 10, 30


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str
    css: str = ""


@dataclass(frozen=True)
class DailyChart:
    bars: list[Bar]
    # The day's average score in percent, as "x,y" points of one polyline per run of graded days.
    lines: list[str]
    dots: list[tuple[float, float, str]]
    ticks: list[tuple[float, str]]
    max_calls: int
    width: int = WIDTH
    height: int = HEIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT


def window_days(since: str, days: int, timezone: str) -> list[date]:
    """Every day of the window in the project's time zone, so quiet days show as empty."""
    tz = ZoneInfo(timezone)
    start = datetime.fromisoformat(since).astimezone(tz)
    end = (start + timedelta(days=days)).date()
    first = start.date()
    return [first + timedelta(days=i) for i in range((end - first).days + 1)]


def daily_chart(analytics: Mapping[str, Any]) -> DailyChart:
    by_day = {date.fromisoformat(d["day"]): d for d in analytics["daily"]}
    days = window_days(analytics["since"], analytics["days"], analytics["timezone"])
    days = sorted(set(days) | set(by_day))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / len(days)
    max_calls = max((d["calls"] for d in by_day.values()), default=0) or 1
    bars: list[Bar] = []
    dots: list[tuple[float, float, str]] = []
    lines: list[str] = []
    run: list[str] = []
    label_every = max(1, len(days) // 8)
    ticks: list[tuple[float, str]] = []
    for i, day in enumerate(days):
        figures = by_day.get(day, {"calls": 0, "averagePercent": None})
        calls = int(figures["calls"])
        x = LEFT + i * slot
        h = plot_h * calls / max_calls
        average = figures["averagePercent"]
        score = "no graded calls" if average is None else f"average score {average:.1f}%"
        bars.append(
            Bar(
                x=round(x + slot * 0.15, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(slot * 0.7, 2),
                height=round(h, 2),
                label=day.isoformat(),
                title=f"{day.isoformat()}: {calls} calls, {score}",
            )
        )
        if i % label_every == 0:
            ticks.append((round(x + slot / 2, 2), day.strftime("%m-%d")))
        if average is None:
            if len(run) > 1:
                lines.append(" ".join(run))
            run = []
            continue
        point = (round(x + slot / 2, 2), round(TOP + plot_h * (1 - float(average) / 100), 2))
        dots.append((*point, f"{day.isoformat()}: average score {average:.1f}%"))
        run.append(f"{point[0]},{point[1]}")
    if len(run) > 1:
        lines.append(" ".join(run))
    return DailyChart(bars=bars, lines=lines, dots=dots, ticks=ticks, max_calls=max_calls)


def band_split(bands: Mapping[str, int], ungraded: int, width: int = WIDTH) -> list[Bar]:
    """One bar cut into Good / Fair / Poor (and ungraded) by their share of the calls."""
    parts = [(b, int(bands[b])) for b in ("good", "fair", "poor")] + [("ungraded", ungraded)]
    total = sum(n for _, n in parts)
    out: list[Bar] = []
    x = 0.0
    for name, n in parts:
        if not n:
            continue
        w = width * n / total
        share = 100 * n / total
        out.append(
            Bar(
                x=round(x, 2),
                y=0,
                width=round(w, 2),
                height=28,
                label=f"{name.capitalize()} {n}",
                title=f"{name.capitalize()}: {n} calls ({share:.0f}%)",
                css=f"band-{name}",
            )
        )
        x += w
    return out


def tag_bars(top_tags: Sequence[Mapping[str, Any]], width: int = 480) -> list[Bar]:
    most = max((int(t["calls"]) for t in top_tags), default=0) or 1
    return [
        Bar(
            x=0,
            y=i * 26,
            width=round(width * int(t["calls"]) / most, 2),
            height=20,
            label=f"{t['tag']} · {t['calls']}",
            title=f"{t['tag']}: {t['calls']} calls",
        )
        for i, t in enumerate(top_tags)
    ]
