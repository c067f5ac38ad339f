"""The loss curve of a fine-tune, as a PNG for the job's thread (Slack) or results card (Teams)."""

from __future__ import annotations

import io


def loss_curve_png(history: list[tuple[int, float]], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps, losses = zip(*history, strict=True)
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    try:
        axes.plot(steps, losses, marker="o", markersize=2.5, linewidth=1.5, color="#4a154b")
        axes.set_xlabel("step")
        axes.set_ylabel("training loss")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
