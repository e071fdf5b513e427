"""Step 5 states the frozen encoder's details and where its embeddings came from (steps/step5_probe.py,
results.EncoderInfo), on a real workflow run with a named encoder.

References: the clip count of the splits; the cache filled beforehand with encoder_embeddings on
every clip (so the run must report every clip as a hit, and the entries' bytes on disk); CREPE's
numbers (16 kHz, a 1024-sample = 64 ms window, 100 frames/s at the 10 ms hop).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from audioenc.core.cache import CacheStats
from audioenc.timing.adapt import AdaptationRule
from audioenc.timing.encoders import embedding_cache, encoder_embeddings, load_encoder
from audioenc.timing.workflow import WorkflowSettings, run_workflow
from audioenc.timing.workflow.results import EncoderInfo
from audioenc.timing.workflow.steps import step5_probe


@pytest.mark.slow  # a whole workflow run: about 10 s on a quiet 2-core machine
def test_a_rerun_reports_every_embedding_from_the_cache_and_the_encoders_details(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "arrays"
    handle = load_encoder("crepe-tiny")
    cache = embedding_cache(handle)
    clips = 0
    for split in ("train", "validation", "test"):
        files = sorted(path.name for path in (tiny_corpus / "audio" / split).glob("*.wav"))
        encoder_embeddings(handle, tiny_corpus / "audio" / split, files, cache=cache)
        clips += len(files)
    assert cache.stats.misses == clips
    # Margins of 1: adaptation never triggers (not under test here).
    settings = replace(WorkflowSettings.fast(), rule=AdaptationRule(clip_margin=1.0, boundary_margin=1.0))
    out = tmp_path / "run"
    lines: list[str] = []
    report = run_workflow(tiny_corpus, encoder="crepe-tiny", out=out, settings=settings, log=lines.append)
    encoder = json.loads((out / "05_probe" / "comparison.json").read_text())["encoder"]
    assert encoder == report["probe"]["encoder"]
    assert encoder["embedding_cache"] == {
        "enabled": True,
        "clips": clips,
        "from_cache": clips,
        "bytes": sum(path.stat().st_size for path in (root / "embeddings").rglob("*.npz")),
        "location": str(root),
    }
    assert encoder["embedding_seconds"] > 0
    details = encoder["pretrained"]
    assert (details["family"], details["sample_rate"], details["receptive_field_ms"]) == ("crepe", 16000, 64.0)
    assert details["frame_rate"] == encoder["frame_rate"] == 100.0 and details["window_seconds"] is None
    markdown = (out / "report.md").read_text()
    summary = f"{clips} clips, {clips} from the cache ("
    assert f"Embeddings: {summary}" in markdown and f"at {root})" in markdown
    assert "crepe, layer block 5 (HEAR 2021's CREPE embedding), 16000 Hz, receptive field 64.0 ms" in markdown
    assert any(line.startswith(f"  embeddings: {summary}") for line in lines)


def test_the_details_clause_states_windows_and_the_cache_line_when_off():
    info = EncoderInfo(
        {
            "kind": "hf_snapshot",
            "source": "/models/whisper",
            "sample_rate": 16000,
            "embedding_size": 32,
            "channel_policy": "mono",
            "pretrained": {
                "family": "whisper",
                "layer": "2",
                "sample_rate": 16000,
                "receptive_field_ms": None,
                "window_seconds": 30.0,
                "overlap_seconds": 6.0,
            },
        },
        False,
        50.0,
        1.25,
        False,
        embedding_cache=CacheStats(location="/c/arrays", enabled=False, misses=7),
    )
    content = info.to_json()
    assert content["embedding_cache"] == {
        "enabled": False,
        "clips": 7,
        "from_cache": 0,
        "bytes": 0,
        "location": "/c/arrays",
    }
    assert step5_probe._details_text(content) == (
        "; whisper, layer 2, 16000 Hz, windows of 30.00 s overlapping by 6.00 s"
    )
    assert step5_probe._embedding_text(info) == (
        "7 clips, cache off (every array computed); 1.2 s to embed (cache lookups included)"
    )
    assert step5_probe._details_text({"kind": "codec"}) == ""
