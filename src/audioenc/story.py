"""The whole story on embedded data, what `make demo` runs (≤ 10 minutes on 2 CPU cores):

1. the short encoder demo (clip summary against the frame view);
2. a small codec trained by the real trainer (``--1ch --preset small``) on the embedded
   eigenscape-like corpus;
3. the timing-aware lab workflow on the embedded event corpus, with that codec's encoder as
   the frozen encoder (its 75 Hz latents, through the HEAR API).

Everything lands in one folder (default ``runs/story``); it ends by printing where the report and
plots are, and the headline numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from audioenc.audio.datasets import default_eigenscape_corpus
from audioenc.config import Config, build_config
from audioenc.core.atomic import write_json
from audioenc.errors import UserError
from audioenc.listening_report import report_with_references
from audioenc.metrics.file_evaluation import format_summary
from audioenc.models.files import load_training_state, require_training_state
from audioenc.timing.demo import DemoConfig, run_short_demo
from audioenc.timing.workflow import WorkflowSettings, resolve_settings, run_workflow
from audioenc.training.checkpoint import check_compatible, describe_changes, training_changes
from audioenc.training.run import train

STORY_WORKFLOW_OVERRIDES: tuple[str, ...] = ("weak.budget_seconds=30", "probe.budget_seconds=30")
"""The story's wall-clock budgets (per CRNN, per probe or adaptation), so that `make demo` stays
within 10 minutes on 2 CPU cores; the report names every model the budget stopped while its
validation loss was still falling. `audioenc workflow` itself has no budget by default."""


STORY_PARTS: tuple[str, ...] = ("demo", "codec", "workflow")
"""The folders the story writes into ``out``, one per part."""


def codec_listening_report(codec_dir: Path) -> Path:
    """``codec_dir/listening/report.html``: the codec beside the reference systems on files of
    the embedded corpus (two files, 3 s each), with ViSQOL when the evaluation extra is installed."""
    files = sorted(Path(default_eigenscape_corpus()).glob("*.wav"))
    page, evaluation = report_with_references(codec_dir, files, codec_dir / "listening", max_files=2)
    print(format_summary(evaluation.summary(200), evaluation.measures), flush=True)
    return page


def format_distance(value: float | None) -> str:
    """A validation mel distance for the closing lines; ``None`` (no epoch-0 baseline row, e.g. a
    resumed codec run, or no best yet) reads "n/a" instead of failing the story at its very end."""
    return "n/a" if value is None else f"{value:.4f}"


def untrained_distance(metrics_path: Path) -> float | None:
    """The untrained codec's validation mel distance: the epoch-0 row of ``metrics.jsonl``, or
    ``None`` when the history holds no such row (a run resumed from a checkpoint after it)."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    baseline = [row for row in rows if row.get("epoch") == 0]
    return baseline[0].get("mel_distance") if baseline else None


def codec_line(codec: dict) -> str:
    """The closing line on the codec: untrained -> best validation mel distance, and its steps."""
    return (
        f"codec: validation mel distance {format_distance(codec['valid_mel_distance_untrained'])} (untrained) -> "
        f"{format_distance(codec['valid_mel_distance_best'])} (best) after {codec['steps']} steps"
    )


def resumable_codec(out: Path, config: Config) -> bool:
    """Whether ``out/codec`` holds a codec run that this story continues (``False``: none yet).

    Checked before any part of the story writes: a rerun into the same ``--out`` with another
    ``--seed`` (or a damaged checkpoint) would otherwise replace the short demo's files and only
    then be refused by the trainer, leaving a story made of two runs; and the trainer's advice
    (--run-dir, --allow-changed-training) names options `audioenc demo` does not have.
    """
    for part in STORY_PARTS:
        if (Path(out) / part).exists() and not (Path(out) / part).is_dir():
            raise UserError(
                f"--out {out}: {Path(out) / part} is a file where the story writes its {part} "
                "folder; move it away or choose a new --out."
            )
    last = Path(out) / "codec" / "checkpoint_last.pt"
    if not last.exists():
        return False
    fresh = f"delete {last.parent} to train the story's codec again, or choose a new --out"
    try:
        state = require_training_state(load_training_state(last), last)
        check_compatible(state["config"], config, last)
    except (UserError, OSError):
        raise UserError(
            f"--out {out}: the story's codec checkpoint {last} cannot be continued (damaged, "
            f"or made with another model configuration); {fresh}."
        ) from None
    changes = training_changes(state["config"], config)
    if changes:
        raise UserError(
            f"--out {out} holds a story whose codec was trained with other settings "
            f"({describe_changes(changes)}): rerun with that story's --seed to continue it, or {fresh}."
        )
    return True


def run_story(
    out: Path,
    seed: int = 0,
    progress: bool = True,
    *,
    demo_config: DemoConfig | None = None,
    codec_overrides: Sequence[str] = (),
    workflow_settings: WorkflowSettings | None = None,
) -> dict:
    """Run the three parts into ``out``; returns the headline numbers (also in ``out/story.json``).

    The sizes default to what `make demo` runs; ``demo_config``, ``codec_overrides`` (``key=value``
    after the small preset) and ``workflow_settings`` shrink them, so that the whole story can be
    checked end to end in a test within minutes.
    """
    out = Path(out)
    config = build_config("1ch", "small", [f"train.seed={seed}", *codec_overrides])
    resume = resumable_codec(out, config)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    print("== 1/3 short encoder demo: what the clip summary hides ==", flush=True)
    demo = run_short_demo(out / "demo", demo_config or DemoConfig(seed=seed))
    timings["demo_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    print("\n== 2/3 a small codec: audioenc train --1ch --preset small ==", flush=True)
    codec_dir = out / "codec"
    codec_summary = train(config, codec_dir, resume=resume, progress=progress)
    timings["codec_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    listening = codec_listening_report(codec_dir)
    timings["listening_report_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    print("\n== 3/3 the lab workflow, the codec's encoder frozen ==", flush=True)
    if workflow_settings is None:
        print(f"settings: {' '.join(STORY_WORKFLOW_OVERRIDES)}", flush=True)
        workflow_settings = resolve_settings(overrides=STORY_WORKFLOW_OVERRIDES)
    report = run_workflow(encoder=codec_dir, out=out / "workflow", seed=seed, settings=workflow_settings)
    timings["workflow_seconds"] = time.perf_counter() - start

    headline = {
        "codec": {
            "steps": codec_summary["steps"],
            "valid_mel_distance_untrained": untrained_distance(codec_dir / "metrics.jsonl"),
            "valid_mel_distance_best": codec_summary.get("best_mel_distance"),
            "model": str(codec_dir / "model_best.safetensors"),
        },
        "listening_report": str(listening),
        "demo": {name: str(out / "demo" / file) for name, file in demo["files"].items()},
        "workflow_report": str(out / "workflow" / "report.md"),
        "workflow": report.get("headline", {}) if isinstance(report, dict) else {},
        **timings,
    }
    write_json(out / "story.json", headline, default=str)
    print("\n== done ==")
    print(codec_line(headline["codec"]))
    print(f"listening report (open in a browser): {listening}")
    print(f"report: {out / 'workflow' / 'report.md'}")
    print(f"plots:  {out / 'demo'}, {out / 'workflow'}")
    print(
        f"time:   demo {timings['demo_seconds']:.0f} s, codec {timings['codec_seconds']:.0f} s, "
        f"workflow {timings['workflow_seconds']:.0f} s"
    )
    return headline
