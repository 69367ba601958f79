"""Charts for the report page, drawn by matplotlib as inline SVG (no fonts or scripts fetched at view time)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # no display: the charts are written, never shown

from matplotlib import pyplot  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

matplotlib.rcParams["svg.fonttype"] = "path"  # text as outlines: the page needs no font to show it
matplotlib.rcParams["svg.hashsalt"] = "casefeedback"  # the same data draws the same SVG
THIS, BEFORE, TARGET = "#1f5f8b", "#a9c4d8", "#c0392b"


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    pyplot.close(figure)
    text = out.getvalue()
    return re.sub(r"^.*?(<svg)", r"\1", text, count=1, flags=re.S)  # drop the XML prolog and doctype


def bars(title: str, series: Mapping[str, Mapping[str, float]], percent: bool = False,
         target: float | None = None, axis: str = "number") -> str:
    """Grouped horizontal bars: one group per category, one bar per series (this period, the previous); the
    axis is in percent for shares, else in whole numbers (`axis` names what it counts)."""
    categories = list(dict.fromkeys(k for values in series.values() for k in values))
    height = 0.8 / max(len(series), 1)
    figure, axes = pyplot.subplots(figsize=(7.0, 0.5 + 0.45 * max(len(categories), 1) * max(len(series), 1)))
    for i, (name, values) in enumerate(series.items()):
        ys = [c + i * height for c in range(len(categories))]
        widths = [(values.get(k) or 0) * (100 if percent else 1) for k in categories]
        axes.barh(ys, widths, height=height, label=name, color=(THIS, BEFORE, "#7f8c8d")[i % 3])
    if target is not None:
        axes.axvline(target * 100, color=TARGET, linestyle="--", label=f"target {target * 100:.0f}%")
    axes.set_yticks([c + height * (len(series) - 1) / 2 for c in range(len(categories))], labels=categories)
    axes.invert_yaxis()
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_xlabel("%" if percent else axis)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 2.5 complaints, nor 12.5% steps
    if percent:
        axes.set_xlim(0, 100)  # a share reads against the whole
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def pairs(*named: tuple[str, Mapping[str, float] | None]) -> dict[str, Mapping[str, float]]:
    """The series that have data, by name (a previous period with no data is left out)."""
    return {name: values for name, values in named if values is not None}
