"""Figures for the model lab: sample digits, the training curve, the confusion matrix.

Each function returns a matplotlib ``Figure`` and never calls ``plt.show()``, so the same code
serves notebooks (which display the returned figure) and headless scripts (which save it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def digits_figure(
    images: np.ndarray, titles: Sequence[str] | None = None, *, columns: int = 8
) -> Figure:
    """A grid of 28x28 digits with an optional title under each."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(1.3 * columns, 1.5 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(np.asarray(images[i]), cmap="gray_r", vmin=0, vmax=255)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    return fig


def training_curve_figure(history: Sequence[dict[str, float]]) -> Figure:
    """Loss and batch accuracy against training step."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    steps = [h["step"] for h in history]
    ax_loss.plot(steps, [h["loss"] for h in history], color="tab:blue")
    ax_loss.set(xlabel="training step", ylabel="cross-entropy loss", yscale="log", title="Loss")
    ax_acc.plot(steps, [100 * h["accuracy"] for h in history], color="tab:green")
    ax_acc.set(xlabel="training step", ylabel="batch accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    return fig


def confusion_figure(confusion: np.ndarray) -> Figure:
    """The 10x10 confusion matrix (rows: true digit, columns: predicted), counts annotated."""
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    shown = np.log1p(confusion)
    image = ax.imshow(shown, cmap="Blues")
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            light = shown[row, col] > shown.max() / 2
            ax.text(
                col,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if light else "black",
            )
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted digit",
        ylabel="true digit",
        title="Confusion matrix (test set)",
    )
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return fig
