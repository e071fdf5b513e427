"""Sizes of one workflow run: :class:`WorkflowSettings` (defaults: about five minutes on two CPU
cores; :meth:`WorkflowSettings.fast` for tests)."""

from __future__ import annotations

from dataclasses import dataclass

from audioenc.timing.adapt import AdaptationRule
from audioenc.timing.probe import ProbeConfig
from audioenc.timing.weak import CRNNConfig


@dataclass(frozen=True)
class WorkflowSettings:
    """Sizes of one workflow run (defaults: about five minutes on two CPU cores).

    Attributes:
        crnn: the weak-label CRNN (steps 3 and 5; :class:`audioenc.timing.weak.CRNNConfig`).
        weak_epochs: epochs of every CRNN training.
        weak_batch_size: clips per CRNN step.
        weak_learning_rate: Adam step size of the CRNN (cosine-decayed by the trainer).
        scorer_hidden: hidden channels of the step-1 frame scorer.
        scorer_steps: Adam steps of the step-1 frame scorer (16 clips each).
        pool_fit_steps: Adam steps fitting the attention and AutoPool parameters in step 1.
        probe: the probe head and the adaptation schedule (:class:`ProbeConfig`).
        rule: when to adapt and when adaptation pays off (:class:`AdaptationRule`).
        pooling_ap_margin: a rule may be chosen if its validation clip mAP is within this
            of the best (see :func:`audioenc.timing.workflow.steps.step4_boundaries.choose_pooling`).
        held_out_classes: classes hidden from the default (self-trained) frozen encoder.
        bootstrap_resamples: bootstrap resamples of the clip and onset metrics.
        f1_resamples: bootstrap resamples of collar F1 (a sed_scores_eval call each).
        max_clips: at most this many clips per split (train, validation, test), None = all.
        plot_clips: sample clips in the frame-score plots.
        workers: processes training CRNNs at once (1: in this process).
    """

    crnn: CRNNConfig = CRNNConfig()
    weak_epochs: int = 8
    weak_batch_size: int = 16
    weak_learning_rate: float = 3e-3
    scorer_hidden: int = 32
    scorer_steps: int = 150
    pool_fit_steps: int = 150
    probe: ProbeConfig = ProbeConfig()
    rule: AdaptationRule = AdaptationRule()
    pooling_ap_margin: float = 0.10
    held_out_classes: int = 2
    bootstrap_resamples: int = 1000
    f1_resamples: int = 200
    max_clips: tuple[int, int, int] | None = None
    plot_clips: int = 4
    workers: int = 2

    @classmethod
    def fast(cls) -> WorkflowSettings:
        """A reduced run for tests (tiny models, few epochs; numbers are not meaningful)."""
        return cls(
            crnn=CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8),
            weak_epochs=2,
            scorer_hidden=8,
            scorer_steps=20,
            pool_fit_steps=20,
            probe=ProbeConfig(hidden=16, epochs=3, adapt_epochs=2),
            bootstrap_resamples=200,
            f1_resamples=20,
            max_clips=(48, 16, 16),
            plot_clips=3,
            workers=1,
        )
