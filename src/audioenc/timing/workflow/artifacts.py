"""The writers and formatters every step and the report share: strict JSON, TSV tables, numbers
and intervals as text, saved modules."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from audioenc.core import atomic
from audioenc.core.bootstrap import BootstrapCI
from audioenc.core.weights import write_weights
from audioenc.timing.evaluation import Evaluation
from audioenc.timing.postprocess import PostProcessing


def clean(value: Any) -> Any:
    """Non-finite floats -> None, recursively (JSON has no inf/nan); NumPy scalars -> Python."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(path: Path, content: Any) -> Path:
    """Strict JSON (non-finite numbers become null; ``missed`` counts and notes explain them)."""
    atomic.write_json(path, clean(content), default=_json_default, allow_nan=False)
    return path


def write_tsv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """A tab-separated table; floats with 4 decimals, None as an empty cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(
                ["" if cell is None else (f"{cell:.4f}" if isinstance(cell, float) else cell) for cell in row]
            )
    return path


def save_module(module: nn.Module, directory: str | Path, description: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` (state dict) and ``config.json`` (``description``) into ``directory``."""
    directory = Path(directory)
    write_weights(directory / "model.safetensors", module.state_dict(), directory / "config.json", dict(description))
    return directory


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``n/a`` for None or a non-finite number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def interval(ci: BootstrapCI | Mapping | None) -> str:
    """``low to high``; an end stored as None (JSON has no infinity) next to a defined one is
    infinite: ``-inf`` below, ``inf`` above (a median that may be infinite, or its difference)."""
    if isinstance(ci, BootstrapCI):
        ci = ci.as_dict()
    if not ci or (ci.get("low") is None and ci.get("high") is None):
        return "n/a"
    low = f"{ci['low']:.3f}" if ci.get("low") is not None else "-inf"
    high = f"{ci['high']:.3f}" if ci.get("high") is not None else "inf"
    return f"{low} to {high}"


def with_ci(evaluation: Evaluation, metric: str) -> str:
    """``metric``'s point value and its 95 % interval, as the note's sentences state them."""
    return f"{number(evaluation.point.get(metric))} [95 % CI {interval(evaluation.interval(metric))}]"


def postprocessing_text(item: PostProcessing) -> str:
    """The median filter and threshold a system's numbers were measured after, in words."""
    window = (
        f"median filter {item.window_frames} frames ({item.window_seconds:g} s)"
        if item.window_frames > 1
        else "no median filter"
    )
    if item.per_class is None:
        return f"{window}, threshold {item.threshold:g}, {item.basis}"
    classes = "; ".join(
        f"{name} {choice.window_frames} frames, threshold {choice.threshold:g}{'' if choice.own else ' (shared)'}"
        for name, choice in item.per_class.items()
    )
    return f"per class ({classes}), {item.basis}; shared pair: {window}, threshold {item.threshold:g}"


__all__ = ["clean", "interval", "number", "postprocessing_text", "save_module", "with_ci", "write_json", "write_tsv"]
