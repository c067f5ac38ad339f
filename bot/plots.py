"""Charts for job threads: a fine-tune's loss curve (Slack's thread, Teams' results card) and a
comparison's primary metric per model with its bootstrap interval."""

from __future__ import annotations

import io


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display); workers call it once before forking."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def loss_curve_png(history: list[tuple[int, float]], title: str) -> bytes:
    plt = pyplot()

    steps, losses = zip(*history, strict=True)
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    try:
        axes.plot(steps, losses, marker="o", markersize=2.5, linewidth=1.5, color="#4a154b")
        axes.set_xlabel("step")
        axes.set_ylabel("training loss")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
        return _png(figure)
    finally:
        plt.close(figure)


def comparison_png(bars: list[tuple[str, float, tuple[float, float] | None]], metric: str, title: str) -> bytes:
    """Horizontal bars, best on top, each with its 95% interval as an error bar: whether two
    models' intervals overlap is what says if their difference is real."""
    plt = pyplot()
    labels = [label if len(label) <= 40 else label[:39] + "…" for label, _, _ in bars]
    values = [value for _, value, _ in bars]
    low = [value - (ci[0] if ci else value) for _, value, ci in bars]
    high = [(ci[1] if ci else value) - value for _, value, ci in bars]
    figure, axes = plt.subplots(figsize=(7, 1.2 + 0.45 * len(bars)), dpi=100)
    try:
        positions = list(range(len(bars)))[::-1]
        axes.barh(positions, values, xerr=[low, high], capsize=4, color="#4a154b", ecolor="#e01e5a", height=0.6)
        axes.set_yticks(positions, labels, fontsize=8)
        for position, value in zip(positions, values, strict=True):
            axes.text(value, position + 0.32, f" {value:.3f}", va="center", fontsize=7)
        axes.set_xlabel(f"{metric} (error bars: bootstrap 95% interval over the test rows)", fontsize=8)
        axes.set_title(title, fontsize=10)
        axes.grid(axis="x", alpha=0.3)
        return _png(figure)
    finally:
        plt.close(figure)
