"""Charts for the reports, drawn by matplotlib and inlined as SVG (no file, no network).

Only Figure is used (no pyplot): `savefig(format="svg")` picks the SVG canvas itself, so
rendering keeps no global state and never needs a display.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MarkKind = str  # "action" | "rollback" | "abort" | "failure" | "alert" | "resolved"
_MARK_STYLE: dict[str, dict[str, object]] = {
    "action": {"color": "#1f4e9c", "linestyle": "-", "linewidth": 1.2},
    "rollback": {"color": "#7b3fa0", "linestyle": "--", "linewidth": 1.2},
    "abort": {"color": "#000000", "linestyle": ":", "linewidth": 1.6},
    "failure": {"color": "#c62828", "linestyle": ":", "linewidth": 1.0},
    "alert": {"color": "#e65100", "linestyle": "-.", "linewidth": 1.0},
    "resolved": {"color": "#2e7d32", "linestyle": "-.", "linewidth": 1.0},
}
_salt = itertools.count(1)


@dataclass
class Second:
    """Requests that started in one second (`t` seconds after the chart's origin)."""

    t: float
    by_status: dict[str, int] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None


@dataclass
class TimeMark:
    """An action, a rollback or an abort at `t` seconds after the origin; `n` labels it."""

    t: float
    n: int
    label: str
    kind: MarkKind = "action"


def status_color(status: str) -> str:
    """Green for 2xx, amber for 4xx, red for 5xx, grey for no answer; shades per status."""
    palettes = {
        "2": ["#2e7d32", "#66bb6a", "#1b5e20", "#a5d6a7"],
        "3": ["#00838f", "#4dd0e1"],
        "4": ["#ef6c00", "#ffb74d", "#e65100", "#ffcc80", "#bf360c"],
        "5": ["#c62828", "#e57373", "#8e0000", "#ff8a80", "#6d1b1b"],
    }
    if not status[:1].isdigit() or status.startswith("0") or status[:1] not in palettes:
        return "#9e9e9e"
    shades = palettes[status[:1]]
    return shades[int(status[1:] or 0) % len(shades)]


_CODE_COLORS = ["#6a1b9a", "#ad1457", "#4527a0", "#00695c", "#5d4037", "#283593", "#9e9d24"]


def _svg(fig: Figure) -> str:
    from matplotlib import rc_context

    buf = io.StringIO()
    salt = f"omnidrill{next(_salt)}"
    # svg.fonttype none keeps text as text; a salt per chart keeps element ids unique when
    # several charts share one page
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return text.replace("<svg ", '<svg role="img" class="chart" ', 1)


def timeline_svg(
    seconds: Sequence[Second],
    marks: Sequence[TimeMark],
    *,
    duration_s: float,
    title: str,
) -> str:
    """Outcomes per second stacked by status, error codes, and latency p50/p95, marks on all."""
    from matplotlib.figure import Figure  # imported when drawing: it costs a CLI start 0.5 s

    fig = Figure(figsize=(9.0, 5.2), dpi=96)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2]})
    ax_status, ax_codes, ax_lat = axes
    ts = [s.t for s in seconds]
    xmax = max([duration_s, *[t + 1 for t in ts], *[m.t for m in marks], 1.0])

    statuses = sorted({k for s in seconds for k in s.by_status})
    bottom = [0.0] * len(seconds)
    for st in statuses:
        vals = [float(s.by_status.get(st, 0)) for s in seconds]
        label = "no answer" if st in {"0", "error", "None"} else st
        ax_status.bar(
            ts, vals, width=0.9, bottom=bottom, align="edge", color=status_color(st), label=label
        )
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax_status.set_ylabel("requests/s")
    ax_status.set_title(title, loc="left", fontsize=10)
    if statuses:
        ax_status.legend(
            title="status",
            fontsize=7,
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )

    codes = sorted({k for s in seconds for k in s.by_code})
    bottom = [0.0] * len(seconds)
    for i, code in enumerate(codes):
        vals = [float(s.by_code.get(code, 0)) for s in seconds]
        ax_codes.bar(
            ts,
            vals,
            width=0.9,
            bottom=bottom,
            align="edge",
            color=_CODE_COLORS[i % len(_CODE_COLORS)],
            label=code,
        )
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax_codes.set_ylabel("error codes/s")
    if codes:
        ax_codes.legend(
            title="code", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0)
        )
    else:
        ax_codes.text(
            0.5,
            0.5,
            "no error code in any answer",
            transform=ax_codes.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            color="#616161",
        )

    lat_x = [s.t + 0.5 for s in seconds]
    for attr, style, label in (("p50_ms", "-", "p50"), ("p95_ms", "--", "p95")):
        pts = [
            (x, getattr(s, attr))
            for x, s in zip(lat_x, seconds, strict=True)
            if getattr(s, attr) is not None
        ]
        if pts:
            ax_lat.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                marker=".",
                markersize=3,
                linewidth=1.2,
                color="#37474f",
                label=label,
            )
    ax_lat.set_ylabel("latency ms")
    ax_lat.set_xlabel("seconds since the drill started")
    ax_lat.set_ylim(bottom=0)
    if any(s.p50_ms is not None for s in seconds):
        ax_lat.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    for ax in axes:
        ax.set_xlim(0, xmax)
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        for m in marks:
            ax.axvline(m.t, zorder=3, **_MARK_STYLE.get(m.kind, _MARK_STYLE["action"]))  # type: ignore[arg-type]
    top = ax_status.get_ylim()[1]
    for m in marks:
        ax_status.text(
            m.t,
            top,
            f" {m.n}",
            fontsize=7,
            va="top",
            ha="left",
            color=str(_MARK_STYLE.get(m.kind, _MARK_STYLE["action"])["color"]),
        )
    fig.align_ylabels(axes)
    return _svg(fig)


@dataclass
class HistoryPoint:
    """One run of the history: its order, label, pass rate and time to effect per drill."""

    x: int
    label: str
    pass_rate: float | None
    effect_s: dict[str, float] = field(default_factory=dict)


def history_svg(points: Sequence[HistoryPoint]) -> str:
    """Pass rate per run, and time to effect per drill, over the runs of one target."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.6), dpi=96)
    ax_rate, ax_effect = fig.subplots(2, 1, sharex=True)
    xs = [p.x for p in points]
    rates = [p.pass_rate * 100 if p.pass_rate is not None else float("nan") for p in points]
    ax_rate.plot(xs, rates, marker="o", color="#2e7d32", linewidth=1.5)
    for x, r in zip(xs, rates, strict=True):
        if r == r:  # not NaN
            ax_rate.annotate(
                f"{r:.0f}%",
                (x, r),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=7,
            )
    ax_rate.set_ylim(-5, 110)
    ax_rate.set_ylabel("drills passed %")
    drills = sorted({d for p in points for d in p.effect_s})
    for d in drills:
        pts = [(p.x, p.effect_s[d]) for p in points if d in p.effect_s]
        ax_effect.plot(
            [a for a, _ in pts],
            [b for _, b in pts],
            marker="o",
            markersize=4,
            linewidth=1.2,
            label=d,
        )
    ax_effect.set_ylabel("time to effect s")
    ax_effect.set_ylim(bottom=0)
    if drills:
        ax_effect.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax_effect.text(
            0.5,
            0.5,
            "no drill measured a time to effect",
            transform=ax_effect.transAxes,
            ha="center",
            va="center",
            fontsize=8,
        )
    ax_effect.set_xticks(xs, [p.label for p in points], rotation=30, ha="right", fontsize=7)
    for ax in (ax_rate, ax_effect):
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    return _svg(fig)
