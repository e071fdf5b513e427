"""The track's exercises: reference solutions pass their checks, untouched starters fail helpfully.

Each exercise folder in ``academy/exercises/speech-and-audio-encoders/`` has a ``check.py`` the
learner runs from the repository root. These tests run it exactly that way (a subprocess, cwd =
repository root) against:

- the reference ``solution.py`` (``--solution``): exit 0, every check passed;
- the untouched ``starter.py``: exit 1, "not done yet" with the starter's hint, no traceback;
- a wrong solution (the reference with one function replaced by a typical mistake, written to a
  temporary file and passed with ``--module``): exit 1 with a FAIL naming what was wrong — so
  the checks can tell a right answer from a wrong one, not just a finished file from an
  unfinished one;
- a solution that crashes: exit 1, an ERROR line with the learner's line number, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXERCISES_DIR = REPO / "academy" / "exercises" / "speech-and-audio-encoders"
EXERCISES = (
    "01_what_pooling_hides",
    "02_frame_view",
    "03_boundaries_on_positives",
    "04_frozen_probe_vs_scratch",
    "05_adapt_or_not",
)


def run_check(exercise: str, *args: str) -> subprocess.CompletedProcess:
    """Run an exercise's check.py from the repository root, as the README says."""
    check = EXERCISES_DIR / exercise / "check.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, str(check.relative_to(REPO)), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readme_lists_every_exercise_in_track_order():
    readme = (EXERCISES_DIR / "README.md").read_text()
    positions = [readme.find(f"`{name}/`") for name in EXERCISES]
    assert all(position >= 0 for position in positions), f"README misses an exercise: {dict(zip(EXERCISES, positions))}"
    assert positions == sorted(positions), "README must list the exercises in the track's order"
    assert sorted(path.name for path in EXERCISES_DIR.iterdir() if path.is_dir() and path.name[:2].isdigit()) == list(
        EXERCISES
    )


@pytest.mark.parametrize("exercise", EXERCISES)
def test_exercise_folder_is_complete(exercise):
    folder = EXERCISES_DIR / exercise
    for name in ("TASK.md", "starter.py", "solution.py", "check.py"):
        assert (folder / name).is_file(), f"{exercise} lacks {name}"
    task = (folder / "TASK.md").read_text()
    for section in ("## What to do", "## What to inspect", "## The note to write"):
        assert section in task, f"{exercise}/TASK.md lacks the section {section!r}"
    assert f"{exercise}/check.py" in task, f"{exercise}/TASK.md must give the exact check command"
    assert "NotImplementedError" in (folder / "starter.py").read_text()
    assert "NotImplementedError" not in (folder / "solution.py").read_text()


@pytest.mark.parametrize("exercise", EXERCISES)
def test_reference_solution_passes_its_check(exercise):
    result = run_check(exercise, "--solution")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All " in result.stdout and " checks passed." in result.stdout, output
    assert "FAIL" not in output and "ERROR" not in output and "TODO" not in output, output


@pytest.mark.parametrize("exercise", EXERCISES)
def test_untouched_starter_fails_with_a_helpful_message(exercise):
    result = run_check(exercise)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert "not done yet" in result.stdout, output
    assert f"Exercise {int(exercise[:2])}:" in result.stdout, "the starter's own hint must be shown"
    assert "ok " not in result.stdout, "no check may pass on an untouched starter"


# One typical mistake per exercise: source appended to the reference solution (a later `def`
# replaces the earlier one), and a fragment the check's FAIL message must contain.
MISTAKES = {
    "01_what_pooling_hides": (
        """
def clip_scores(frame_scores):
    scores = np.asarray(frame_scores, dtype=np.float64)
    # mistake: linear softmax taken as the mean of the squares
    return {"mean": float(scores.mean()), "max": float(scores.max()), "linear_softmax": float((scores**2).mean())}
""",
        "linear_softmax clip score",
    ),
    "02_frame_view": (
        """
def event_span_around_peak(frame_scores, frame_rate, threshold=0.5):
    # mistake: first to last active frame of the whole clip, so the glitch becomes the onset
    active = np.flatnonzero(np.asarray(frame_scores) > threshold)
    if active.size == 0:
        return None
    return active[0] / frame_rate, (active[-1] + 1) / frame_rate
""",
        "onset of the span",
    ),
    "03_boundaries_on_positives": (
        """
def positive_boundary_errors(frame_scores, truth, frame_rate, threshold=0.5):
    # mistake: negatives kept, with a zero error when nothing is detected
    onset, offset = [], []
    for name in sorted(truth):
        span = predicted_span(frame_scores[name], frame_rate, threshold)
        event = truth[name]
        if event is None:
            onset.append(0.0 if span is None else np.inf)
            offset.append(0.0 if span is None else np.inf)
        elif span is None:
            onset.append(np.inf)
            offset.append(np.inf)
        else:
            onset.append(abs(span[0] - event[0]))
            offset.append(abs(span[1] - event[1]))
    return np.array(onset), np.array(offset)
""",
        "one error per positive clip",
    ),
    "04_frozen_probe_vs_scratch": (
        """
def paired_bootstrap_ci(frozen, scratch, *, n_resamples=2000, confidence=0.95, seed=0):
    # mistake: the two systems resampled independently (unpaired)
    frozen = np.asarray(frozen, dtype=np.float64)
    scratch = np.asarray(scratch, dtype=np.float64)
    if frozen.shape != scratch.shape or frozen.size == 0:
        raise ValueError("not the same clips")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, frozen.size, size=(n_resamples, frozen.size))
    second = rng.integers(0, frozen.size, size=(n_resamples, frozen.size))
    means = frozen[first].mean(axis=1) - scratch[second].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(frozen.mean() - scratch.mean()), float(low), float(high)
""",
        "normal approximation of the paired difference",
    ),
    "05_adapt_or_not": (
        """
def choose_path(frozen_clip, frozen_boundary, scratch_clip, scratch_boundary, *,
                clip_margin=0.02, boundary_margin=0.05):
    # mistake: adapt whenever the boundaries are behind, before asking the clip question
    clip_gap = frozen_clip - scratch_clip
    boundary_gap = frozen_boundary - scratch_boundary
    gaps = f"clip gap {clip_gap:+.2f}, boundary gap {boundary_gap:+.2f}"
    if boundary_gap < -boundary_margin:
        return "adapt", gaps
    if clip_gap < -clip_margin:
        return "scratch", gaps
    return "frozen", gaps
""",
        "path for 'behind on clips (and boundaries)'",
    ),
}


@pytest.mark.parametrize("exercise", EXERCISES)
def test_check_rejects_a_typical_mistake(exercise, tmp_path):
    mistake, message = MISTAKES[exercise]
    wrong = tmp_path / "wrong_solution.py"
    wrong.write_text((EXERCISES_DIR / exercise / "solution.py").read_text() + "\n" + mistake)
    result = run_check(exercise, "--module", str(wrong))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "FAIL" in result.stdout and message in result.stdout, output
    assert "hint:" in result.stdout and "expected:" in result.stdout, output
    assert "Traceback" not in output, output


def test_crashing_code_is_reported_with_its_line_not_a_traceback(tmp_path):
    crashing = tmp_path / "crashing.py"
    source = (EXERCISES_DIR / "05_adapt_or_not" / "solution.py").read_text()
    crashing.write_text(source + "\n\ndef keep_adapted(*args, **kwargs):\n    return 1 / 0\n")
    crash_line = len((source + "\n\ndef keep_adapted(*args, **kwargs):\n").splitlines()) + 1
    result = run_check("05_adapt_or_not", "--module", str(crashing))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "ERROR" in result.stdout and "ZeroDivisionError" in result.stdout, output
    assert f"crashing.py, line {crash_line}, in keep_adapted" in result.stdout, output
    assert "Traceback" not in output, output
