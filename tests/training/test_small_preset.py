"""The small CPU preset really trains: a real run on the embedded corpus (slow; runs in CI)."""

from __future__ import annotations

import json

import pytest

from audioenc.config import build_config
from audioenc.training.run import train


@pytest.mark.slow
def test_small_preset_halves_validation_mel_distance(tmp_path):
    config = build_config("1ch", "small", ["train.logger=none"])
    summary = train(config, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    initial = rows[0]
    assert initial["epoch"] == 0
    best = min(row["mel_distance"] for row in rows[1:])
    # Measured on the 2-core machine: 0.272 -> see the closing note; the bound leaves a margin.
    assert best <= initial["mel_distance"] / 2
    assert summary["best_mel_distance"] == pytest.approx(best)
    assert summary["nonfinite_steps"] == 0
