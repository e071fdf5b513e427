"""``run_workflow``: the seven steps of the track in order, each timed and logged the same way,
then the note."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audioenc.outputs import RunFolderLock, check_output
from audioenc.timing.encoders import load_encoder
from audioenc.timing.workflow import report as report_module
from audioenc.timing.workflow.context import RunContext, RunInfo
from audioenc.timing.workflow.data import read_workflow_splits
from audioenc.timing.workflow.settings import WorkflowSettings
from audioenc.timing.workflow.steps import (
    step0_data,
    step1_pooling,
    step2_frames,
    step3_weak,
    step4_boundaries,
    step5_probe,
    step6_adapt,
)


@dataclass(frozen=True)
class Step:
    """One step of the track: its folder, the field of :class:`StepResults` it fills, its title
    and its ``run(context) -> result``."""

    folder: str
    result: str
    title: str
    run: Callable[[RunContext], object]

    @property
    def timing_key(self) -> str:
        """``0_data`` ... ``6_adapt`` (the keys of ``report.json``'s ``run.step_seconds``)."""
        return f"{int(self.folder[:2])}_{self.folder[3:]}"


STEPS: tuple[Step, ...] = tuple(
    Step(module.FOLDER, result, module.TITLE, module.run)
    for module, result in ((step0_data, "data"), (step1_pooling, "pooling"), (step2_frames, "frames"),
                           (step3_weak, "weak"), (step4_boundaries, "boundaries"), (step5_probe, "probe"),
                           (step6_adapt, "adaptation"))
)
STEP_FOLDERS: tuple[str, ...] = tuple(step.folder for step in STEPS)


def run_workflow(
    data: str | Path | None = None,
    encoder: str | Path | None = None,
    out: str | Path = Path("runs/workflow"),
    seed: int = 0,
    fast: bool = False,
    *,
    settings: WorkflowSettings | None = None,
    encoder_weights: str | None = None,
    log: Callable[[str], None] | None = None,
    overwrite: bool = True,
) -> dict:
    """Run the seven steps (:mod:`audioenc.timing.workflow`) into ``out`` and return the report.

    Args:
        data: corpus folder in the DESED-style layout; None = the embedded event corpus
            (generated into the data cache on first use).
        encoder: frozen encoder for step 5 (codec run folder / ``.safetensors`` / ``.pt``,
            weak-CRNN folder, ``.py`` or module name with the HEAR API); None = a weak-label
            CRNN trained here on the other classes.
        out: run folder, held by this process while it runs (:class:`~audioenc.outputs.RunFolderLock`).
            With ``overwrite`` a previous workflow's step folders and report in it are replaced; without
            it a non-empty ``out`` is refused (``audioenc workflow`` without ``--overwrite``).
        seed: every random choice (models, batches, carved splits, bootstrap) draws from it.
        fast: reduced sizes for tests (:meth:`WorkflowSettings.fast`).
        settings: explicit sizes (overrides ``fast``).
        encoder_weights: passed to a HEAR module's ``load_model``.
        log: progress lines (default ``print``).

    Returns:
        The content of ``report.json`` (see :func:`audioenc.timing.workflow.report.build_report`).
    """
    started = time.perf_counter()
    log = log or (lambda line: print(line, flush=True))
    settings = settings or (WorkflowSettings.fast() if fast else WorkflowSettings())
    out = check_output(out, "--out", overwrite=overwrite, folder=True)
    handle = load_encoder(encoder, encoder_weights) if encoder is not None else None  # fail before touching out
    if data is not None:  # an unusable corpus is refused here, before the run folder is touched
        read_workflow_splits(data, seed=seed, max_clips=settings.run.max_clips, own_encoder=encoder is None)
    with RunFolderLock(out, "--out"):
        return _run_steps(data, encoder, handle, out, seed, fast, settings, log, started)


def _run_steps(data: str | Path | None, encoder: str | Path | None, handle: object, out: Path, seed: int,
               fast: bool, settings: WorkflowSettings, log: Callable[[str], None], started: float) -> dict:
    """The body of :func:`run_workflow`, run while this process holds ``out``."""
    if (out / "report.json").exists():
        log(f"{out} holds an earlier workflow run: its step folders and report are replaced")
    for name in (*STEP_FOLDERS, "report.md", "report.json", "settings.json"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    settings.save(out / "settings.json")
    if data is None:
        from audioenc.audio.synth_events import default_event_corpus

        log("data: the embedded event corpus (made in the data cache on first use)")
        data = default_event_corpus(seed=0)
    context = RunContext(out=out, corpus_root=Path(data), seed=seed, settings=settings, encoder=handle, log=log)
    info = RunInfo(out, Path(data), str(encoder) if encoder is not None else None, seed, fast, settings)
    for number, step in enumerate(STEPS):
        step_started = time.perf_counter()
        log(f"step {number}/{len(STEPS)}: {step.title}")
        setattr(context.results, step.result, step.run(context))
        info.step_seconds[step.timing_key] = time.perf_counter() - step_started
        log(f"  ({info.step_seconds[step.timing_key]:.1f} s)")
    step_started = time.perf_counter()
    log(f"step {len(STEPS)}/{len(STEPS)}: the note (report.md, report.json)")
    info.step_seconds["7_note"] = 0.0
    info.wall_seconds = time.perf_counter() - started
    report = report_module.build_report(context.results, info, out)
    info.step_seconds["7_note"] = time.perf_counter() - step_started
    report["run"]["step_seconds"]["7_note"] = info.step_seconds["7_note"]
    report["run"]["wall_seconds"] = time.perf_counter() - started
    report_module.write_report(report, out)
    log(report_module.headline_text(report))
    log(f"report: {out / 'report.md'} ({report['run']['wall_seconds']:.0f} s)")
    return report
