"""What the steps of one workflow run share: the run folder, the seed, the settings, the log, and
the typed results of the steps run so far (:class:`~audioenc.timing.workflow.results.StepResults`);
and :class:`RunInfo`, how the run was made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from audioenc.timing.encoders import EncoderHandle
from audioenc.timing.workflow.artifacts import clean
from audioenc.timing.workflow.data import WorkflowData
from audioenc.timing.workflow.results import StepResults
from audioenc.timing.workflow.settings import WorkflowSettings


@dataclass
class RunContext:
    """One workflow run.

    Attributes:
        out: the run folder.
        corpus_root: the corpus folder given (step 0 reads it).
        seed: every random choice draws from it.
        settings: sizes (:class:`~audioenc.timing.workflow.settings.WorkflowSettings`).
        encoder: the frozen encoder the user named (None: step 5 trains one).
        log: progress lines.
        results: the steps' typed results so far.
    """

    out: Path
    corpus_root: Path
    seed: int
    settings: WorkflowSettings
    encoder: EncoderHandle | None
    log: Callable[[str], None]
    results: StepResults = field(default_factory=StepResults)

    @property
    def data(self) -> WorkflowData:
        """The corpus step 0 read."""
        return self.results.need("data").corpus

    def path(self, *parts: str) -> Path:
        """A path inside the run folder."""
        return self.out.joinpath(*parts)

    def rel(self, path: Path) -> str:
        """``path`` relative to the run folder (how artifacts are named)."""
        return path.relative_to(self.out).as_posix()


@dataclass
class RunInfo:
    """How the run was made, as ``report.json``'s ``run`` section states it.

    Attributes:
        out, data: the run folder and the corpus folder (resolved).
        encoder: what ``--encoder`` named (None: trained here).
        seed, fast: the seed and whether the reduced sizes were used.
        settings: the resolved :class:`~audioenc.timing.workflow.settings.WorkflowSettings`.
        step_seconds: wall time of each step (keys ``0_data`` ... ``7_note``).
        wall_seconds: wall time of the whole run.
    """

    out: Path
    data: Path
    encoder: str | None
    seed: int
    fast: bool
    settings: WorkflowSettings
    step_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "out": str(self.out.resolve()),
            "data": str(self.data.resolve()),
            "encoder": self.encoder,
            "seed": self.seed,
            "fast": self.fast,
            "settings": clean(asdict(self.settings)),
            "threads": (
                f"one torch thread per process; CRNN trainings in {self.settings.run.workers} process(es) at once"
            ),
            "step_seconds": dict(self.step_seconds),
            "wall_seconds": self.wall_seconds,
        }
