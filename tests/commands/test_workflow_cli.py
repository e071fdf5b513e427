"""`audioenc workflow` command line: ``--no-cache`` reaches the run (the workflow itself is replaced
by a recorder here; what the cache does when off is tested in tests/timing/workflow/test_data.py)."""

from __future__ import annotations

import os

import audioenc.timing.workflow as workflow_package
from audioenc.cli import main
from audioenc.core.cache import ArrayCache, caching_enabled


def test_no_cache_turns_every_default_cache_off_for_the_run_only(tmp_path, monkeypatch):
    seen: list[tuple[bool, bool]] = []

    def record(data, encoder, out, seed, **options):
        seen.append((caching_enabled(), ArrayCache("logmel", {}, root=tmp_path).enabled))
        return {}

    monkeypatch.setattr(workflow_package, "run_workflow", record)
    monkeypatch.delenv("AUDIOENC_NO_CACHE", raising=False)
    assert main(["workflow", "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert "AUDIOENC_NO_CACHE" not in os.environ  # restored when the run ends
    assert main(["workflow", "--out", str(tmp_path / "b")]) == 0
    assert seen == [(False, False), (True, True)]
