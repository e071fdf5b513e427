"""The weak-label ablation table: one CRNN per row, measured exactly as the workflow measures it.

    python benchmarks/real_events/ablation.py --data /tmp/drum_events/desed.yaml --out runs/ablation-drums

Rows (:data:`ROWS`; ``--rows`` picks some, dependencies are added), all with the same seed, split,
pooling rule and training budget; each row is a list of ``audioenc workflow`` settings overrides, so
``audioenc workflow --data CORPUS weak.budget_seconds=... <the row's overrides>`` trains the same CRNN:

==============================  ===============================================================
small                           the small CRNN (``crnn.preset=small``, its defaults), no augmentation
small_mixup                     + mixup of clips (alpha 0.2, DESED_task's)
small_masks                     + SpecAugment masks (1 time mask <= 20 frames, 2 frequency masks <= 8 bands)
small_shift_gain                + roll time shift (<= 50 frames) and gain (+-6 dB)
small_all_aug                   all four above together
small_all_aug_mt                + mean teacher (EMA 0.99, consistency weight 2 ramped over 5 epochs)
small_all_aug_mt_per_class      the same model, median window and threshold chosen per class (DCASE 2024)
dcase                           ``crnn.preset=dcase`` (DCASE 2023 task 4 baseline CRNN and log-mels), plain
dcase_best                      dcase + the small row with the best *validation* collar F1 (its augment and
                                post-processing settings); when that row is plain ``small``, the dcase row itself
==============================  ===============================================================

The mean teacher's EMA decay is 0.99, not DESED_task's 0.999: 300 clips in batches of 16 give ~19
steps an epoch, ~760 in 40 epochs, and a 0.999 teacher (time constant 1,000 steps) would still be
mostly its random start when training stops. Its consistency clips are the corpus's unlabeled clips
when its DESED config names ``unlabeled_folder``, else the labeled batch (:func:`unlabeled_features`).

Per row, the pieces of the workflow's steps 3-5 in their order, called as they call them: the CRNN is
trained by :func:`~audioenc.timing.weak.train_weak_encoder` with the budget step 3's jobs pass (up to
``weak.max_epochs``, ``weak.patience``, a wall-clock ``weak.budget_seconds``), scored by
:func:`~audioenc.timing.weak.predict`; the median window and threshold are chosen on validation by
:func:`~audioenc.timing.postprocess.choose_postprocessing` (step 4); the test split is measured by a
:class:`~audioenc.timing.evaluation.ClipEvaluator` built as step 5 builds its own (bootstrap intervals
of clip mAP, collar F1 and, with ``evaluation.psds_resamples`` = 50 here, PSDS1/PSDS2), and gated by
step 4's sanity gates. The validation collar F1 that picks ``dcase_best`` is step 4's selection metric.

Each finished row writes ``OUT/<row>.json`` (and its weights to ``OUT/<row>/``); a rerun skips rows
whose JSON exists, so a stopped run resumes. Rows run in ``--workers`` processes (fork), each on one
torch thread; the corpus is featurised once per feature setting in the parent, before the fork.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from audioenc.audio.desed import is_desed_config
from audioenc.audio.formats import EventSplit
from audioenc.audio.synth_events import default_event_corpus
from audioenc.errors import UserError
from audioenc.textfiles import read_json, read_yaml
from audioenc.timing.evaluation import ClipEvaluator, clip_metrics
from audioenc.timing.features import LogMelConfig, split_log_mels
from audioenc.timing.postprocess import choose_postprocessing
from audioenc.timing.weak import FeatureSet, load_weak_encoder, predict, save_weak_encoder, train_weak_encoder
from audioenc.timing.workflow.artifacts import number, write_json
from audioenc.timing.workflow.data import WorkflowData, load_workflow_data, one_thread
from audioenc.timing.workflow.gates import chance_map, check_learned
from audioenc.timing.workflow.settings import WorkflowSettings, resolve_settings

MIXUP = ("augment.mixup_alpha=0.2",)
MASKS = ("augment.time_masks=1", "augment.freq_masks=2")
SHIFT_GAIN = ("augment.shift_frames=50", "augment.gain_db=6")
MEAN_TEACHER = ("augment.mean_teacher=true", "augment.ema_decay=0.99")
PER_CLASS = ("postprocess.per_class=true",)
DCASE = ("crnn.preset=dcase",)
INTERVAL_METRICS = ("clip_map", "collar_f1", "psds1", "psds2", "onset_within", "median_abs_onset")
"""Metrics given 95 % bootstrap intervals (PSDS's need ``evaluation.psds_resamples`` > 0)."""


@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        name: its key (file names, ``--rows``).
        label: what it is, for the table.
        overrides: ``audioenc workflow`` settings overrides on top of the shared ones.
        model_from: a row whose trained CRNN this row reuses (only its post-processing differs).
        best_of: rows among which the best validation collar F1 lends this row its non-CRNN overrides.
        plain: the row this one equals when the best lends nothing (its model and numbers are then reused).
    """

    name: str
    label: str
    overrides: tuple[str, ...] = ()
    model_from: str | None = None
    best_of: tuple[str, ...] = ()
    plain: str | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        """Rows that must finish before this one starts."""
        return tuple(name for name in (self.model_from, self.plain) if name) + self.best_of


SMALL_ROWS: tuple[Row, ...] = (
    Row("small", "small (crnn.preset=small, defaults)"),
    Row("small_mixup", "small + mixup", MIXUP),
    Row("small_masks", "small + time/freq masks", MASKS),
    Row("small_shift_gain", "small + shift & gain", SHIFT_GAIN),
    Row("small_all_aug", "small + all augmentations", MIXUP + MASKS + SHIFT_GAIN),
    Row("small_all_aug_mt", "+ mean teacher", MIXUP + MASKS + SHIFT_GAIN + MEAN_TEACHER),
    Row(
        "small_all_aug_mt_per_class",
        "+ per-class post-processing",
        MIXUP + MASKS + SHIFT_GAIN + MEAN_TEACHER + PER_CLASS,
        model_from="small_all_aug_mt",
    ),
)
ROWS: tuple[Row, ...] = SMALL_ROWS + (
    Row("dcase", "dcase preset (plain)", DCASE),
    Row(
        "dcase_best",
        "dcase + the best combination above",
        DCASE,
        best_of=tuple(row.name for row in SMALL_ROWS),
        plain="dcase",
    ),
)
ROW_NAMES: tuple[str, ...] = tuple(row.name for row in ROWS)


# =========================================================================== settings and rows


def base_overrides(
    budget_seconds: float, max_epochs: int, patience: int, psds_resamples: int, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """The overrides every row shares (budget, PSDS intervals), then the caller's ``--set`` ones."""
    return (
        f"weak.max_epochs={max_epochs}",
        f"weak.patience={patience}",
        f"weak.budget_seconds={budget_seconds:g}",
        f"evaluation.psds_resamples={psds_resamples}",
        *extra,
    )


def row_settings(row: Row, shared: Sequence[str], dcase_shared: Sequence[str]) -> WorkflowSettings:
    """The workflow settings of ``row``: the shared overrides of its preset (``dcase_shared`` for a
    dcase row: its own budget), then its own."""
    dcase = any(item.replace(" ", "") == "crnn.preset=dcase" for item in row.overrides)
    return resolve_settings(overrides=(*(dcase_shared if dcase else shared), *row.overrides))


def selected_rows(names: Iterable[str]) -> list[Row]:
    """``names`` and every row they need, in :data:`ROWS` order; an unknown name is a UserError."""
    by_name = {row.name: row for row in ROWS}
    wanted, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name not in by_name:
            raise UserError(f"--rows: unknown row {name!r}; choose from {', '.join(ROW_NAMES)}")
        if name not in wanted:
            wanted.add(name)
            stack.extend(by_name[name].needs)
    return [row for row in ROWS if row.name in wanted]


def ready(pending: Sequence[Row], finished: Iterable[str]) -> list[Row]:
    """The pending rows whose needs have all finished, in order."""
    done = set(finished)
    return [row for row in pending if all(need in done for need in row.needs)]


def best_source(records: Mapping[str, Mapping], candidates: Sequence[str]) -> str:
    """Among ``candidates``' records, the row with the highest validation collar F1 (ties: fewer
    overrides, then earlier in ``candidates``); a candidate without a number never wins."""

    def key(item: tuple[int, str]) -> tuple:
        index, name = item
        value = records[name]["validation"]["collar_f1"]
        return (value if value is not None else -1.0, -len(records[name]["overrides"]), -index)

    return max(enumerate(candidates), key=key)[1]


def with_best(row: Row, source: Row) -> Row:
    """``row`` (a dcase row) plus ``source``'s augment and post-processing overrides; the label names ``source``.
    When ``source`` adds nothing, the row is its ``plain`` row again: that row's model is reused, not retrained."""
    borrowed = tuple(item for item in source.overrides if item.split("=", 1)[0].split(".")[0] != "crnn")
    label = f"{row.label} ({source.name})"
    if not borrowed:
        return replace(row, label=f"{label} = {row.plain}", model_from=row.plain)
    return replace(row, label=label, overrides=row.overrides + borrowed)


# =========================================================================== data


def unlabeled_features(corpus: Path, config: LogMelConfig) -> FeatureSet | None:
    """Clips without labels for the mean teacher: the audio files of ``data.unlabeled_folder`` of a
    DESED data config (DESED_task's key; relative to the config's folder), None when it names none."""
    if not is_desed_config(corpus):
        return None
    content = read_yaml(corpus, "DESED data config", "A DESED data config has a `data:` section.")
    section = content.get("data", content) if isinstance(content, dict) else {}
    folder = section.get("unlabeled_folder") if isinstance(section, dict) else None
    if not folder:
        return None
    folder = Path(folder) if Path(folder).is_absolute() else corpus.parent / folder
    files = sorted(path.name for path in folder.glob("*") if path.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise UserError(f"{corpus}: unlabeled_folder {folder} holds no .wav/.flac file; fix the path or remove the key")
    split = EventSplit("unlabeled", folder, files, {}, {name: () for name in files}, None, ())
    with one_thread():
        return FeatureSet(split, split_log_mels(folder, files, config), config)


_DATA: dict[LogMelConfig, tuple[WorkflowData, FeatureSet | None]] = {}
"""The corpus per feature setting, loaded in the parent before the workers fork (shared copy-on-write)."""


def load_data(corpus: Path, settings: Iterable[WorkflowSettings], seed: int) -> None:
    """Featurise ``corpus`` once per distinct feature setting (and read its unlabeled clips); forgets any
    corpus loaded before."""
    _DATA.clear()
    for item in settings:
        if item.features not in _DATA:
            print(f"featurising {corpus} at {item.features}", flush=True)
            data = load_workflow_data(corpus, seed=seed, max_clips=item.run.max_clips, feature_config=item.features)
            _DATA[item.features] = (data, unlabeled_features(corpus, item.features))


# =========================================================================== one row


def run_row(row: Row, settings: WorkflowSettings, out: Path, pooling: str, seed: int) -> dict:
    """Train (or reuse) the row's CRNN, post-process on validation, measure on test; write ``OUT/<row>.json``."""
    started = time.perf_counter()
    data, unlabeled = _DATA[settings.features]
    classes, evaluation, budget = data.classes, settings.evaluation, settings.weak
    log = _logger(row.name)
    with one_thread():
        if row.model_from:
            model = load_weak_encoder(out / row.model_from)
            source = read_json(out / f"{row.model_from}.json", "ablation row")
            training = dict(source["training"], reused_from=row.model_from)
        else:
            model, history = train_weak_encoder(
                (data.features["train"], data.features["validation"]),
                pooling,
                seed,
                epochs=budget.max_epochs,
                batch_size=budget.batch_size,
                learning_rate=budget.learning_rate,
                config=settings.crnn,
                classes=classes,
                patience=budget.patience,
                budget_seconds=budget.budget_seconds,
                log=log,
                augment=settings.augment,
                unlabeled=unlabeled if settings.augment.mean_teacher else None,
            )
            save_weak_encoder(model, out / row.name)
            training = {
                "seconds": time.perf_counter() - started,
                "epochs_run": len(history.valid_loss),
                "best_epoch": history.best_epoch + 1,
                "stopped": history.stopped,
                "still_improving": history.still_improving,
                "history": history.as_dict(),
                "unlabeled_clips": len(unlabeled.split.files) if unlabeled and settings.augment.mean_teacher else 0,
            }
        evaluated = time.perf_counter()
        raw = {name: predict(model, data.features[name].log_mels) for name in ("validation", "test")}
        post = choose_postprocessing(
            raw["validation"], data.splits["validation"], classes, settings.postprocess, **evaluation.collars
        )
        valid = ClipEvaluator(
            data.splits["validation"], classes, resamples=1, seed=seed, onset_only_collars=(), **evaluation.collars
        )
        selection = valid.evaluate(post.apply(raw["validation"]), with_psds=False, interval_metrics=()).point
        test = ClipEvaluator(
            data.splits["test"],
            classes,
            evaluation.bootstrap_resamples,
            seed=seed,
            f1_resamples=evaluation.f1_resamples,
            psds_resamples=evaluation.psds_resamples,
            onset_only_collars=evaluation.onset_only_collars,
            **evaluation.collars,
        )
        result = test.evaluate(
            post.apply(raw["test"]), with_psds=test.boundaries_available, interval_metrics=INTERVAL_METRICS
        )
    chance = chance_map(test.targets)
    gate = check_learned(f"the {row.name} CRNN", result, chance, evaluation.min_detected_share)
    record = {
        "row": row.name,
        "label": row.label,
        "overrides": list(row.overrides),
        "model_from": row.model_from,
        "pooling": pooling,
        "seed": seed,
        "corpus": str(data.root),
        "settings": settings.to_dict(),
        "parameters": model.parameter_count,
        "frame_rate": model.frame_rate,
        "training": training,
        "postprocessing": post.to_json(),
        "validation": {"collar_f1": selection.get("collar_f1"), "clip_map": selection.get("clip_map")},
        "test": result.to_json(),
        "test_clip": clip_metrics(raw["test"].stacked_clip_scores(test.files), test.targets, classes).to_json(),
        "chance_map": chance,
        "gate": gate.to_json(),
        "seconds": {
            "training": 0.0 if row.model_from else training["seconds"],
            "evaluation": time.perf_counter() - evaluated,
            "total": time.perf_counter() - started,
        },
        "torch_threads": torch.get_num_threads(),
    }
    write_json(out / f"{row.name}.json", record)
    log(f"done in {record['seconds']['total']:.0f} s: {summary_line(record)}")
    return record


def _logger(name: str) -> Callable[[str], None]:
    def log(line: str) -> None:
        print(f"[{name}] {line}", flush=True)

    return log


def _init_worker() -> None:
    torch.set_num_threads(1)


# =========================================================================== the schedule

START_ORDER: tuple[str, ...] = (
    "dcase",
    "small_all_aug_mt",
    "small",
    "small_mixup",
    "small_masks",
    "small_shift_gain",
    "small_all_aug",
    "small_all_aug_mt_per_class",
    "dcase_best",
)
"""The order rows start in: the longest first, then the one another row reuses, so that two workers
stay busy until the last row (``dcase_best`` must wait for every small row)."""


def run_ablation(
    corpus: Path,
    rows: Sequence[Row],
    settings_of: Callable[[Row], WorkflowSettings],
    out: Path,
    *,
    pooling: str,
    seed: int,
    workers: int,
) -> dict[str, dict]:
    """Run the unfinished ``rows`` (a row starts when its needs are finished), ``workers`` at a time;
    returns every row's record, the finished ones read back from ``out``."""
    records = {row.name: read_json(out / f"{row.name}.json", "ablation row") for row in rows if _done(out, row)}
    pending = sorted((row for row in rows if row.name not in records), key=lambda row: START_ORDER.index(row.name))
    if not pending:
        return records
    by_name = {row.name: row for row in ROWS}

    def prepared(row: Row) -> tuple[Row, WorkflowSettings]:
        if row.best_of:
            source = best_source(records, row.best_of)
            print(f"[{row.name}] takes the settings of {source} (best validation collar F1)", flush=True)
            row = with_best(row, by_name[source])
        return row, settings_of(row)

    # A best-of row's features are its preset's, so the rows as declared name every feature setting.
    load_data(corpus, [settings_of(row) for row in pending], seed)
    if workers <= 1:
        while pending:
            row, settings = prepared(ready(pending, records)[0])
            records[row.name] = run_row(row, settings, out, pooling, seed)
            pending = [item for item in pending if item.name != row.name]
        return records
    import multiprocessing

    # fork: the workers share the parent's features copy-on-write (as the workflow's CRNN jobs do).
    context = multiprocessing.get_context("fork")
    running: dict[Future, str] = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        while pending or running:
            for row in ready(pending, records)[: workers - len(running)]:
                row_now, settings = prepared(row)
                running[pool.submit(run_row, row_now, settings, out, pooling, seed)] = row.name
                pending = [item for item in pending if item.name != row.name]
            if not running:
                raise RuntimeError(f"rows {[row.name for row in pending]} wait for rows that never ran")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                records[running.pop(future)] = future.result()
    return records


def _done(out: Path, row: Row) -> bool:
    return (out / f"{row.name}.json").is_file()


# =========================================================================== the table


def _ci(block: Mapping, metric: str) -> str:
    """``value [low, high]`` from an evaluation's JSON (``n/a`` parts where undefined)."""
    value = block["point"].get(metric)
    interval = block["intervals"].get(metric)
    if interval is None:
        return number(value)
    return f"{number(value)} [{number(interval['low'])}, {number(interval['high'])}]"


def _postprocessing(post: Mapping) -> str:
    if "per_class" in post:
        own = sum(1 for item in post["per_class"].values() if item["own"])
        return f"per class ({own} of {len(post['per_class'])} own)"
    return f"{post['median_frames']} fr / {post['threshold']:g}"


def _epochs(training: Mapping) -> str:
    text = f"{training['epochs_run']} ({training['best_epoch']}, {training['stopped'].replace('_', ' ')}"
    text += ", improving)" if training["still_improving"] else ")"
    return text + (f" = {training['reused_from']}" if training.get("reused_from") else "")


def _detected(test: Mapping) -> str:
    summary = test["boundary"].get("summary") or {}
    return f"{summary['detected']}/{summary['events']}" if summary.get("events") else "n/a"


def summary_line(record: Mapping) -> str:
    """One line: the row's headline numbers (for logs)."""
    point = record["test"]["point"]
    return (
        f"clip mAP {number(point.get('clip_map'))}, collar F1 {number(point.get('collar_f1'))}, "
        f"onset F1 200 ms {number(point.get('onset_f1_200ms'))}, PSDS1 {number(point.get('psds1'))}, "
        f"PSDS2 {number(point.get('psds2'))}"
    )


def markdown_table(records: Sequence[Mapping]) -> str:
    """The ablation table, one line per record (test split; intervals: 95 % bootstrap; learned: step 4's
    sanity gates passed)."""
    lines = [
        "| row | learned | parameters | clip mAP [95 % CI] | collar F1 [95 % CI] | onset F1 200 ms | PSDS1 [95 % CI] "
        "| PSDS2 [95 % CI] | detected | valid. collar F1 | median / threshold | epochs (best, stop) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        test, learned = record["test"], "yes" if record["gate"]["passed"] else "no"
        lines.append(
            f"| {record['label']} | {learned} | {record['parameters']:,} | {_ci(test, 'clip_map')} "
            f"| {_ci(test, 'collar_f1')} "
            f"| {number(test['point'].get('onset_f1_200ms'))} | {_ci(test, 'psds1')} | {_ci(test, 'psds2')} "
            f"| {_detected(test)} | {number(record['validation']['collar_f1'])} "
            f"| {_postprocessing(record['postprocessing'])} | {_epochs(record['training'])} "
            f"| {record['seconds']['total']:.0f} |"
        )
    return "\n".join(lines)


def per_class_table(records: Sequence[Mapping]) -> str:
    """Per class and row: test collar F1 / clip AP (where a row's numbers come from)."""
    classes = list(records[0]["test"]["boundary"]["collar_f1"]["per_class"]) if records else []
    lines = [
        "| row | " + " | ".join(f"{name} F1 / AP" for name in classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for record in records:
        f1 = record["test"]["boundary"]["collar_f1"]["per_class"]
        ap = record["test_clip"]["per_class_ap"]
        cells = [f"{number(f1.get(name))} / {number(ap.get(name))}" for name in classes]
        lines.append(f"| {record['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# =========================================================================== command line


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="corpus folder or DESED data config (default: the embedded corpus)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the rows' JSON records and weights")
    parser.add_argument("--rows", default=",".join(ROW_NAMES), help=f"comma-separated, of: {', '.join(ROW_NAMES)}")
    parser.add_argument("--budget-seconds", type=float, default=240.0, help="wall-clock budget of a small CRNN")
    parser.add_argument("--dcase-budget-seconds", type=float, default=420.0, help="budget of a dcase-preset CRNN")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--psds-resamples", type=int, default=50, help="bootstrap resamples of PSDS1/PSDS2")
    parser.add_argument("--pooling", default="linear_softmax", help="one pooling rule for every row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="rows trained at once (1: in this process)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more workflow overrides, every row")
    args = parser.parse_args(argv)
    corpus = args.data if args.data is not None else default_event_corpus(seed=0)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = selected_rows(name.strip() for name in args.rows.split(",") if name.strip())
    shared = base_overrides(args.budget_seconds, args.max_epochs, args.patience, args.psds_resamples, args.set)
    dcase_shared = base_overrides(
        args.dcase_budget_seconds, args.max_epochs, args.patience, args.psds_resamples, args.set
    )
    started = time.perf_counter()
    records = run_ablation(
        corpus,
        rows,
        lambda row: row_settings(row, shared, dcase_shared),
        args.out,
        pooling=args.pooling,
        seed=args.seed,
        workers=args.workers,
    )
    ordered = [records[row.name] for row in rows]
    wall = time.perf_counter() - started
    print(f"\nCorpus {corpus}, pooling {args.pooling}, seed {args.seed}; this invocation {wall:.0f} s.")
    print(f"Shared overrides: small {' '.join(shared)}; dcase {' '.join(dcase_shared)}.\n")
    print(markdown_table(ordered))
    print()
    print(per_class_table(ordered))


if __name__ == "__main__":
    main()
