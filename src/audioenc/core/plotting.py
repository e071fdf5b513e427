"""Matplotlib for files, never a window: every figure the package draws goes through :func:`pyplot`."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend (works without a display).

    Imported on the first figure, not with the package: matplotlib costs about a second to import and
    most commands draw nothing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
