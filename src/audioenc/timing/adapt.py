"""Light adaptation of a frozen encoder, and the rule that says when it is worth it.

1. **The cut** (:func:`adaptation_split`): each HEAR wrapper says how it splits
   (:meth:`audioenc.hear.HEARModule.split_top`) into frozen lower layers, run once per clip and
   cached, and a trainable *copy* of its top block(s) — the codec encoder's LSTM and final
   convolution, the CRNN's bidirectional recurrent layer, the top ``adapt_top_layers`` transformer layers of a
   ``transformers`` snapshot (:mod:`audioenc.timing.pretrained.transformer_top`), CREPE's top conv
   block(s). :func:`check_adaptation_split` confirms that top over lower rebuilds the probed
   embeddings. The original encoder is never changed. A top that attends over more positions
   than it outputs (a transformer over a padded window) says how many frames each clip keeps
   (``output_lengths``); the probe reads those. The adapted model scores the encoder's own
   frames; :class:`FrameGrid` places them on the frozen path's frame grid exactly as the frozen
   embeddings were placed (the identity for the codec and the CRNN; the nearest frame for
   encoders whose frames are centred elsewhere, as a snapshot's or CREPE's).
2. **The adapted model** (:class:`AdaptedModel`): the top copy and the probe (started from the
   frozen probe) trained together, the top at ``adapt_lr_factor`` times the probe's learning
   rate (:func:`train_adapted`); the frozen start competes on validation loss.
3. **When to adapt** (:class:`AdaptationRule`): only when the frozen path stops short of the
   scratch baseline by a stated margin; the gain must then clear a margin with a paired
   bootstrap interval above zero to justify changing the encoder.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audioenc.core.bootstrap import BootstrapCI
from audioenc.errors import UserError
from audioenc.hear import TopSplit
from audioenc.timing.encoders import EncoderHandle, to_frame_grid
from audioenc.timing.fitting import ClipModelOutput, Predictions, TrainingHistory
from audioenc.timing.probe import ProbeConfig, ProbeHead, fit_on_clips
from audioenc.validation import bounded


def adaptation_split(handle: EncoderHandle, top_layers: int = 1) -> tuple[TopSplit | None, str]:
    """Cut an encoder below its top ``top_layers`` block(s) for light adaptation; ``(None, reason)``
    when it cannot be cut (a HEAR module that exposes only the HEAR functions has no blocks to
    unfreeze) or not there (the encoder's :class:`~audioenc.errors.UserError` is the reason: too
    many layers asked for, a codec from ``transformers``, ``layer=all`` over a padded window)."""
    split_top = getattr(handle.model, "split_top", None)
    try:
        split = split_top(top_layers) if callable(split_top) else None
    except UserError as error:
        return None, f"a {handle.kind} encoder ({handle.source}) cannot be cut for adaptation: {error}"
    if split is None:
        return None, (
            f"a {handle.kind} encoder ({handle.source}) exposes only the HEAR functions, not its blocks, so its top "
            "block cannot be unfrozen here"
        )
    return split, ""


class AdaptedModel(nn.Module):
    """Trainable top block(s) + probe: ``lower [B, D, F] -> top -> embeddings -> probe``.

    Args:
        top: from :class:`~audioenc.hear.TopSplit` (trainable copy).
        probe: a trained :class:`ProbeHead` (copied; training continues from it).
    """

    def __init__(self, top: nn.Module, probe: ProbeHead) -> None:
        super().__init__()
        self.top = top
        self.probe = copy.deepcopy(probe)

    def forward(self, lower: torch.Tensor, mask: torch.Tensor | None = None) -> ClipModelOutput:
        if mask is None:
            mask = torch.ones(lower.shape[0], lower.shape[-1], dtype=torch.bool, device=lower.device)
        embeddings, mask = top_embeddings(self.top, lower, mask)
        return self.probe(embeddings, mask)


def top_embeddings(top: nn.Module, lower: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``top(lower [B, D, P], lengths)`` -> embeddings ``[B, E, F]`` and their real frames ``[B, F]``: the
    lower's own (``F = P``) unless the top keeps fewer frames than it attends over and says how many
    (``top.output_lengths(lower, lengths)``, as
    :class:`~audioenc.timing.pretrained.transformer_top.TransformerTop` does)."""
    lengths = mask.sum(dim=1)
    embeddings = top(lower, lengths)
    output_lengths = getattr(top, "output_lengths", None)
    if output_lengths is None:
        return embeddings, mask
    frames = output_lengths(lower, lengths).to(embeddings.device)
    return embeddings, torch.arange(embeddings.shape[-1], device=embeddings.device)[None] < frames[:, None]


@dataclass(frozen=True)
class FrameGrid:
    """Where an encoder's own frames land on the frozen path's grid
    (:func:`~audioenc.timing.encoders.to_frame_grid`: grid frame ``j`` takes the frame whose timestamp
    is nearest to ``(j + 1/2) / frame_rate``).

    Attributes:
        timestamps_ms: ``F`` -> the encoder's timestamps of ``F`` frames ``[F]`` (ms), as its HEAR
            functions give them.
        frame_rate: the grid's frames per second.
        sample_rate: Hz of the clips (their durations).
    """

    timestamps_ms: Callable[[int], np.ndarray]
    frame_rate: float
    sample_rate: int

    def place(self, frames: np.ndarray, samples: int) -> np.ndarray:
        """A clip's ``[D, F]`` encoder frames (``samples`` long) -> ``[D, G]`` float32 on the grid."""
        return to_frame_grid(frames.T, self.timestamps_ms(frames.shape[1]), samples / self.sample_rate, self.frame_rate)

    def predictions(self, native: Predictions, samples: Mapping[str, int]) -> Predictions:
        """Frame scores of each clip placed on the grid (clip scores as the model pooled them)."""
        placed = {
            name: self.place(scores, samples[name]).astype(np.float64) for name, scores in native.frame_scores.items()
        }
        return Predictions(placed, dict(native.clip_scores), self.frame_rate, native.classes, native.threshold)


def frame_grid(handle: EncoderHandle, frame_rate: float) -> FrameGrid:
    """The :class:`FrameGrid` of a HEAR-wrapped encoder (its ``timestamps_ms``) at ``frame_rate``."""
    model = handle.model

    def timestamps(frames: int) -> np.ndarray:
        return model.timestamps_ms(1, frames, torch.device("cpu"))[0].numpy().astype(np.float64)

    return FrameGrid(timestamps, float(frame_rate), int(handle.sample_rate))


def check_adaptation_split(
    split: TopSplit, audio: np.ndarray, reference: np.ndarray, where: str, grid: FrameGrid
) -> float:
    """Largest ``|grid(top(lower(audio))) - reference|`` relative to the reference's largest magnitude;
    raises when above 1e-3 (the cut would not be the encoder that was probed).

    ``reference`` is the frozen embeddings ``[E, G]`` of ``audio`` on the frozen path's grid.
    """
    lower = torch.from_numpy(split.lower(audio))[None]
    with torch.no_grad():
        embeddings, mask = top_embeddings(split.top, lower, torch.ones(1, lower.shape[-1], dtype=torch.bool))
        rebuilt = grid.place(embeddings[0, :, : int(mask.sum())].numpy(), len(audio))
    if rebuilt.shape != reference.shape:
        raise RuntimeError(f"{where}: the adaptation cut gives {rebuilt.shape}, the HEAR path {reference.shape}")
    error = float(np.max(np.abs(rebuilt - reference)) / max(float(np.max(np.abs(reference))), 1e-12))
    if error > 1e-3:
        raise RuntimeError(f"{where}: the adaptation cut differs from the HEAR embeddings by {error:.2e} (relative)")
    return error


def train_adapted(
    split: TopSplit,
    probe: ProbeHead,
    train_lower: Mapping[str, np.ndarray],
    train_targets: np.ndarray,
    valid_lower: Mapping[str, np.ndarray],
    valid_targets: np.ndarray,
    *,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[AdaptedModel, TrainingHistory]:
    """Unfreeze the top block(s) at ``config.adapt_lr_factor`` times the probe's learning rate and
    train them with the probe (started from the frozen probe, its layer weights included) for
    ``config.adapt_epochs``; the frozen start competes on validation loss (``history.best_epoch =
    -1``: no epoch beat it, so the returned model is the frozen encoder + probe). Parameters the top
    only borrows from below the cut (``requires_grad`` off, e.g. WavLM's position bias) stay frozen."""
    model = AdaptedModel(copy.deepcopy(split.top), probe)
    trainable = [parameter for parameter in model.top.parameters() if parameter.requires_grad]
    groups = [
        {"params": trainable, "lr": config.learning_rate * config.adapt_lr_factor},
        {"params": list(model.probe.parameters()), "lr": config.learning_rate},
    ]
    history = fit_on_clips(
        model,
        groups,
        list(train_lower.values()),
        train_targets,
        list(valid_lower.values()),
        valid_targets,
        epochs=config.adapt_epochs,
        batch_size=config.batch_size,
        seed=seed,
        name=f"adapted/{probe.pooling_name}",
        patience=config.patience,
        budget_seconds=config.budget_seconds,
        include_start=True,
        log=log,
    )
    return model, history


@dataclass(frozen=True)
class AdaptationTrigger:
    """Whether the frozen path stops short (:meth:`AdaptationRule.should_adapt`).

    Attributes:
        triggered: adapt.
        short_on: the metrics on which scratch is ahead by more than the margin.
        gaps: ``scratch - frozen`` per metric available.
        reason: the sentence the report states.
    """

    triggered: bool
    short_on: tuple[str, ...]
    gaps: dict[str, float]
    reason: str

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "triggered": self.triggered,
            "short_on": list(self.short_on),
            "gaps": dict(self.gaps),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class AdaptationVerdict:
    """Whether the adapted encoder is justified (:meth:`AdaptationRule.verdict`)."""

    justified: bool
    reason: str

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {"justified": self.justified, "reason": self.reason}


@dataclass(frozen=True)
class AdaptationRule:
    """When the frozen path "stops short", and when adapting it pays off.

    Metrics: ``clip_map`` (clip-level) and ``collar_f1`` (boundary, positive clips), both on
    the evaluation split, higher is better.

    * **Trigger.** Adapt only if scratch beats frozen + probe by more than ``clip_margin`` on
      clip mAP or by more than ``boundary_margin`` on collar F1 (point values). The seed's
      example — close to scratch on clip metrics but behind on boundaries — is the second
      case alone. Otherwise the frozen encoder already answers the task and is kept.
    * **Verdict.** The adapted encoder is justified only if, on a metric that stopped short,
      it gains at least ``gain_margin`` over frozen + probe with the paired bootstrap interval
      of the gain above zero, and it loses no more than the margin on the other metric.
    """

    clip_margin: float = bounded(0.05, minimum=0, maximum=1)  # metrics lie in [0, 1]
    boundary_margin: float = bounded(0.05, minimum=0, maximum=1)
    gain_margin: float = bounded(0.03, minimum=0, maximum=1)

    def statement(self) -> str:
        """The rule in one paragraph (for the report)."""
        return (
            f"Adapt only when the frozen encoder + probe stops short of the scratch baseline: scratch ahead by more "
            f"than {self.clip_margin:.2f} in clip mAP or by more than {self.boundary_margin:.2f} in collar F1 on "
            f"positive clips (evaluation split, point values). Keep the adapted encoder only if it gains at least "
            f"{self.gain_margin:.2f} over frozen + probe on a metric that stopped short, with the paired 95 % "
            f"bootstrap interval of that gain above zero, and loses no more than the margin on the other metric."
        )

    def should_adapt(
        self, frozen: Mapping[str, float | None], scratch: Mapping[str, float | None]
    ) -> AdaptationTrigger:
        """Apply the trigger to point metrics (``clip_map``, ``collar_f1``; None = unavailable)."""
        margins = {"clip_map": self.clip_margin, "collar_f1": self.boundary_margin}
        gaps, short_on = {}, []
        for metric, margin in margins.items():
            if frozen.get(metric) is None or scratch.get(metric) is None:
                continue
            gaps[metric] = float(scratch[metric] - frozen[metric])
            if gaps[metric] > margin:
                short_on.append(metric)
        if "clip_map" not in gaps:
            raise ValueError("the adaptation rule needs clip_map for both the frozen path and the scratch baseline")
        described = {
            "clip_map": f"clip mAP {frozen['clip_map']:.3f} vs scratch {scratch['clip_map']:.3f} "
            f"(gap {gaps['clip_map']:+.3f})"
        }
        if "collar_f1" in gaps:
            described["collar_f1"] = (
                f"collar F1 {frozen['collar_f1']:.3f} vs scratch {scratch['collar_f1']:.3f} "
                f"(gap {gaps['collar_f1']:+.3f})"
            )
        if not short_on:
            reason = (
                "the frozen path does not stop short: " + "; ".join(described.values()) + " — all within the margins"
            )
        elif short_on == ["collar_f1"]:
            level = "close to" if gaps["clip_map"] > 0 else "level with or ahead of"
            reason = f"the frozen path is {level} scratch on clip metrics but behind on boundaries: " + "; ".join(
                described.values()
            )
        elif short_on == ["clip_map"] and "collar_f1" in gaps:
            reason = "the frozen path is behind scratch on clip metrics: " + "; ".join(described.values())
        else:
            reason = "the frozen path is behind scratch: " + "; ".join(described.values())
        if "collar_f1" not in gaps:
            reason += " (no boundary metric: the evaluation split has no strong labels)"
        return AdaptationTrigger(bool(short_on), tuple(short_on), gaps, reason)

    def verdict(self, short_on: Sequence[str], gains: Mapping[str, BootstrapCI]) -> AdaptationVerdict:
        """Whether adaptation is justified, from paired gains ``adapted - frozen`` (per metric a
        :class:`~audioenc.core.bootstrap.BootstrapCI`).

        Args:
            short_on: metrics on which the frozen path stopped short.
            gains: per metric the paired bootstrap interval of the gain.
        """
        margins = {"clip_map": self.clip_margin, "collar_f1": self.boundary_margin}
        wins, losses, notes = [], [], []
        for metric in margins:
            gain = gains.get(metric)
            if gain is None or gain.value is None:
                continue
            notes.append(f"{metric} gain {gain.value:+.3f} (95 % CI {_signed_interval(gain)})")
            if metric in short_on and gain.value >= self.gain_margin and gain.low is not None and gain.low > 0:
                wins.append(metric)
            if gain.value < -margins[metric]:
                losses.append(metric)
        summary = "; ".join(notes)
        if wins and not losses:
            return AdaptationVerdict(True, f"adaptation clears the rule on {', '.join(wins)}: {summary}")
        if losses:
            return AdaptationVerdict(False, f"adaptation loses more than the margin on {', '.join(losses)}: {summary}")
        return AdaptationVerdict(
            False, f"the gain does not clear {self.gain_margin:.2f} with an interval above zero: {summary}"
        )


def _signed_interval(ci: BootstrapCI) -> str:
    if ci.low is None or ci.high is None:
        return "n/a"
    return f"{ci.low:+.3f} to {ci.high:+.3f}"


__all__ = [
    "AdaptationRule",
    "AdaptationTrigger",
    "AdaptationVerdict",
    "AdaptedModel",
    "FrameGrid",
    "adaptation_split",
    "check_adaptation_split",
    "frame_grid",
    "top_embeddings",
    "train_adapted",
]
