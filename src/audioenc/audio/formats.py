"""DESED-style label files: read with validation, write, and load one split of a corpus.

Three tab-separated files, each with a header line (the DCASE task 4 / DESED convention):

* strong: ``filename onset offset event_label`` — one row per event, times in seconds. A
  row holding only a filename (other fields empty) declares a clip without events.
* weak: ``filename event_labels`` — one row per clip, labels comma-separated, empty for a
  clip without events.
* durations: ``filename duration`` — clip lengths in seconds.

Filenames are relative to the split's audio folder (``clip.wav`` or ``sub/clip.wav``).

Reading never stops at the first bad row. Each problem becomes an :class:`Issue` naming the
file and line, with what was done about it (``dropped``, ``merged``, ``clipped``); the
reader returns what it could use plus the list of issues, so a workflow continues and
reports what it left out. Problems found:

* missing header, unknown columns, wrong number of fields, empty filename or label;
* onset/offset that are not numbers, negative, or with offset <= onset;
* a label outside the known classes (when ``classes`` is given);
* a file that is not in the audio folder (when ``audio_dir`` is given);
* an event that starts at or after the end of its file (dropped) or ends after it
  (offset clipped to the duration), when durations are known (``audio_dir`` or ``durations``);
* overlapping or touching events of the same class in one file: merged into one event
  (sed_scores_eval refuses connected same-class events);
* repeated weak rows for one file: labels merged.

An offset at most :data:`END_TOLERANCE_SECONDS` past the end of its file is rounding in the
label file and is set to the duration without an issue; anything later is reported.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import soundfile as sf

from audioenc.errors import UserError
from audioenc.textfiles import read_json, read_text

STRONG_COLUMNS: tuple[str, ...] = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS: tuple[str, ...] = ("filename", "event_labels")
DURATION_COLUMNS: tuple[str, ...] = ("filename", "duration")

END_TOLERANCE_SECONDS = 0.001
"""An offset up to 1 ms past the end of a file is clipped without counting as an error."""


class Event(NamedTuple):
    """One labelled event: ``(onset, offset, label)``, seconds from the clip start.

    A plain tuple underneath, so a ``dict[str, list[Event]]`` keyed by audio id is directly
    the ground-truth format of sed_scores_eval.
    """

    onset: float
    offset: float
    label: str


@dataclass(frozen=True)
class Issue:
    """A problem found in a label file, and what the reader did about it.

    Attributes:
        file: the label file (path as given).
        line: 1-based line number in that file, or None for a problem of the whole file.
        message: what was wrong, naming the audio file or value involved.
        action: ``dropped`` (row not used), ``merged`` (combined with another row),
            ``clipped`` (offset cut to the clip duration), ``note`` (read anyway, e.g. a
            missing header) or ``error`` (file unusable).
    """

    file: str
    line: int | None
    message: str
    action: str = "dropped"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message} [{self.action}]"


@dataclass
class EventSplit:
    """One split of a labelled event corpus, validated.

    Attributes:
        name: split name (``train``, ``validation``, ``test`` or the caller's).
        audio_dir: folder holding the audio files.
        files: every usable audio file (relative to ``audio_dir``), sorted.
        durations: seconds per file.
        weak: clip labels per file (from the weak TSV, or derived from strong events).
        strong: events per file (files without events map to ``[]``), or None when the
            split has no strong labels.
        classes: the class vocabulary, in column order.
        issues: everything the readers dropped, merged or clipped.
    """

    name: str
    audio_dir: Path
    files: list[str]
    durations: dict[str, float]
    weak: dict[str, tuple[str, ...]]
    strong: dict[str, list[Event]] | None
    classes: tuple[str, ...]
    issues: list[Issue] = field(default_factory=list)

    def positive_files(self, label: str | None = None) -> list[str]:
        """Files with at least one event (of ``label`` if given), by their weak labels."""
        return [name for name in self.files if (self.weak[name] if label is None else label in self.weak[name])]


# --------------------------------------------------------------------------- reading


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a TSV as ``(line_number, fields)``; trailing blanks removed.

    ``utf-8-sig`` drops the byte-order mark that spreadsheet exports put before the first header;
    read as plain UTF-8 it would glue itself to the first column's name and the header would not match.
    """
    rows = []
    for number, line in enumerate(read_text(path, "label file").split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            rows.append((number, line.split("\t")))
    return rows


def _header(path: Path, rows: list[tuple[int, list[str]]], expected: tuple[str, ...], issues: list[Issue]):
    """Column index per expected name, and the data rows. A missing header is reported and
    the columns are assumed to be in the documented order."""
    if not rows:
        issues.append(Issue(str(path), None, f"{path} is empty: no header and no rows", "error"))
        return None, []
    number, fields = rows[0]
    names = [name.strip() for name in fields]
    if all(column in names for column in expected):
        return {column: names.index(column) for column in expected}, rows[1:]
    if any(column in names for column in expected):
        missing = [column for column in expected if column not in names]
        issues.append(
            Issue(str(path), number, f"header {names} lacks column(s) {missing}; expected {list(expected)}", "error")
        )
        return None, []
    issues.append(
        Issue(
            str(path),
            number,
            f"no header line (expected columns {list(expected)}); reading every line as data in that column order",
            "note",
        )
    )
    return {column: index for index, column in enumerate(expected)}, rows


def _fit_width(fields: list[str], width: int, path, number: int, issues: list) -> list[str] | None:
    """Pad a short TSV row with empty fields; a row with extra non-empty fields is an issue (None)."""
    if len(fields) < width:
        return fields + [""] * (width - len(fields))
    if len(fields) > width and any(extra.strip() for extra in fields[width:]):
        issues.append(Issue(str(path), number, f"{path}:{number}: {len(fields)} fields, expected {width}: {fields!r}"))
        return None
    return fields


def _named_rows(
    rows: Iterable[tuple[int, list[str]]],
    columns: Mapping[str, int],
    known: Container[str] | None,
    path,
    issues: list,
) -> Iterator[tuple[int, list[str], str]]:
    """``(line number, fields padded to the header, filename)`` of each row that names a known file;
    the others are recorded in ``issues`` and skipped."""
    width = max(columns.values()) + 1
    for number, fields in rows:
        fields = _fit_width(fields, width, path, number, issues)
        if fields is None:
            continue
        filename = _row_filename(fields, columns, known, path, number, issues)
        if filename is not None:
            yield number, fields, filename


def _row_filename(
    fields: list[str], columns: Mapping[str, int], known: Container[str] | None, path, number: int, issues: list
) -> str | None:
    """The row's filename, or None (an issue recorded) when it is empty or not among ``known`` audio files."""
    where = f"{path}:{number}"
    filename = fields[columns["filename"]].strip()
    if not filename:
        issues.append(Issue(str(path), number, f"{where}: empty filename in row {fields!r}"))
        return None
    if known is not None and filename not in known:
        issues.append(Issue(str(path), number, f"{where}: labels for {filename!r}, which is not in the audio folder"))
        return None
    return filename


def _durations_of(audio_dir: Path | None, durations: Mapping[str, float] | None) -> Mapping[str, float] | None:
    if durations is not None:
        return durations
    if audio_dir is None:
        return None
    return scan_audio_durations(audio_dir)


def scan_audio_durations(audio_dir: str | Path) -> dict[str, float]:
    """Duration in seconds of every audio file libsndfile can read under ``audio_dir``
    (recursively; headers only), keyed by path relative to ``audio_dir``.

    Files libsndfile cannot open are left out here; readers then report labels that point
    at them as "not in the audio folder".
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"audio folder {audio_dir} does not exist; pass the folder holding the clips")
    found: dict[str, float] = {}
    for path in sorted(audio_dir.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError):
            continue  # not audio (a README, a TSV): not a clip
        if info.frames > 0 and info.samplerate > 0:
            found[path.relative_to(audio_dir).as_posix()] = info.frames / info.samplerate
    return found


def read_strong_tsv(
    path: str | Path,
    *,
    audio_dir: str | Path | None = None,
    durations: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[dict[str, list[Event]], list[Issue]]:
    """Read a strong-label TSV with validation.

    Args:
        path: the TSV (``filename onset offset event_label``).
        audio_dir: if given, labels for files missing from it are dropped and durations are
            read from the files' headers (unless ``durations`` is given).
        durations: seconds per filename; enables the past-the-end checks.
        classes: the known classes; rows with other labels are dropped. None accepts any.

    Returns:
        ``(events, issues)``: events per filename sorted by onset (a filename declared with
        an empty row maps to ``[]``), and every problem found (see the module docstring).
    """
    path = Path(path)
    issues: list[Issue] = []
    columns, rows = _header(path, _read_rows(path), STRONG_COLUMNS, issues)
    known = _durations_of(Path(audio_dir) if audio_dir is not None else None, durations)
    class_set = set(classes) if classes is not None else None
    events: dict[str, list[tuple[Event, int]]] = {}
    if columns is None:
        return {}, issues
    for number, fields, filename in _named_rows(rows, columns, known, path, issues):
        where = f"{path}:{number}"
        onset_text = fields[columns["onset"]].strip()
        offset_text = fields[columns["offset"]].strip()
        label = fields[columns["event_label"]].strip()
        if not onset_text and not offset_text and not label:
            events.setdefault(filename, [])  # a clip declared without events
            continue
        try:
            onset, offset = float(onset_text), float(offset_text)
        except ValueError:
            issues.append(
                Issue(
                    str(path),
                    number,
                    f"{where}: onset {onset_text!r} / offset {offset_text!r} of {filename!r} are not numbers",
                )
            )
            continue
        if not (math.isfinite(onset) and math.isfinite(offset)) or onset < 0 or offset <= onset:
            issues.append(
                Issue(str(path), number, f"{where}: event {onset}-{offset} s in {filename!r} needs 0 <= onset < offset")
            )
            continue
        if not label:
            issues.append(
                Issue(str(path), number, f"{where}: empty event_label for {filename!r} at {onset}-{offset} s")
            )
            continue
        if "," in label:
            issues.append(
                Issue(
                    str(path),
                    number,
                    f"{where}: event_label {label!r} of {filename!r} holds a comma, "
                    "which separates classes in weak labels; rename the class (e.g. with _)",
                )
            )
            continue
        if class_set is not None and label not in class_set:
            issues.append(
                Issue(
                    str(path), number, f"{where}: unknown class {label!r} in {filename!r}; known: {sorted(class_set)}"
                )
            )
            continue
        if known is not None:
            duration = known[filename]
            if onset >= duration:
                issues.append(
                    Issue(
                        str(path),
                        number,
                        f"{where}: event {label!r} at {onset}-{offset} s starts past the end of {filename!r} "
                        f"({duration:.3f} s)",
                    )
                )
                continue
            if offset > duration:
                if offset > duration + END_TOLERANCE_SECONDS:
                    issues.append(
                        Issue(
                            str(path),
                            number,
                            f"{where}: event {label!r} ends at {offset} s, past the end of {filename!r} "
                            f"({duration:.3f} s); offset clipped to the end",
                            "clipped",
                        )
                    )
                offset = duration
        events.setdefault(filename, []).append((Event(onset, offset, label), number))
    return {name: _merge_same_class(path, name, rows_, issues) for name, rows_ in events.items()}, issues


def _merge_same_class(path: Path, filename: str, rows: list[tuple[Event, int]], issues: list[Issue]) -> list[Event]:
    """Merge overlapping or touching events of one class in one file, reporting each merge."""
    merged: list[tuple[Event, int]] = []
    for event, number in sorted(rows, key=lambda item: (item[0].label, item[0].onset, item[0].offset)):
        if merged and merged[-1][0].label == event.label and event.onset <= merged[-1][0].offset:
            previous, previous_line = merged[-1]
            union = Event(previous.onset, max(previous.offset, event.offset), event.label)
            issues.append(
                Issue(
                    str(path),
                    number,
                    f"{path}:{number}: {event.label!r} event {event.onset}-{event.offset} s in {filename!r} overlaps "
                    f"line {previous_line} ({previous.onset}-{previous.offset} s); "
                    f"merged into {union.onset}-{union.offset} s",
                    "merged",
                )
            )
            merged[-1] = (union, previous_line)
        else:
            merged.append((event, number))
    return sorted((event for event, _ in merged), key=lambda event: (event.onset, event.offset, event.label))


def read_weak_tsv(
    path: str | Path,
    *,
    audio_dir: str | Path | None = None,
    files: Iterable[str] | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[dict[str, tuple[str, ...]], list[Issue]]:
    """Read a weak-label TSV with validation.

    Args:
        path: the TSV (``filename event_labels``, labels comma-separated).
        audio_dir: if given, rows for files missing from it are dropped.
        files: alternatively, the known filenames.
        classes: the known classes; unknown labels are dropped from their row (the row's
            other labels are kept). None accepts any.

    Returns:
        ``(labels, issues)``: sorted unique labels per filename (``()`` for a clip without
        events), and every problem found.
    """
    path = Path(path)
    issues: list[Issue] = []
    columns, rows = _header(path, _read_rows(path), WEAK_COLUMNS, issues)
    if columns is None:
        return {}, issues
    known: set[str] | None = None
    if files is not None:
        known = set(files)
    elif audio_dir is not None:
        known = set(scan_audio_durations(audio_dir))
    class_set = set(classes) if classes is not None else None
    labels: dict[str, set[str]] = {}
    first_line: dict[str, int] = {}
    for number, fields, filename in _named_rows(rows, columns, known, path, issues):
        where = f"{path}:{number}"
        row_labels = set()
        for label in (part.strip() for part in fields[columns["event_labels"]].split(",")):
            if not label:
                continue
            if class_set is not None and label not in class_set:
                issues.append(
                    Issue(
                        str(path),
                        number,
                        f"{where}: unknown class {label!r} for {filename!r}; known: {sorted(class_set)}",
                    )
                )
                continue
            row_labels.add(label)
        if filename in labels:
            issues.append(
                Issue(
                    str(path),
                    number,
                    f"{where}: second row for {filename!r} (first on line {first_line[filename]}); labels merged",
                    "merged",
                )
            )
            labels[filename] |= row_labels
        else:
            labels[filename] = row_labels
            first_line[filename] = number
    return {name: tuple(sorted(values)) for name, values in labels.items()}, issues


def read_durations_tsv(path: str | Path) -> tuple[dict[str, float], list[Issue]]:
    """Read a ``filename duration`` TSV; rows without a positive number are dropped."""
    path = Path(path)
    issues: list[Issue] = []
    columns, rows = _header(path, _read_rows(path), DURATION_COLUMNS, issues)
    durations: dict[str, float] = {}
    if columns is None:
        return durations, issues
    for number, fields in rows:
        fields = fields + [""] * (2 - len(fields))
        filename = fields[columns["filename"]].strip()
        text = fields[columns["duration"]].strip()
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not filename or not math.isfinite(value) or value <= 0:
            issues.append(
                Issue(str(path), number, f"{path}:{number}: need a filename and a positive duration, got {fields!r}")
            )
            continue
        durations[filename] = value
    return durations, issues


# --------------------------------------------------------------------------- writing


def _write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_strong_tsv(path: str | Path, events: Mapping[str, Sequence[tuple[float, float, str]]]) -> None:
    """Write events per filename as a strong TSV (times with 3 decimals, ms precision).

    Files without events get no row (the DESED convention: negatives are known from the
    audio folder or the durations file).
    """
    rows = [
        (filename, f"{onset:.3f}", f"{offset:.3f}", label)
        for filename in sorted(events)
        for onset, offset, label in sorted(events[filename])
    ]
    _write_rows(Path(path), STRONG_COLUMNS, rows)


def write_weak_tsv(path: str | Path, labels: Mapping[str, Iterable[str]]) -> None:
    """Write clip labels per filename as a weak TSV (one row per file, empty for none)."""
    for filename, values in labels.items():
        bad = [label for label in values if "," in label or "\t" in label]
        if bad:
            raise UserError(f"labels {bad} of {filename!r} contain a comma or tab, which the weak TSV cannot hold")
    _write_rows(Path(path), WEAK_COLUMNS, [(name, ",".join(sorted(set(labels[name])))) for name in sorted(labels)])


def write_durations_tsv(path: str | Path, durations: Mapping[str, float]) -> None:
    """Write ``filename duration`` rows (seconds, 6 decimals)."""
    _write_rows(Path(path), DURATION_COLUMNS, [(name, f"{durations[name]:.6f}") for name in sorted(durations)])


# --------------------------------------------------------------------------- a split


def split_paths(root: str | Path, split: str) -> dict[str, Path]:
    """Paths of one split in the layout of the embedded corpus (see
    :mod:`audioenc.audio.synth_events`): ``audio_dir``, ``strong``, ``weak``, ``durations``."""
    root = Path(root)
    return {
        "audio_dir": root / "audio" / split,
        "strong": root / "metadata" / f"{split}_strong.tsv",
        "weak": root / "metadata" / f"{split}_weak.tsv",
        "durations": root / "metadata" / f"{split}_durations.tsv",
    }


def read_event_split(
    audio_dir: str | Path,
    *,
    name: str = "split",
    strong_tsv: str | Path | None = None,
    weak_tsv: str | Path | None = None,
    classes: Sequence[str] | None = None,
) -> EventSplit:
    """Load and validate one split: audio folder plus strong and/or weak TSVs.

    Durations come from the audio headers (the durations TSV is not trusted over the files).
    Weak labels come from the weak TSV where a file has a row, else from its strong events;
    with strong labels, a file in the audio folder without strong rows is a clip without
    events. Files with no label at all (no weak row, no strong labels for the split) are
    left out and reported.

    Args:
        audio_dir: the split's audio folder.
        name: the split's name, for messages and reports.
        strong_tsv: strong TSV, or None.
        weak_tsv: weak TSV, or None (at least one of the two is required).
        classes: the class vocabulary; None takes every label found (sorted).

    Returns:
        The validated :class:`EventSplit`.
    """
    audio_dir = Path(audio_dir)
    if strong_tsv is None and weak_tsv is None:
        raise UserError(f"split {name!r}: give a strong and/or a weak label TSV for {audio_dir}")
    for label_file in (strong_tsv, weak_tsv):
        if label_file is not None and not Path(label_file).is_file():
            raise FileNotFoundError(f"split {name!r}: label file {label_file} does not exist")
    durations = scan_audio_durations(audio_dir)
    if not durations:
        raise FileNotFoundError(f"split {name!r}: no readable audio file under {audio_dir}")
    issues: list[Issue] = []
    strong: dict[str, list[Event]] | None = None
    if strong_tsv is not None:
        parsed, strong_issues = read_strong_tsv(strong_tsv, durations=durations, classes=classes)
        issues += strong_issues
        if any(issue.action == "error" for issue in strong_issues):
            # The whole file was rejected (empty, wrong header): the split has no strong labels,
            # not strong labels that say "no events anywhere" (which would turn boundary metrics off silently).
            issues.append(
                Issue(
                    str(strong_tsv),
                    None,
                    f"split {name!r}: the strong TSV was rejected whole; the split "
                    "is treated as having no strong labels (no boundary metrics) until it is fixed",
                    "error",
                )
            )
        else:
            strong = {filename: parsed.get(filename, []) for filename in durations}
    weak_rows: dict[str, tuple[str, ...]] = {}
    if weak_tsv is not None:
        weak_rows, weak_issues = read_weak_tsv(weak_tsv, files=durations, classes=classes)
        issues += weak_issues
    weak: dict[str, tuple[str, ...]] = {}
    for filename in durations:
        from_strong = tuple(sorted({event.label for event in strong[filename]})) if strong is not None else None
        if filename in weak_rows:
            weak[filename] = weak_rows[filename]
            if from_strong is not None and set(from_strong) - set(weak_rows[filename]):
                issues.append(
                    Issue(
                        str(weak_tsv),
                        None,
                        f"{filename!r}: weak labels {list(weak_rows[filename])} "
                        f"lack {sorted(set(from_strong) - set(weak_rows[filename]))} "
                        "found in its strong labels; added",
                        "merged",
                    )
                )
                weak[filename] = tuple(sorted(set(weak_rows[filename]) | set(from_strong)))
        elif from_strong is not None:
            weak[filename] = from_strong
    unlabelled = sorted(set(durations) - set(weak))
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (f" and {len(unlabelled) - 5} more" if len(unlabelled) > 5 else "")
        issues.append(
            Issue(
                str(weak_tsv),
                None,
                f"split {name!r}: {len(unlabelled)} audio file(s) without any label left out: {shown}",
            )
        )
    files = sorted(weak)
    if classes is None:
        found = {label for labels in weak.values() for label in labels}
        if strong is not None:
            found |= {event.label for events in strong.values() for event in events}
        classes = sorted(found)
    return EventSplit(
        name=name,
        audio_dir=audio_dir,
        files=files,
        durations={filename: durations[filename] for filename in files},
        weak={filename: weak[filename] for filename in files},
        strong={filename: strong[filename] for filename in files} if strong is not None else None,
        classes=tuple(classes),
        issues=issues,
    )


def corpus_classes(path: Path) -> tuple[str, ...]:
    """The class vocabulary a corpus's ``corpus.json`` declares (a list of label strings under ``classes``)."""
    content = read_json(path, "corpus description")
    classes = content.get("classes") if isinstance(content, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(name, str) and name for name in classes):
        raise UserError(
            f'corpus description {path}: needs "classes": a non-empty list of label names; '
            f"got {classes!r}. Fix or remove the file (without it the training labels give the classes)."
        )
    return tuple(classes)


def read_corpus_split(root: str | Path, split: str, *, classes: Sequence[str] | None = None) -> EventSplit:
    """Load one split of a corpus in the embedded layout (:func:`split_paths`); a missing
    strong or weak TSV is simply absent (at least one must exist). With ``classes`` None the
    vocabulary is read from ``root/corpus.json`` when present."""
    paths = split_paths(root, split)
    if classes is None and (Path(root) / "corpus.json").is_file():
        classes = corpus_classes(Path(root) / "corpus.json")
    return read_event_split(
        paths["audio_dir"],
        name=split,
        strong_tsv=paths["strong"] if paths["strong"].is_file() else None,
        weak_tsv=paths["weak"] if paths["weak"].is_file() else None,
        classes=classes,
    )
