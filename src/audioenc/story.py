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
from pathlib import Path

STORY_WORKFLOW_OVERRIDES: tuple[str, ...] = ("weak.budget_seconds=30", "probe.budget_seconds=30")
"""The story's wall-clock budgets (per CRNN, per probe or adaptation), so that `make demo` stays
within 10 minutes on 2 CPU cores; the report names every model the budget stopped while its
validation loss was still falling. `audioenc workflow` itself has no budget by default."""


def codec_listening_report(codec_dir: Path) -> Path:
    """``codec_dir/listening/report.html``: the codec beside the reference systems on files of
    the embedded corpus (two files, 3 s each), with ViSQOL when the evaluation extra is installed."""
    from audioenc.audio.datasets import default_eigenscape_corpus
    from audioenc.listening_report import report_with_references
    from audioenc.metrics.file_evaluation import format_summary

    files = sorted(Path(default_eigenscape_corpus()).glob("*.wav"))
    page, evaluation = report_with_references(codec_dir, files, codec_dir / "listening", max_files=2)
    print(format_summary(evaluation.summary(200), evaluation.measures), flush=True)
    return page


def run_story(out: Path, seed: int = 0, progress: bool = True) -> dict:
    """Run the three parts into ``out``; returns the headline numbers (also in ``out/story.json``)."""
    from audioenc.config import build_config
    from audioenc.timing.demo import DemoConfig, run_short_demo
    from audioenc.timing.workflow import resolve_settings, run_workflow
    from audioenc.training.run import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    print("== 1/3 short encoder demo: what the clip summary hides ==", flush=True)
    demo = run_short_demo(out / "demo", DemoConfig(seed=seed))
    timings["demo_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    print("\n== 2/3 a small codec: audioenc train --1ch --preset small ==", flush=True)
    codec_dir = out / "codec"
    config = build_config("1ch", "small", [f"train.seed={seed}"])
    resume = (codec_dir / "checkpoint_last.pt").exists()
    codec_summary = train(config, codec_dir, resume=resume, progress=progress)
    timings["codec_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    listening = codec_listening_report(codec_dir)
    timings["listening_report_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    print("\n== 3/3 the lab workflow, the codec's encoder frozen ==", flush=True)
    print(f"settings: {' '.join(STORY_WORKFLOW_OVERRIDES)}", flush=True)
    report = run_workflow(encoder=codec_dir, out=out / "workflow", seed=seed,
                          settings=resolve_settings(overrides=STORY_WORKFLOW_OVERRIDES))
    timings["workflow_seconds"] = time.perf_counter() - start

    rows = [json.loads(line) for line in (codec_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    headline = {
        "codec": {
            "steps": codec_summary["steps"],
            "valid_mel_distance_untrained": rows[0]["mel_distance"] if rows[0]["epoch"] == 0 else None,
            "valid_mel_distance_best": codec_summary.get("best_mel_distance"),
            "model": str(codec_dir / "model_best.safetensors"),
        },
        "listening_report": str(listening),
        "demo": {name: str(out / "demo" / file) for name, file in demo["files"].items()},
        "workflow_report": str(out / "workflow" / "report.md"),
        "workflow": report.get("headline", {}) if isinstance(report, dict) else {},
        **timings,
    }
    (out / "story.json").write_text(json.dumps(headline, indent=2, default=str) + "\n")
    print("\n== done ==")
    print(f"codec: validation mel distance {headline['codec']['valid_mel_distance_untrained']:.4f} (untrained) -> "
          f"{headline['codec']['valid_mel_distance_best']:.4f} (best) after {codec_summary['steps']} steps")
    print(f"listening report (open in a browser): {listening}")
    print(f"report: {out / 'workflow' / 'report.md'}")
    print(f"plots:  {out / 'demo'}, {out / 'workflow'}")
    print(f"time:   demo {timings['demo_seconds']:.0f} s, codec {timings['codec_seconds']:.0f} s, "
          f"workflow {timings['workflow_seconds']:.0f} s")
    return headline
