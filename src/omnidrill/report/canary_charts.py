"""A canary metric drawn: baseline and canary side by side, as distributions, not two numbers.

Latencies: a box per side (whiskers p1-p99, the box p25-p75, the line the median, a diamond
at the judged percentile) and both quantile curves. A series from Datadog: a box of its
values per side and both series over time. An error rate: a bar per side with its counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnidrill.report.charts import _svg
from omnidrill.report.model import CanaryMetricView

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = {"baseline": "#546e7a", "canary": "#ef6c00"}
SIDES = ("baseline", "canary")
PERCENTILE_OF = {"p50": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99, "p99.9": 99.9}


def canary_metric_svg(m: CanaryMetricView) -> str | None:
    """The metric's chart, or None when a side has nothing to draw."""
    dist = m.distributions
    if not all(isinstance(dist.get(s), dict) for s in SIDES):
        return None
    from matplotlib.figure import Figure  # imported when drawing: it costs a CLI start 0.5 s

    fig = Figure(figsize=(8.6, 2.5), dpi=96)
    title = f"{m.label}: {m.baseline} → {m.canary} ({m.change})"
    if m.measure == "error_rate":
        _error_bars(fig.subplots(1, 1), dist)
    elif all("percentiles" in dist[s] for s in SIDES):
        ax_box, ax_q = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
        _percentile_boxes(ax_box, dist, m.measure)
        _quantile_curves(ax_q, dist, m.measure)
    elif all("series" in dist[s] for s in SIDES):
        _series(*fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]}), dist)
    else:
        return None
    fig.suptitle(title, x=0.01, ha="left", fontsize=9)
    for a in fig.axes:
        for spine in ("top", "right"):
            a.spines[spine].set_visible(False)
        a.tick_params(labelsize=7)
    return _svg(fig)


def _box_stats(pcts: list[Any], side: str) -> dict[str, Any]:
    return {
        "label": side,
        "whislo": pcts[1],
        "q1": pcts[25],
        "med": pcts[50],
        "q3": pcts[75],
        "whishi": pcts[99],
        "fliers": [],
    }


def _percentile_boxes(ax: Axes, dist: dict[str, Any], measure: str | None) -> None:
    stats = [_box_stats(dist[s]["percentiles"], s) for s in SIDES]
    boxes = ax.bxp(stats, orientation="horizontal", showfliers=False, patch_artist=True)
    for patch, side in zip(boxes["boxes"], SIDES, strict=True):
        patch.set_facecolor(COLORS[side])
        patch.set_alpha(0.45)
    pct = PERCENTILE_OF.get(measure or "")
    if pct is not None:
        for y, side in enumerate(SIDES, start=1):
            value = _at(dist[side]["percentiles"], pct)
            ax.plot([value], [y], marker="D", color=COLORS[side], markersize=6)
    ax.set_xlabel(f"latency ms (whiskers p1-p99{', ◆ ' + measure if pct else ''})", fontsize=7)


def _at(pcts: list[Any], pct: float) -> float:
    """The kept percentile nearest below pct (p99.9 falls back to the kept p99... p100)."""
    return float(pcts[min(int(pct), 100)] if pct < 100 else pcts[100])


def _quantile_curves(ax: Axes, dist: dict[str, Any], measure: str | None) -> None:
    for side in SIDES:
        pcts = dist[side]["percentiles"]
        xs = [i for i, v in enumerate(pcts) if v is not None and i < 100]
        ax.plot(xs, [pcts[i] for i in xs], color=COLORS[side], linewidth=1.4, label=side)
    pct = PERCENTILE_OF.get(measure or "")
    if pct is not None:
        ax.axvline(pct, color="#9e9e9e", linestyle=":", linewidth=1)
    ax.set_xlabel("percentile of the requests", fontsize=7)
    ax.set_ylabel("latency ms", fontsize=7)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", color="#eeeeee", linewidth=0.6)


def _series(ax_box: Axes, ax_t: Axes, dist: dict[str, Any]) -> None:
    values = [dist[s]["series"] for s in SIDES]
    boxes = ax_box.boxplot(
        values, orientation="horizontal", tick_labels=list(SIDES), patch_artist=True
    )
    for patch, side in zip(boxes["boxes"], SIDES, strict=True):
        patch.set_facecolor(COLORS[side])
        patch.set_alpha(0.45)
    ax_box.set_xlabel("value per interval", fontsize=7)
    for side, vals in zip(SIDES, values, strict=True):
        ax_t.plot(range(len(vals)), vals, color=COLORS[side], linewidth=1.2, marker=".", label=side)
    ax_t.set_xlabel("interval (in time order)", fontsize=7)
    ax_t.legend(fontsize=7, loc="upper left")
    ax_t.grid(axis="y", color="#eeeeee", linewidth=0.6)


def _error_bars(ax: Axes, dist: dict[str, Any]) -> None:
    rates = []
    for side in SIDES:
        ok, errors = int(dist[side].get("ok", 0)), int(dist[side].get("errors", 0))
        rates.append((side, 100.0 * errors / (ok + errors) if ok + errors else 0.0, errors, ok))
    ys = range(len(rates))
    ax.barh(list(ys), [r[1] for r in rates], color=[COLORS[r[0]] for r in rates], alpha=0.8)
    ax.set_yticks(list(ys), [r[0] for r in rates])
    for y, (_, rate, errors, ok) in zip(ys, rates, strict=True):
        ax.text(rate, y, f" {rate:.2f} % ({errors} of {errors + ok})", va="center", fontsize=7)
    top = max(r[1] for r in rates)
    ax.set_xlim(0, max(top * 1.5, 1.0))
    ax.set_xlabel("failed requests %", fontsize=7)
