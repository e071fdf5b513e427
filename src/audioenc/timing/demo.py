"""The short encoder demo: what a clip summary hides and what the frame view keeps.

The first thing the Speech and Audio Encoders track runs (well under a minute on one CPU core):

1. **Data.** 8 s clips at 24 kHz made here from the seed (:mod:`audioenc.audio.synth_events`):
   half of them hold one short *tone* beep (0.2-0.5 s) at a random, known time; half of the
   clips of both kinds also hold a *distractor* (a noise band or a click train, away from the
   beep), so "is there energy?" does not answer "is there a beep?".
2. **Frame view.** Log-mel features (64 bands, 100 frames/s, :mod:`audioenc.timing.features`)
   and a tiny frame scorer (:class:`BeepScorer`: each band's clip median removed, a 1x1 band
   mix, one kernel-9 convolution over time, a sigmoid), trained for a few seconds on crops of
   separate clips with *frame* labels (1 inside a beep). A trained scorer, not a hand-made detector, because the
   track is about what pooling does to a learned frame signal; frame labels, not clip labels,
   because this demo isolates the pooling step (the weak-label case is the lab workflow's).
3. **Clip view.** The same frame scores summarised per clip by mean pooling and by max
   pooling (:mod:`audioenc.timing.pooling`).

Written into the run folder: ``clips.tsv`` (the printed table: per clip, event present, mean-
and max-pooled score, frame-peak time against the true onset), ``demo.png`` (waveform, log-mel,
frame scores with the true boundaries and the mean / max levels, for a few clips),
``demo.json`` (every number) and ``note.md`` (the start of the learner's note, with this run's
numbers).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audioenc import SAMPLE_RATE
from audioenc.audio.synth_events import synthesize_clip
from audioenc.core import atomic
from audioenc.core.frames import frame_centres
from audioenc.core.plotting import pyplot
from audioenc.timing.features import LogMel, LogMelConfig
from audioenc.timing.fitting import FitSettings, fit_clip_model, frame_bce
from audioenc.timing.pooling import MaxPooling, MeanPooling
from audioenc.timing.workflow.artifacts import number, write_json

TARGET_CLASS = "tone"
DISTRACTOR_CLASSES: tuple[str, ...] = ("noise_band", "click")
DISTRACTOR_SECONDS = {"noise_band": (0.8, 2.0), "click": (0.1, 0.3)}


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the short demo (defaults: about 10 s of work on one core).

    Attributes:
        train_clips: clips the frame scorer learns from (half with a beep).
        eval_clips: clips summarised in the table and the note (half with a beep).
        clip_seconds: length of every clip.
        event_seconds: shortest and longest beep.
        distractor_probability: chance that a clip also holds a distractor (a noise band or
            a click train, away from the beep).
        steps: Adam steps for the frame scorer.
        crop_batch: crops per step.
        crop_frames: frames per crop (2.56 s).
        learning_rate: Adam step size.
        plot_clips: clips drawn in the PNG (positives first, then one negative).
        seed: everything random draws from it.
    """

    train_clips: int = 128
    eval_clips: int = 16
    clip_seconds: float = 8.0
    event_seconds: tuple[float, float] = (0.2, 0.5)
    distractor_probability: float = 0.5
    steps: int = 400
    crop_batch: int = 32
    crop_frames: int = 256
    learning_rate: float = 0.01
    plot_clips: int = 3
    seed: int = 0


@dataclass(frozen=True)
class DemoClip:
    """One clip of the demo and its true event (None for a negative)."""

    name: str
    audio: np.ndarray
    onset: float | None
    offset: float | None
    distractor: str | None


class SubtractClipMedian(nn.Module):
    """``[batch, bands, frames]`` minus each band's median over the clip's frames.

    The median of a band is the clip's background level there (events are short), so what
    remains is how far each frame stands above its own clip's background, whatever the
    background's loudness or colour.
    """

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return log_mel - log_mel.median(dim=-1, keepdim=True).values


class BeepScorer(nn.Module):
    """Log-mel ``[batch, n_mels, frames]`` -> frame probabilities ``[batch, 1, frames]``.

    ``sigmoid(W3 relu(conv9(relu(W1 normalise(x - median_t(x))))))``: the clip's per-band
    median removed (:class:`SubtractClipMedian`), a per-band normalisation, a 1x1 mix of the
    bands into ``hidden`` channels, one kernel-9 convolution over time (90 ms of context) and
    a 1x1 output. About 3,000 multiply-adds per frame: it trains in seconds.
    """

    def __init__(self, n_mels: int, hidden: int = 16, kernel: int = 9) -> None:
        super().__init__()
        self.centre = SubtractClipMedian()
        self.net = nn.Sequential(
            nn.BatchNorm1d(n_mels, affine=False),
            nn.Conv1d(n_mels, hidden, kernel_size=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=kernel, padding=kernel // 2),
            nn.ReLU(),
            nn.Conv1d(hidden, 1, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.net(self.centre(log_mel))


def make_demo_clips(count: int, config: DemoConfig, stream: int) -> list[DemoClip]:
    """``count`` clips, alternately with and without a beep (``stream`` separates the training
    clips from the evaluation clips of one seed). A distractor, when drawn, is placed at least
    0.3 s away from the beep so that every frame has one true answer."""
    clips = []
    for index in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1000 + stream, index]))
        events = []
        onset = offset = None
        if index % 2 == 0:
            length = round(rng.uniform(*config.event_seconds), 3)
            onset = round(rng.uniform(0.3, config.clip_seconds - length - 0.3), 3)
            offset = round(onset + length, 3)
            events.append((onset, offset, TARGET_CLASS))
        distractor = None
        if rng.random() < config.distractor_probability:
            kind = DISTRACTOR_CLASSES[int(rng.integers(len(DISTRACTOR_CLASSES)))]
            length = round(rng.uniform(*DISTRACTOR_SECONDS[kind]), 3)
            # Free stretches: the clip minus the beep and a 0.3 s margin around it.
            free = (
                [(0.0, config.clip_seconds)]
                if onset is None
                else [(0.0, onset - 0.3), (offset + 0.3, config.clip_seconds)]
            )
            free = [(start, stop) for start, stop in free if stop - start >= length]
            if free:
                start_lo, stop_hi = free[int(rng.integers(len(free)))]
                start = round(rng.uniform(start_lo, stop_hi - length), 3)
                events.append((start, round(start + length, 3), kind))
                distractor = kind
        clip = synthesize_clip(rng, duration=config.clip_seconds, events=tuple(events), snr_range_db=(6.0, 15.0))
        clips.append(
            DemoClip(f"{'train' if stream == 0 else 'clip'}_{index:02d}.wav", clip.audio, onset, offset, distractor)
        )
    return clips


def _frame_targets(clips: list[DemoClip], frames: int, frame_rate: float) -> torch.Tensor:
    """1 on frames whose midpoint lies inside the beep, ``[clips, 1, frames]``."""
    middles = frame_centres(frames, frame_rate)
    targets = np.zeros((len(clips), 1, frames), dtype=np.float32)
    for row, clip in enumerate(clips):
        if clip.onset is not None:
            targets[row, 0] = (middles >= clip.onset) & (middles < clip.offset)
    return torch.from_numpy(targets)


def train_beep_scorer(
    features: torch.Tensor, targets: torch.Tensor, config: DemoConfig
) -> tuple[BeepScorer, list[float]]:
    """Train on random crops with frame-level BCE; returns the scorer (eval mode) and the losses.

    Args:
        features: log-mel of the training clips ``[clips, n_mels, frames]``.
        targets: frame labels ``[clips, 1, frames]``.
        config: steps, crop size, batch, learning rate, seed.

    The clip median is removed on the whole clip first (as at inference), then each step
    draws ``crop_batch`` crops of ``crop_frames`` frames: cheaper than full clips and more
    varied, so the scorer trains in a few seconds and does not memorise the clips.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    scorer = BeepScorer(features.shape[1])
    centred = scorer.centre(features)
    crop = min(config.crop_frames, features.shape[-1])
    # Beep frames are ~4 % of all frames: weight them so the scorer does not settle on "never".
    positive_weight = float((targets.numel() - targets.sum()) / targets.sum().clamp_min(1.0))

    def random_crops(epoch: int):
        rows = torch.randint(0, features.shape[0], (config.crop_batch,), generator=generator).tolist()
        starts = torch.randint(0, features.shape[-1] - crop + 1, (config.crop_batch,), generator=generator).tolist()
        yield rows, starts

    def loss(batch: tuple[list[int], list[int]]) -> torch.Tensor:
        rows, starts = batch
        inputs = torch.stack([centred[row, :, start : start + crop] for row, start in zip(rows, starts)])
        labels = torch.stack([targets[row, :, start : start + crop] for row, start in zip(rows, starts)])
        return frame_bce(scorer.net(inputs), labels, weight=1.0 + (positive_weight - 1.0) * labels)

    # One "epoch" is one batch of random crops: config.steps steps.
    history = fit_clip_model(
        scorer,
        [{"params": list(scorer.parameters()), "lr": config.learning_rate}],
        random_crops,
        loss,
        FitSettings(epochs=config.steps),
        name="beep scorer",
        seed=config.seed,
    )
    return scorer, history.train_loss


def _auc(positive: list[float], negative: list[float]) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties 1/2
    (the Mann-Whitney statistic, computed from all pairs)."""
    if not positive or not negative:
        return math.nan
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    return float(np.mean(pairs))


def run_short_demo(out_dir: str | Path = "runs/demo", config: DemoConfig = DemoConfig(), *, echo: bool = True) -> dict:
    """Run the demo and write ``clips.tsv``, ``demo.png``, ``demo.json`` and ``note.md``.

    Args:
        out_dir: run folder (created).
        config: sizes and seed.
        echo: print the table and the headline to stdout.

    Returns:
        The content of ``demo.json``: config, per-clip rows, summary numbers, file paths,
        wall time in seconds.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    feature_config = LogMelConfig()
    extractor = LogMel(feature_config)
    frame_rate = feature_config.frame_rate

    train = make_demo_clips(config.train_clips, config, stream=0)
    shown = make_demo_clips(config.eval_clips, config, stream=1)
    with torch.no_grad():
        train_features = extractor(torch.from_numpy(np.stack([clip.audio for clip in train])))
        shown_features = extractor(torch.from_numpy(np.stack([clip.audio for clip in shown])))
    frames = train_features.shape[-1]
    scorer, losses = train_beep_scorer(train_features, _frame_targets(train, frames, frame_rate), config)
    with torch.no_grad():
        frame_scores = scorer(shown_features)  # [clips, 1, frames]
        mean_scores = MeanPooling()(frame_scores)[:, 0].numpy()
        max_scores = MaxPooling()(frame_scores)[:, 0].numpy()
    frame_scores_np = frame_scores[:, 0].numpy().astype(np.float64)
    centres = frame_centres(frame_scores_np.shape[1], frame_rate)

    rows = []
    for row, clip in enumerate(shown):
        scores = frame_scores_np[row]
        peak = int(np.argmax(scores))
        peak_time = float(centres[peak])
        active = np.flatnonzero(scores > 0.5)
        rows.append(
            {
                "clip": clip.name,
                "event_present": clip.onset is not None,
                "true_onset": clip.onset,
                "true_offset": clip.offset,
                "distractor": clip.distractor,
                "mean_pooled": float(mean_scores[row]),
                "max_pooled": float(max_scores[row]),
                "peak_time": peak_time,
                "peak_minus_onset": (peak_time - clip.onset) if clip.onset is not None else None,
                "peak_inside_event": (clip.onset <= peak_time < clip.offset) if clip.onset is not None else None,
                "first_active_time": float(active[0] / frame_rate) if len(active) else None,
                "active_seconds_outside_event": float(np.sum(~_inside(centres[active], clip)) / frame_rate),
            }
        )
    summary = _summarise(rows, config.clip_seconds)
    atomic.write_text(out_dir / "clips.tsv", _table(rows, separator="\t"))
    png = _plot(
        out_dir / "demo.png", shown, frame_scores_np, mean_scores, max_scores, extractor, shown_features, config
    )
    wall = time.perf_counter() - started
    result = {
        "config": asdict(config),
        "features": {**asdict(feature_config), "frame_rate": frame_rate},
        "frame_scorer": {
            "final_loss": losses[-1],
            "steps": config.steps,
            "training": "frame labels, weighted BCE on random crops",
        },
        "clips": rows,
        "summary": summary,
        "files": {"table": "clips.tsv", "plot": png.name, "note": "note.md"},
        "wall_seconds": wall,
    }
    atomic.write_text(out_dir / "note.md", _note(result))
    write_json(out_dir / "demo.json", result)
    if echo:
        print(_table(rows, separator="  ", pretty=True))
        print(_headline(summary))
        print(f"wrote {out_dir / 'clips.tsv'}, {png}, {out_dir / 'note.md'} ({wall:.1f} s)")
    return result


def _inside(middles: np.ndarray, clip: DemoClip) -> np.ndarray:
    """Whether each frame centre (seconds) lies inside the clip's beep (all False without one)."""
    if clip.onset is None:
        return np.zeros(len(middles), dtype=bool)
    return (middles >= clip.onset) & (middles < clip.offset)


def _summarise(rows: list[dict], clip_seconds: float) -> dict:
    positives = [row for row in rows if row["event_present"]]
    negatives = [row for row in rows if not row["event_present"]]
    detected_by = {name: sum(row[name] > 0.5 for row in positives) for name in ("mean_pooled", "max_pooled")}
    false_alarms = {name: sum(row[name] > 0.5 for row in negatives) for name in ("mean_pooled", "max_pooled")}
    onset_errors = [
        abs(row["first_active_time"] - row["true_onset"]) for row in positives if row["first_active_time"] is not None
    ]
    return {
        "positives": len(positives),
        "negatives": len(negatives),
        "mean_pooled_positive_average": float(np.mean([r["mean_pooled"] for r in positives])) if positives else None,
        "mean_pooled_negative_average": float(np.mean([r["mean_pooled"] for r in negatives])) if negatives else None,
        "max_pooled_positive_average": float(np.mean([r["max_pooled"] for r in positives])) if positives else None,
        "max_pooled_negative_average": float(np.mean([r["max_pooled"] for r in negatives])) if negatives else None,
        "positives_above_half": detected_by,
        "negatives_above_half": false_alarms,
        "auc_mean_pooled": _auc([r["mean_pooled"] for r in positives], [r["mean_pooled"] for r in negatives]),
        "auc_max_pooled": _auc([r["max_pooled"] for r in positives], [r["max_pooled"] for r in negatives]),
        "event_share_of_clip": float(np.mean([(r["true_offset"] - r["true_onset"]) for r in positives]) / clip_seconds)
        if positives
        else None,
        "peaks_inside_event": sum(bool(r["peak_inside_event"]) for r in positives),
        "median_abs_peak_minus_onset": float(np.median([abs(r["peak_minus_onset"]) for r in positives]))
        if positives
        else None,
        "median_abs_first_active_minus_onset": float(np.median(onset_errors)) if onset_errors else None,
        "positives_with_active_frame": len(onset_errors),
        # False alarms the frame view exposes: clips with >= 0.1 s above 0.5 outside any beep.
        "clips_with_false_alarm": sum(row["active_seconds_outside_event"] >= 0.1 for row in rows),
        "clips": len(rows),
    }


def _cell(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return number(value, digits)
    return str(value)


_COLUMNS = (
    ("clip", "clip"),
    ("event_present", "event"),
    ("true_onset", "onset_s"),
    ("true_offset", "offset_s"),
    ("distractor", "distractor"),
    ("mean_pooled", "mean_pool"),
    ("max_pooled", "max_pool"),
    ("peak_time", "peak_s"),
    ("peak_minus_onset", "peak-onset_s"),
    ("peak_inside_event", "peak_in_event"),
)


def _table(rows: list[dict], separator: str, pretty: bool = False) -> str:
    header = [title for _, title in _COLUMNS]
    body = [[_cell(row[key], 2 if key in ("peak_time",) else 3) for key, _ in _COLUMNS] for row in rows]
    if not pretty:
        return "\n".join(separator.join(line) for line in [header, *body]) + "\n"
    widths = [max(len(line[column]) for line in [header, *body]) for column in range(len(header))]
    return "\n".join(separator.join(cell.rjust(width) for cell, width in zip(line, widths)) for line in [header, *body])


def _headline(summary: dict) -> str:
    return (
        f"mean pooling: positives average {summary['mean_pooled_positive_average']:.3f}, negatives "
        f"{summary['mean_pooled_negative_average']:.3f}; {summary['positives_above_half']['mean_pooled']}/"
        f"{summary['positives']} positives above 0.5. max pooling: positives "
        f"{summary['max_pooled_positive_average']:.3f}, "
        f"negatives {summary['max_pooled_negative_average']:.3f}; {summary['positives_above_half']['max_pooled']}/"
        f"{summary['positives']} above 0.5. Frame peak inside the true event on {summary['peaks_inside_event']}/"
        f"{summary['positives']} positives."
    )


def _clip_summary_paragraph(s: dict) -> str:
    """The "what the clip summary hid" paragraph; every verdict follows from the numbers."""
    mean_hits, max_hits = s["positives_above_half"]["mean_pooled"], s["positives_above_half"]["max_pooled"]
    max_false = s["negatives_above_half"]["max_pooled"]
    text = (
        f"**What the clip summary hid.** The beep fills about {100 * s['event_share_of_clip']:.0f} % of a clip, so "
        f"the mean-pooled score of a clip *with* a beep averaged {s['mean_pooled_positive_average']:.3f}, against "
        f"{s['mean_pooled_negative_average']:.3f} without: {mean_hits}/{s['positives']} positives reach 0.5. "
        f"Ranked rather than thresholded, the mean separates the clips with AUC {s['auc_mean_pooled']:.2f}: its "
        "level is the event's share of the clip, not the evidence that an event happened. "
    )
    if max_hits > mean_hits:
        text += f"Max pooling kept the event visible at the 0.5 level: {max_hits}/{s['positives']} positives "
    else:
        text += f"Max pooling did no better at the 0.5 level: {max_hits}/{s['positives']} positives "
    text += (
        f"(average {s['max_pooled_positive_average']:.3f}) against {max_false}/{s['negatives']} negatives "
        f"(average {s['max_pooled_negative_average']:.3f}), AUC {s['auc_max_pooled']:.2f}. "
    )
    if max_false:
        text += "One loud frame is enough to lift a clip without a beep: the max has no memory of where it came from. "
    return text + "Neither number says *when* the event happened."


def _note(result: dict) -> str:
    s = result["summary"]
    c = result["config"]
    low, high = c["event_seconds"]
    onset_line = (
        f"the first frame above 0.5 lies a median {1000 * s['median_abs_first_active_minus_onset']:.0f} ms from the "
        f"true onset ({s['positives_with_active_frame']}/{s['positives']} positives have such a frame)"
        if s["median_abs_first_active_minus_onset"] is not None
        else "no positive clip has a frame above 0.5"
    )
    paragraphs = [
        "# Learner's note: keep the time axis visible",
        "## 1. Clip summary against frame view (short encoder demo)",
        f"Run: `audio_encoder_demo.py`, seed {c['seed']}: {s['clips']} clips of {c['clip_seconds']:.0f} s, "
        f"{s['positives']} with one {TARGET_CLASS} beep of {low}-{high} s and {s['negatives']} without; a distractor "
        "(noise band or click train) in some clips of both kinds. Frame scores at 100 frames/s from a small "
        "scorer trained on separate clips with frame labels. Artifacts: `clips.tsv` (the table), `demo.png` "
        "(waveform, log-mel, frame scores with the true boundaries and the pooled levels), `demo.json`.",
        _clip_summary_paragraph(s),
        f"**What the frame view recovered.** The frame-score peak falls inside the true beep on "
        f"{s['peaks_inside_event']}/{s['positives']} positive clips (median |peak - onset| "
        f"{1000 * s['median_abs_peak_minus_onset']:.0f} ms), and {onset_line}. It also shows where the scorer "
        f"is wrong: {s['clips_with_false_alarm']}/{s['clips']} clips have at least 0.1 s above 0.5 outside any "
        "beep (see the distractor column of `clips.tsv` and the plot).",
        "## 2. Pooling choice",
        "_To write after step 1 of the lab workflow: the rule chosen and the artifact behind it._",
        "## 3. Boundary evidence on positive clips",
        "_To write after steps 3-4: onset/offset errors, collar F1, PSDS; where clip accuracy and boundary "
        "quality disagree._",
        "## 4. Frozen, probed or adapted",
        "_To write after steps 5-6: the decision and the numbers that justify it._",
        "## 5. Smallest next change worth testing",
        "_To write last._",
    ]
    return "\n\n".join(paragraphs) + "\n"


def _plot(path: Path, clips, frame_scores, mean_scores, max_scores, extractor, features, config: DemoConfig) -> Path:
    plt = pyplot()
    positives = [i for i, clip in enumerate(clips) if clip.onset is not None]
    negatives = [i for i, clip in enumerate(clips) if clip.onset is None]
    chosen = positives[: max(1, config.plot_clips - 1)] + negatives[:1]
    frame_rate = extractor.frame_rate
    figure, axes = plt.subplots(3, len(chosen), figsize=(5 * len(chosen), 8), squeeze=False, constrained_layout=True)
    for column, index in enumerate(chosen):
        clip = clips[index]
        seconds = np.arange(len(clip.audio)) / SAMPLE_RATE
        wave, mel, score = axes[0, column], axes[1, column], axes[2, column]
        wave.plot(seconds, clip.audio, linewidth=0.4, color="0.3")
        title = f"{clip.name}: " + (
            f"beep {clip.onset:.2f}-{clip.offset:.2f} s" if clip.onset is not None else "no beep"
        )
        if clip.distractor:
            title += f" (+{clip.distractor})"
        wave.set_title(title, fontsize=9)
        wave.set_ylabel("waveform")
        mel.imshow(
            features[index].numpy(),
            origin="lower",
            aspect="auto",
            extent=(0, features.shape[-1] / frame_rate, 0, features.shape[1]),
            cmap="magma",
        )
        mel.set_ylabel("log-mel band")
        times = frame_centres(frame_scores.shape[1], frame_rate)
        score.plot(times, frame_scores[index], color="tab:blue", linewidth=1.0, label="frame score")
        score.axhline(
            max_scores[index], color="tab:red", linestyle="--", linewidth=1.0, label=f"max pool {max_scores[index]:.2f}"
        )
        score.axhline(
            mean_scores[index],
            color="tab:green",
            linestyle=":",
            linewidth=1.5,
            label=f"mean pool {mean_scores[index]:.2f}",
        )
        score.set_ylim(-0.02, 1.02)
        score.set_ylabel("score")
        score.set_xlabel("time (s)")
        for axis in (wave, mel, score):
            axis.set_xlim(0, len(clip.audio) / SAMPLE_RATE)
            if clip.onset is not None:
                for boundary in (clip.onset, clip.offset):
                    axis.axvline(boundary, color="cyan" if axis is mel else "black", linewidth=0.8)
        score.legend(loc="upper right", fontsize=7)
    figure.suptitle("Clip view (mean, max) against frame view; black lines: true beep boundaries", fontsize=10)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
