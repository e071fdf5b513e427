"""Check for exercise 2 — the frame view.

Run from the repository root (``--solution`` checks the reference, ``--module PATH`` any file):

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/02_frame_view/check.py

References: a hand-made score track whose peak and span are worked out in the comments, and a
synthesised clip (:mod:`audioenc.audio.synth_events`) whose true onset is known exactly (the
labels of that generator are sample-exact on a 1 ms grid).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _check_support import CheckFailed, expect, expect_close, main  # noqa: E402

FRAME_RATE = 100.0


def hand_track() -> np.ndarray:
    """400 frames (4 s): background 0.1, a glitch at 0.40 s, the event from 1.50 s to 1.80 s.

    Frame by frame: 40 -> 0.7 (glitch, active); 150 -> 0.5 (equal to the threshold: NOT
    active); 151 -> 0.55; 152..177 -> 0.8 with the peak 165 -> 0.95; 178 -> 0.6; 179 -> 0.4.
    Hence: peak time (165 + 0.5) / 100 = 1.655 s; span around the peak = frames 151..178 =
    (1.51 s, 1.79 s); onset error against 1.50 s = +0.01 s.
    """
    scores = np.full(400, 0.1)
    scores[40] = 0.7
    scores[150] = 0.5
    scores[151] = 0.55
    scores[152:178] = 0.8
    scores[165] = 0.95
    scores[178] = 0.6
    scores[179] = 0.4
    return scores


def _span(module, scores: np.ndarray, rate: float, what: str, hint: str):
    span = module.event_span_around_peak(scores, rate)
    if span is None:
        return None
    try:
        onset, offset = (float(value) for value in span)
    except (TypeError, ValueError):
        raise CheckFailed(what, "(onset, offset) in seconds or None", repr(span), hint) from None
    return onset, offset


def check_peak_time(module) -> str:
    """Peak time is the middle of the first largest frame."""
    peak = expect_close(
        module.frame_peak_time(hand_track(), FRAME_RATE),
        1.655,
        "peak time of the hand-made track",
        "the peak is frame 165 (0.95); its middle is (165 + 0.5) / 100 s",
    )
    expect_close(
        module.frame_peak_time(np.array([0.2, 0.9, 0.3, 0.9]), 10.0),
        0.15,
        "peak time with two equal maxima (frames 1 and 3 at 10 frames/s)",
        "ties go to the first largest frame (np.argmax does that): (1 + 0.5) / 10",
    )
    return f"peak at {peak:.3f} s, inside the event 1.50-1.80 s, but 155 ms after its onset"


def check_span_around_peak(module) -> str:
    """The span grows from the peak over strictly-active frames, ignoring the earlier glitch."""
    hint = (
        "start at the peak (frame 165) and walk outwards while the neighbour is strictly above 0.5; the glitch "
        "at 0.40 s is active but not connected to the peak, and frame 150 (exactly 0.5) is not active"
    )
    span = _span(module, hand_track(), FRAME_RATE, "span around the peak of the hand-made track", hint)
    expect(span is not None, "span around the peak of the hand-made track", "(1.51, 1.79)", "None", hint)
    expect_close(span[0], 1.51, "onset of the span (start of frame 151)", hint)
    expect_close(span[1], 1.79, "offset of the span (end of frame 178)", hint)
    return f"span ({span[0]:.2f} s, {span[1]:.2f} s) against the true event (1.50 s, 1.80 s)"


def check_edges_and_misses(module) -> None:
    """Spans touching the clip edges; None and NaN when nothing is above the threshold."""
    at_end = _span(module, np.array([0.1] * 5 + [0.9] * 5), 10.0, "span touching the clip end", "")
    expect(
        at_end is not None and abs(at_end[0] - 0.5) < 1e-9 and abs(at_end[1] - 1.0) < 1e-9,
        "span of [0.1]*5 + [0.9]*5 at 10 frames/s (event until the clip end)",
        "(0.5, 1.0)",
        repr(at_end),
        "stop the walk at the last frame; the offset is the end of that frame: 10 / 10 s",
    )
    at_start = _span(module, np.array([0.9] * 3 + [0.1] * 7), 10.0, "span touching the clip start", "")
    expect(
        at_start is not None and abs(at_start[0]) < 1e-9 and abs(at_start[1] - 0.3) < 1e-9,
        "span of [0.9]*3 + [0.1]*7 at 10 frames/s (event from the clip start)",
        "(0.0, 0.3)",
        repr(at_start),
        "stop the walk at frame 0 (do not wrap around to the end with index -1)",
    )
    quiet = module.event_span_around_peak(np.array([0.3, 0.5, 0.2]), 10.0)
    expect(
        quiet is None,
        "span when no frame is strictly above 0.5",
        "None",
        repr(quiet),
        "return None when scores[peak] <= threshold",
    )
    error = module.onset_error(np.array([0.3, 0.5, 0.2]), 10.0, 0.1)
    expect(
        isinstance(error, float) and math.isnan(error),
        "onset_error when nothing is detected",
        "nan",
        repr(error),
        "a missed event has no onset error: return float('nan'), not 0",
    )


def check_onset_error_sign(module) -> None:
    """Onset error is predicted minus true (negative when early)."""
    hint = "predicted minus true: the span starts at 1.51 s"
    expect_close(
        module.onset_error(hand_track(), FRAME_RATE, 1.50), 0.01, "onset error against a true onset of 1.50 s", hint
    )
    expect_close(
        module.onset_error(hand_track(), FRAME_RATE, 1.55), -0.04, "onset error against 1.55 s (early: negative)", hint
    )


TONE_ONSET, TONE_OFFSET, CLIP_SECONDS = 2.345, 2.645, 5.0
EDGE_FRAMES = 3


def synthesized_tone_scores() -> tuple[np.ndarray, float]:
    """Frame scores of a synthesised 5 s clip with a tone from 2.345 s to 2.645 s (10 dB SNR).

    The scorer is fixed, not learned: per log-mel band, how far (in natural-log power) the
    frame rises above that band's median level over the clip; the loudest band's excess,
    through a logistic centred at 3 (about 13 dB). The first and last frames are set to 0
    because their analysis window is cut by the clip edges (an edge artefact, not sound).
    """
    from audioenc.audio.synth_events import synthesize_clip
    from audioenc.timing.features import LogMelConfig, compute_log_mel

    rng = np.random.default_rng(np.random.SeedSequence([2024, 0]))
    clip = synthesize_clip(
        rng, duration=CLIP_SECONDS, events=((TONE_ONSET, TONE_OFFSET, "tone"),), snr_range_db=(10.0, 10.0)
    )
    log_mel = compute_log_mel(clip.audio).astype(np.float64)  # [64 bands, 500 frames]
    excess = (log_mel - np.median(log_mel, axis=1, keepdims=True)).max(axis=0)
    scores = 1.0 / (1.0 + np.exp(-(excess - 3.0)))
    scores[:EDGE_FRAMES] = 0.0
    scores[-EDGE_FRAMES:] = 0.0
    return scores, LogMelConfig().frame_rate


def check_synthesized_clip(module) -> str:
    # A cheap call first: an unfinished function says so before the clip is synthesised.
    """On a synthesised tone clip the onset lands within 30 ms and the peak inside the event."""
    module.onset_error(np.array([0.9]), 1.0, 0.0)
    module.frame_peak_time(np.array([0.9]), 1.0)
    scores, rate = synthesized_tone_scores()
    hint = "the true onset is 2.345 s; a frame-level estimate should land within 30 ms (3 frames)"
    error = module.onset_error(scores, rate, TONE_ONSET)
    expect(
        isinstance(error, float) and math.isfinite(error) and abs(error) <= 0.03,
        "onset error on the synthesised tone clip",
        "|error| <= 0.030 s",
        repr(error),
        hint,
    )
    peak = float(module.frame_peak_time(scores, rate))
    expect(
        TONE_ONSET <= peak <= TONE_OFFSET,
        "peak time on the synthesised tone clip",
        f"inside the tone ({TONE_ONSET} s, {TONE_OFFSET} s)",
        f"{peak:.3f} s",
        "frame_peak_time should return the middle of the highest frame",
    )
    onset, offset = _span(module, scores, rate, "span on the synthesised clip", hint)
    return (
        f"true tone {TONE_ONSET:.3f}-{TONE_OFFSET:.3f} s; yours {onset:.3f}-{offset:.3f} s "
        f"(onset error {error * 1000:+.0f} ms), peak {peak:.3f} s; clip view: mean {scores.mean():.3f}, "
        f"max {scores.max():.3f} (no time in either)"
    )


CHECKS = [
    ("frame-peak time on a hand-made track", check_peak_time),
    ("event span around the peak (glitch elsewhere, strict threshold)", check_span_around_peak),
    ("spans at the clip edges, and nothing detected", check_edges_and_misses),
    ("onset error is predicted minus true", check_onset_error_sign),
    ("onset of a synthesised tone from log-mel frame scores", check_synthesized_clip),
]

if __name__ == "__main__":
    main(
        __file__,
        "Exercise 2 — the frame view",
        CHECKS,
        on_success="Now write the note (TASK.md): what the frame view recovered that the clip summary could not, "
        "with the onset, peak and errors above.",
    )
