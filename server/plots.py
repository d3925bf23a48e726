"""PNG charts of query tables for people (`mlgate insights ... --plot FILE`). matplotlib with the
Agg backend: no display, same bytes of layout on every machine; imported only when a plot is asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_BARS = 30


def bar_chart(rows: Sequence[Mapping[str, Any]], label: str, value: str, title: str, path: Path) -> Path:
    """A horizontal bar per row (at most MAX_BARS, in the rows' order), written to `path` as PNG.
    Raises ValueError when no row has a numeric `value`."""
    import matplotlib  # noqa: PLC0415 - slow import, only for plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = [r for r in rows if isinstance(r.get(value), int | float)][:MAX_BARS]
    if not shown:
        raise ValueError(f"nothing to plot: no row has a numeric {value!r}")
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.35 * len(shown)))
    try:
        labels = [str(r.get(label))[:40] for r in shown][::-1]
        axes.barh(labels, [float(r[value]) for r in shown][::-1], color="#3b6ea5")
        axes.set_xlabel(value)
        axes.set_title(title)
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path
