"""The matplotlib figure every report plot draws on (no pyplot state: safe in servers and threads)."""

from __future__ import annotations


def figure(ncols: int = 1, width: float = 6.0, height: float = 3.6):
    """A figure of ``ncols`` side-by-side axes, ``width`` inches each; returns (figure, axes)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=100)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes
