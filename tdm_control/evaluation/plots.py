"""Matplotlib for scripts and CI: the non-interactive Agg backend, set in this one place."""

from __future__ import annotations

import os


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (no display needed); imported only when a plot is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str, dpi: int = 120) -> None:
    """Writes `fig` to `path` (PNG), creating the folder, and frees it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
