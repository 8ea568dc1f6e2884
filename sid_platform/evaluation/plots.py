"""Small plots rendered as inline PNG markdown, so they show in the Dagster UI's metadata panel."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _as_markdown(fig: plt.Figure, alt: str) -> str:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


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


def code_usage_plot(codes: np.ndarray, codebook_size: int) -> str:
    """Items per code, sorted, one line per level: a flat line is a well-used codebook, a cliff is collapse."""
    fig, ax = plt.subplots(figsize=(6, 3))
    for level in range(codes.shape[1]):
        counts = np.sort(np.bincount(codes[:, level], minlength=codebook_size))[::-1]
        ax.plot(np.arange(codebook_size), counts, label=f"level {level + 1}")
    ax.set_xlabel("code rank")
    ax.set_ylabel("items")
    ax.set_yscale("symlog")
    ax.legend()
    return _as_markdown(fig, "code usage per level")
