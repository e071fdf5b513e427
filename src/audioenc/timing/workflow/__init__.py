"""The lab workflow of the Speech and Audio Encoders track: seven steps, one artifact each.

``run_workflow(data, encoder, out, seed)`` runs, in the track's order, each step writing into
its own folder of the run folder ``out``:

==== ================== ==================================================================
step folder             what it does and writes
==== ================== ==================================================================
0    ``00_data``        reads the DESED-layout corpus, validates every label row, extracts
                        log-mels; ``data.json`` and ``dropped.tsv`` (every row or file left
                        out, with its file and line)
1    ``01_pooling``     **clip summary and pooling choice**: one pooling-neutral frame scorer
                        (every frame trained towards its clip's labels, no pooling in its
                        loss), then the six pooling rules on the *same* frame scores (the
                        attention and AutoPool parameters fitted on the training clips);
                        clip AP and accuracy per rule: ``clip_metrics.tsv/json``,
                        ``pooled_levels.png``
2    ``02_frames``      **frame-level behaviour**: frame scores per class over time on sample
                        clips with the true events marked: ``frame_scores.png``,
                        ``frame_view.json``
3    ``03_weak``        **weak-label encoder**: the CRNN of :mod:`audioenc.timing.weak` trained
                        from clip labels only, once per pooling rule, same split, same seed:
                        ``<rule>/`` (weights), ``training.json``, ``training_curves.png``
4    ``04_boundaries``  **boundaries on positive clips only**: onset/offset errors, collar F1
                        and PSDS1/PSDS2 (sed_scores_eval) beside clip AP and accuracy; the
                        pooling rule chosen on the validation split; disagreements called
                        out: ``boundary_metrics.tsv/json``, ``event_errors.tsv``,
                        ``error_distributions.png``, ``onset_aligned_scores.png``,
                        ``around_boundaries.png``
5    ``05_probe``       **frozen encoder + probe against scratch**, same split, bootstrap
                        intervals over clips: ``comparison.tsv/json``, ``comparison.png``,
                        ``probe/``, ``encoder/`` and ``scratch/`` when trained here
6    ``06_adapt``       **light adaptation only if the frozen path stops short** (rule in
                        :class:`audioenc.timing.adapt.AdaptationRule`): ``adaptation.json``,
                        ``adapted/``, ``comparison.png`` when it ran
7    (root)             **the note**: ``report.md`` and ``report.json``
==== ================== ==================================================================

Data (``--data DIR``, default the embedded event corpus): the layout of
:mod:`audioenc.audio.synth_events` — ``DIR/audio/{train,validation,test}/`` and
``DIR/metadata/{split}_strong.tsv`` and/or ``{split}_weak.tsv``. ``train`` is required; a
missing ``validation`` or ``test`` split is carved from ``train`` (20 % each, seeded) and the
report says so. Any sample rate and channel count: clips are downmixed to mono (mean of the
channels) and resampled with soxr (24 kHz for the log-mel models, the encoder's own rate for
the frozen encoder). Training uses clip (weak) labels only; the boundary steps need strong
labels on the evaluation split and say so when they are absent.

The frozen encoder (step 5): ``--encoder`` (a codec run folder / ``model_best.safetensors`` /
``checkpoint_*.pt``, a weak-CRNN folder, or a HEAR module) probed on all classes; without it,
a weak-label CRNN trained here on the *other* classes (``held_out_classes`` are hidden from
it) and probed on the held-out ones — a transfer test, not a re-read of its own labels.

Layout: one module per step in :mod:`audioenc.timing.workflow.steps` (``step0_data`` ...
``step6_adapt``, listed once in ``STEPS``), each with its ``NAME``, ``FOLDER``, ``run(context) ->
result`` (a frozen result dataclass) and ``report_section(result, results)`` (its claims, report.json
sections and tables); :mod:`~audioenc.timing.workflow.run` runs them in order with one timing and
logging wrapper; :mod:`~audioenc.timing.workflow.report` assembles the steps' sections. Shared pieces:
``data`` (the corpus), ``context`` (what the steps share), ``jobs`` (CRNNs in processes),
``plots``, ``artifacts`` (writers and formatters), ``settings``.

Trustworthy conclusions: every model trains with early stopping on the validation split within
a stated budget (:class:`~audioenc.timing.workflow.settings.TrainingBudget`); every compared
system's frame scores are post-processed alike, the median filter and threshold chosen on
validation (:mod:`audioenc.timing.postprocess`); and no decision is drawn from a system that
learned nothing (:mod:`audioenc.timing.workflow.gates`): the report then says "no decision".
Settings: :mod:`audioenc.timing.workflow.settings` (sections, ``--config``, overrides; the
resolved settings are written to ``settings.json``). Data: the layout above or a DESED_task data
config (:mod:`audioenc.audio.desed`).

Run time: every model trains on one thread per process (the same numbers on any machine for
a seed, unless a wall-clock budget stops it); the CRNN trainings run in ``run.workers`` processes
at once. ``fast=True`` is a reduced run for tests.
"""

from audioenc.timing.workflow.data import WorkflowData, channel_policy, load_workflow_data
from audioenc.timing.workflow.run import STEP_FOLDERS, run_workflow
from audioenc.timing.workflow.settings import WorkflowSettings, resolve_settings
from audioenc.timing.workflow.steps import STEPS

__all__ = [
    "STEPS",
    "STEP_FOLDERS",
    "WorkflowData",
    "WorkflowSettings",
    "channel_policy",
    "load_workflow_data",
    "resolve_settings",
    "run_workflow",
]
