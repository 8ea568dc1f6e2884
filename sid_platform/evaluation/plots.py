"""Small plots as inline PNG: markdown images for the Dagster UI's metadata panel, base64 for the run report."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def png_base64(fig: plt.Figure, dpi: int = 80) -> str:
    """The figure as a base64 PNG (closed afterwards): what a ``data:image/png;base64,`` URI holds."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _as_markdown(fig: plt.Figure, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{png_base64(fig)})"


def twin_line_plot(
    x: Sequence[float], left: Sequence[float], right: Sequence[float], xlabel: str, left_label: str, right_label: str
) -> str:
    """Two series sharing an x axis, each with its own y axis; returns a markdown image."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(x, left, color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(left_label, color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, right, color="tab:orange")
    ax2.set_ylabel(right_label, color="tab:orange")
    return _as_markdown(fig, f"{left_label} and {right_label}")


def _code_usage_figure(codes: np.ndarray, codebook_size: int, figsize: tuple[float, float] = (6, 3)) -> plt.Figure:
    fig, ax = plt.subplots(figsize=figsize)
    for level in range(codes.shape[1]):
        counts = np.sort(np.bincount(codes[:, level], minlength=codebook_size))[::-1]
        ax.plot(np.arange(codebook_size), counts, label=f"level {level + 1}")
    ax.set_xlabel("code rank")
    ax.set_ylabel("items")
    ax.set_yscale("symlog")
    ax.legend()
    return fig


def code_usage_plot(codes: np.ndarray, codebook_size: int) -> str:
    """Items per code, sorted, one line per level: a flat line is a well-used codebook, a cliff is collapse."""
    return _as_markdown(_code_usage_figure(codes, codebook_size), "code usage per level")


def code_usage_png(codes: np.ndarray, codebook_size: int) -> str:
    """``code_usage_plot`` as a base64 PNG, sized for the run report."""
    fig = _code_usage_figure(codes, codebook_size, figsize=(6.4, 2.8))
    fig.axes[0].set_title("items per code, codes sorted by use", fontsize=10)
    return png_base64(fig, dpi=100)


@dataclass(frozen=True)
class Line:
    """One series of a curve plot; ``right`` puts it on the second y axis (figures of another scale)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    right: bool = False


def curves_png(
    title: str, lines: Sequence[Line], xlabel: str, left_label: str, right_label: str, best: float | None = None
) -> str:
    """Training curves (losses left, validation figures right, dashed) with the kept epoch marked; base64 PNG.

    The legend goes below the axes, where no curve runs under it.
    """
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    right = ax.twinx() if any(line.right for line in lines) else None
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3)
    for line in lines:
        axis = right if line.right and right is not None else ax
        axis.plot(line.x, line.y, label=line.label, color=next(colors), linestyle="--" if line.right else "-")
    if best is not None:
        ax.axvline(best, color="grey", linewidth=1, linestyle=":", label="kept epoch")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(left_label, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        right.set_ylabel(right_label, fontsize=9)
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, frameon=False)
    return png_base64(fig, dpi=100)


def channels_png(points: Sequence[tuple[str, str, float, float]]) -> str:
    """Coverage against candidates per user: one point per (channel, users), a color per channel and a marker
    per user group, named in the legend (labels next to the points would overlap); base64 PNG."""
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    colors = dict(
        zip(dict.fromkeys(p[0] for p in points), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
    )
    markers = dict(zip(dict.fromkeys(p[1] for p in points), "os^D", strict=False))
    for channel, users, candidates, coverage in points:
        ax.scatter(
            [candidates], [coverage], s=45, color=colors[channel], marker=markers[users], label=f"{channel}, {users}"
        )
    ax.set_xlabel("candidates per user")
    ax.set_ylabel("coverage")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(0, max((p[2] for p in points), default=1) * 1.1)
    ax.grid(alpha=0.3)
    ax.set_title("coverage (target among the candidates) vs candidates per user", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, frameon=False)
    return png_base64(fig, dpi=100)
