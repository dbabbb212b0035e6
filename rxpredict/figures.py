"""Figures drawn on matplotlib's Agg canvas outside pyplot's figure manager: nothing is shown, no figure is kept
open, and the caller's backend is left alone. Every plot of the package is made and saved through here."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Resolution of every saved figure.
DPI = 120


def agg_figure(size: tuple[float, float]) -> Figure:
    """A new figure of ``size`` inches with a constrained layout, on an Agg canvas of its own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return FigureCanvasAgg(Figure(figsize=size, layout="constrained")).figure


def png_bytes(figure: Figure) -> bytes:
    """``figure`` as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
