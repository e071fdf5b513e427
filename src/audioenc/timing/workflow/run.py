"""``run_workflow``: the seven steps of the track in order, each timed and logged the same way,
then the note."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from audioenc.audio.synth_events import default_event_corpus
from audioenc.errors import UserError
from audioenc.outputs import RunFolderLock, check_output
from audioenc.timing.encoders import EncoderHandle, load_encoder
from audioenc.timing.workflow.context import RunContext, RunInfo
from audioenc.timing.workflow.data import read_workflow_splits
from audioenc.timing.workflow.report import assemble_note, headline_text, note_sections, write_note
from audioenc.timing.workflow.settings import WorkflowSettings
from audioenc.timing.workflow.steps import STEPS, timing_key

STEP_FOLDERS: tuple[str, ...] = tuple(step.FOLDER for step in STEPS)


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
        encoder: frozen encoder for step 5 (:func:`~audioenc.timing.encoders.load_encoder`: a
            ``transformers`` snapshot folder, a codec run folder / ``.safetensors`` / ``.pt``, a weak-CRNN
            folder, a named encoder such as ``crepe-tiny``, a ``.py`` or module name with the HEAR API),
            loaded with the options of ``settings.encoder``; None = a weak-label CRNN trained here on the
            other classes (then ``settings.encoder`` must stay at its defaults).
        out: run folder, held by this process while it runs (:class:`~audioenc.outputs.RunFolderLock`).
            With ``overwrite`` a previous workflow's step folders and report in it are replaced; without
            it a non-empty ``out`` is refused (``audioenc workflow`` without ``--overwrite``).
        seed: every random choice (models, batches, carved splits, bootstrap) draws from it.
        fast: reduced sizes for tests (:meth:`WorkflowSettings.fast`).
        settings: explicit sizes (overrides ``fast``).
        encoder_weights: a named encoder's weight file, or passed to a HEAR module's ``load_model``.
        log: progress lines (default ``print``).

    Returns:
        The content of ``report.json`` (see :mod:`audioenc.timing.workflow.report`).
    """
    started = time.perf_counter()
    log = log or (lambda line: print(line, flush=True))
    settings = settings or (WorkflowSettings.fast() if fast else WorkflowSettings())
    out = check_output(out, "--out", overwrite=overwrite, folder=True)
    handle = _load_frozen_encoder(encoder, encoder_weights, settings.encoder.options())  # fail before touching out
    if data is not None:  # an unusable corpus is refused here, before the run folder is touched
        read_workflow_splits(data, seed=seed, max_clips=settings.run.max_clips, own_encoder=encoder is None)
    with RunFolderLock(out, "--out"):
        return _run_steps(data, encoder, handle, out, seed, fast, settings, log, started)


def _load_frozen_encoder(encoder: str | Path | None, weights: str | None, options: dict) -> EncoderHandle | None:
    """Step 5's encoder loaded with the ``encoder`` settings that differ from their defaults; None without
    ``--encoder``, when those settings must be the defaults (the CRNN trained here takes none)."""
    if encoder is not None:
        return load_encoder(encoder, weights, **options)
    if options:
        given = ", ".join(f"encoder.{name}={value!r}" for name, value in options.items())
        raise UserError(
            f"{given} set but no --encoder given: step 5 then probes a weak-label CRNN trained here, which takes "
            "no encoder options; give --encoder (a transformers snapshot folder, crepe-tiny, ...) or drop the setting"
        )
    return None


def _run_steps(
    data: str | Path | None,
    encoder: str | Path | None,
    handle: object,
    out: Path,
    seed: int,
    fast: bool,
    settings: WorkflowSettings,
    log: Callable[[str], None],
    started: float,
) -> dict:
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
        log("data: the embedded event corpus (made in the data cache on first use)")
        data = default_event_corpus(seed=0)
    context = RunContext(out=out, corpus_root=Path(data), seed=seed, settings=settings, encoder=handle, log=log)
    info = RunInfo(out, Path(data), str(encoder) if encoder is not None else None, seed, fast, settings)
    for number, step in enumerate(STEPS):
        step_started = time.perf_counter()
        log(f"step {number}/{len(STEPS)}: {step.TITLE}")
        context.results[step.NAME] = step.run(context)
        info.step_seconds[timing_key(step)] = time.perf_counter() - step_started
        log(f"  ({info.step_seconds[timing_key(step)]:.1f} s)")
    step_started = time.perf_counter()
    log(f"step {len(STEPS)}/{len(STEPS)}: the note (report.md, report.json)")
    sections = note_sections(context.results, out)
    info.step_seconds["7_note"] = time.perf_counter() - step_started
    info.wall_seconds = time.perf_counter() - started
    note = assemble_note(sections, info)
    write_note(note, out)
    log(headline_text(note.report))
    log(f"report: {out / 'report.md'} ({info.wall_seconds:.0f} s)")
    return note.report
