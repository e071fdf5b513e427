"""The workflow with a pretrained snapshot probed as a stack of layers (encoder.layer=all): step 5 learns
and reports the layer weights, step 6 adapts the top transformer layer under the rule (slow: a whole
reduced run).

With the reduced settings nothing learns enough for the gates or the trigger to decide on their own, so
both are made to pass here (``check_learned`` and ``AdaptationRule.should_adapt`` replaced): what is
tested is that step 6 then cuts, checks, trains and evaluates a snapshot's top layers on the frozen
path's grid, and writes what it did.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.timing.adapt import AdaptationRule, AdaptationTrigger
from audioenc.timing.workflow import WorkflowSettings, run_workflow
from audioenc.timing.workflow.gates import SanityCheck
from audioenc.timing.workflow.settings import EncoderSettings
from audioenc.timing.workflow.steps import step5_probe
from tests.timing import hf_tiny


@pytest.mark.slow
def test_layer_weights_reported_and_top_layer_adapted(tmp_path, monkeypatch):
    corpus = synthesize_event_corpus(tmp_path / "corpus", (12, 6, 6), seed=4)
    torch.manual_seed(0)
    snapshot = hf_tiny.wav2vec2(tmp_path / "wav2vec2")
    monkeypatch.setattr(step5_probe, "check_learned", lambda system, *args: SanityCheck(system, True, (), "", 0.1))
    monkeypatch.setattr(
        AdaptationRule,
        "should_adapt",
        lambda self, frozen, scratch: AdaptationTrigger(True, ("clip_map",), {"clip_map": 0.1}, "forced by the test"),
    )
    fast = WorkflowSettings.fast()
    settings = replace(fast, encoder=EncoderSettings(layer="all"), probe=replace(fast.probe, adapt_top_layers=1))
    out = tmp_path / "run"
    report = run_workflow(corpus, encoder=snapshot, out=out, settings=settings, log=lambda line: None)
    probe = json.loads((out / "05_probe/comparison.json").read_text())["probe"]
    assert probe["layers"] == 3 and probe["layer"] == "all (0-2)"
    weights = probe["layer_weights"]
    assert [item["layer"] for item in weights] == [0, 1, 2]
    assert sum(item["weight"] for item in weights) == pytest.approx(1.0)
    assert "learned softmax weights over hidden states 0-2" in report["probe"]["probe_description"]
    adaptation = json.loads((out / "06_adapt/adaptation.json").read_text())
    assert adaptation["ran"] and adaptation["top_layers"] == 1
    assert adaptation["top_block"].startswith("wav2vec2 transformer layer 2 of 2, over hidden state 1")
    assert adaptation["cut_check_relative_error"] < 1e-5
    assert adaptation["original_encoder_unchanged"] is True
    assert len(adaptation["history"]["valid_loss"]) == settings.probe.adapt_epochs
    assert (out / "06_adapt/adapted/model.safetensors").is_file()
