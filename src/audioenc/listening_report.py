"""One self-contained HTML page to hear and see what a codec did: ``report.html``.

For a handful of files: the original and the codec's reconstructions (its lowest and full bitrate)
side by side in audio players, their log-mel spectrograms, and for multichannel files the level
per channel and each channel's coherence with its original; then the metrics table of
:mod:`audioenc.metrics.file_evaluation`, the model's configuration and, for a run folder, its
validation curve. Audio (16-bit WAV) and images (PNG) are embedded as ``data:`` URIs: the page
opens from disk with no server and no network.

The page checks itself: a small inline script waits for every player's metadata and writes what
it found (players loaded, their durations, any script or media error) into
``<pre id="self-check">``. :func:`check_in_browser` loads the page in headless Chromium, reads that
result from the rendered DOM and takes a screenshot.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audioenc.audio.io import AudioReadError
from audioenc.core.plotting import pyplot
from audioenc.errors import UserError
from audioenc.metrics.file_evaluation import (
    Clip,
    EvalSettings,
    check_max_seconds,
    evaluate_files,
    format_summary,
    load_clip,
)
from audioenc.metrics.systems import codec_systems, evaluation_systems
from audioenc.models.files import load_codec
from audioenc.outputs import replacing

PLAYED_CHANNELS = 1
"""Players carry the first channel (browsers play at most stereo; 32 channels would not play)."""

_SELF_CHECK = """
<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? t.tagName + ' failed to load' : String(e.message));
  }, true);
  var original = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    var players = Array.prototype.slice.call(document.querySelectorAll('audio'));
    var pending = players.length;
    function finish() {
      var result = {players: players.length,
        loaded: players.filter(function (p) { return p.readyState >= 1 && !p.error; }).length,
        durations: players.map(function (p) { return p.duration; }),
        media_errors: players.filter(function (p) { return p.error; }).map(function (p) { return p.error.code; }),
        images: document.images.length,
        images_broken: Array.prototype.filter.call(document.images,
          function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
        errors: errors};
      document.getElementById('self-check').textContent = JSON.stringify(result);
    }
    if (!pending) { finish(); return; }
    players.forEach(function (p) {
      function done() { if (--pending === 0) finish(); }
      if (p.readyState >= 1 || p.error) { done(); return; }
      p.addEventListener('loadedmetadata', done, {once: true});
      p.addEventListener('error', done, {once: true});
    });
  });
})();
</script>
"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.clip{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:1.5em}.clip figure{margin:0}
figcaption{font-size:0.85em;color:#555}audio{width:300px;display:block}img{max-width:380px}
pre{background:#f7f7f7;padding:0.5em;font-size:0.8em;overflow:auto}
"""


@dataclass(frozen=True)
class ListeningReport:
    """A written page and the candidate files it left out (path -> why: unreadable, too short,
    channels that cancel in a mono codec's downmix; see :func:`~audioenc.metrics.file_evaluation.load_clip`)."""

    page: Path
    left_out: dict[str, str]


def write_report(
    model_path: str | Path,
    files: Sequence[Path],
    out_dir: str | Path,
    *,
    systems=None,
    evaluation=None,
    max_files: int = 4,
    max_seconds: float = 5.0,
) -> Path:
    """Write ``out_dir/report.html`` (:func:`write_listening_report`) and return its path."""
    return write_listening_report(
        model_path, files, out_dir, systems=systems, evaluation=evaluation, max_files=max_files, max_seconds=max_seconds
    ).page


def write_listening_report(
    model_path: str | Path,
    files: Sequence[Path],
    out_dir: str | Path,
    *,
    systems=None,
    evaluation=None,
    max_files: int = 4,
    max_seconds: float = 5.0,
) -> ListeningReport:
    """Write ``out_dir/report.html`` for the codec at ``model_path`` on the first ``max_files`` usable files.

    Args:
        model_path: what ``audioenc eval`` / ``report`` was given (model file or run folder).
        files: candidate audio files, in order; those the evaluation cannot score (see
            :func:`~audioenc.metrics.file_evaluation.load_clip`) are left out, named on the page.
        systems: the evaluated systems (default: the codec at each bitrate).
        evaluation: an :class:`~audioenc.metrics.file_evaluation.Evaluation` whose summary is shown
            (default: the distances of the shown files, computed here).
        max_seconds: seconds of each file that are played and shown.
    """
    model, config = load_codec(model_path)
    check_max_seconds(max_seconds, config.sample_rate, "--seconds")
    if systems is None:
        systems = codec_systems(model)
    clips, left_out = _usable_clips(files, config.sample_rate, config.channels, max_files, max_seconds)
    if evaluation is None:
        evaluation = evaluate_files(
            [path for path, _ in clips],
            systems,
            config.sample_rate,
            config.channels,
            EvalSettings(perceptual=False, max_seconds=max_seconds, resamples=200),
            progress=False,
        )
    codec_rows = [system for system in systems if system.kind == "codec"]
    played = [codec_rows[0], codec_rows[-1]] if len(codec_rows) > 1 else codec_rows
    sections = []
    for path, clip in clips:
        outputs = [("original", clip.audio)] + [(system.name, system.reconstruct(clip.audio)) for system in played]
        sections.append(_clip_section(f"{path.name} ({clip.scored})", outputs, config.sample_rate))
    page = _page(str(model_path), sections, evaluation, config, _training_curve(Path(model_path)), left_out)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "report.html"
    with replacing(target) as path:  # an earlier report stays whole until the new one is written
        path.write_text(page, encoding="utf-8")
    return ListeningReport(target, left_out)


def _usable_clips(
    files: Sequence[Path], sample_rate: int, channels: int, max_files: int, max_seconds: float
) -> tuple[list[tuple[Path, Clip]], dict[str, str]]:
    """The first ``max_files`` files the evaluation can score, read as it reads them, and why the
    files tried before them could not be (a short or unreadable file must not end the report)."""
    clips, left_out = [], {}
    for path in files:
        if len(clips) >= max_files:
            break
        try:
            clips.append((Path(path), load_clip(Path(path), sample_rate, channels, max_seconds)))
        except (AudioReadError, UserError) as error:
            left_out[str(path)] = str(error)
    if not clips:
        reasons = "; ".join(list(left_out.values())[:3]) or "no candidate files"
        raise UserError(f"the listening report needs at least one usable audio file: {reasons}")
    return clips, left_out


def report_with_references(
    model_path: str | Path,
    files: Sequence[Path],
    out_dir: str | Path,
    *,
    max_files: int = 3,
    max_seconds: float = 3.0,
    perceptual: bool = True,
    device: str = "cpu",
) -> tuple[Path, object]:
    """``audioenc eval`` on ``max_files`` files with every reference system, its results written to
    ``out_dir`` (``per_file.csv``, ``evaluation.json``) and shown in ``out_dir/report.html``.

    Returns ``(page, evaluation)``. What ``audioenc demo`` writes for the story's codec.
    """
    model, config = load_codec(model_path)
    shown = list(files)[:max_files]
    systems = evaluation_systems(model, config, device=device)
    evaluation = evaluate_files(
        shown,
        systems,
        config.sample_rate,
        config.channels,
        EvalSettings(perceptual=perceptual, max_seconds=max_seconds, resamples=200),
        progress=False,
    )
    evaluation.write(out_dir, 200, extra={"model": str(model_path), "max_seconds": max_seconds})
    page = write_report(
        model_path, shown, out_dir, systems=systems, evaluation=evaluation, max_files=max_files, max_seconds=max_seconds
    )
    return page, evaluation


def _page(
    model_path: str, sections: list[str], evaluation, config, curve: str | None, left_out: dict[str, str] | None = None
) -> str:
    summary = evaluation.summary(200)
    table = _summary_table(summary, evaluation.measures)
    skipped = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in evaluation.skipped.items())
    failed = {**evaluation.failed_files, **(left_out or {})}
    left = "".join(f"<li>{html.escape(reason)}</li>" for reason in failed.values())  # each names its file
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>audioenc listening report: {html.escape(model_path)}</title><style>{_STYLE}</style>",
        _SELF_CHECK,
        "</head><body>",
        f"<h1>Listening report</h1><p>Model: <code>{html.escape(model_path)}</code> · "
        f"{config.channels} channel(s) at {config.sample_rate} Hz · players carry channel 1</p>",
        "<h2>Clips</h2>",
        *sections,
        f"<h3>Files left out</h3><ul>{left}</ul>" if left else "",
        "<h2>Metrics</h2><p>Means over files with 95 % bootstrap intervals. SI-SDR in dB (higher is better); "
        "mel and STFT distances as DAC defines them (lower is better); ViSQOL MOS-LQO (higher is better).</p>",
        f"<p>Channels scored: {html.escape(evaluation.scored_channels())}</p>",
        table,
        f"<ul>{skipped}</ul>" if skipped else "",
        f"<pre>{html.escape(format_summary(summary, evaluation.measures))}</pre>",
    ]
    if curve:
        parts += ["<h2>Training</h2>", curve]
    parts += [
        "<h2>Model configuration</h2>",
        f"<pre>{html.escape(json.dumps(asdict(config), indent=2))}</pre>",
        "<h2>Page self-check</h2><pre id='self-check'>running…</pre></body></html>",
    ]
    return "\n".join(parts)


def _summary_table(summary: list[dict], measures: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ["system", "kbps", *measures])
    rows = []
    for entry in summary:
        cells = [html.escape(entry["system"]), "" if entry["kbps"] is None else f"{entry['kbps']:g}"]
        for measure in measures:
            stats = entry["measures"].get(measure)
            cells.append("—" if stats is None else f"{stats['mean']:.3f}")
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _clip_section(name: str, outputs: list[tuple[str, np.ndarray]], sample_rate: int) -> str:
    figures = []
    for label, audio in outputs:
        figures.append(
            f"<figure><figcaption>{html.escape(label)}</figcaption>"
            f"<audio controls preload='metadata' src='{_wav_uri(audio[:PLAYED_CHANNELS], sample_rate)}'></audio>"
            f"<img alt='log-mel spectrogram of {html.escape(label)}' src='{_spectrogram_uri(audio[0], sample_rate)}'>"
            "</figure>"
        )
    spatial = ""
    if outputs[0][1].shape[0] > 1:
        spatial = (
            f"<figure><figcaption>per channel: level and coherence with the original</figcaption>"
            f"<img alt='per-channel level and coherence' src='{_channels_uri(outputs, sample_rate)}'></figure>"
        )
    return f"<h3>{html.escape(name)}</h3><div class='clip'>{''.join(figures)}{spatial}</div>"


def _wav_uri(audio: np.ndarray, sample_rate: int) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio.T, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _spectrogram_uri(channel: np.ndarray, sample_rate: int) -> str:
    import librosa

    plt = pyplot()
    mel = librosa.feature.melspectrogram(
        y=channel.astype(np.float32), sr=sample_rate, n_fft=1024, hop_length=256, n_mels=80
    )
    figure, axis = plt.subplots(figsize=(4.8, 2.4))
    axis.imshow(
        10 * np.log10(mel + 1e-10),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-100,
        vmax=20,
        extent=(0, len(channel) / sample_rate, 0, 80),
    )
    axis.set_xlabel("s")
    axis.set_ylabel("mel band")
    figure.tight_layout()
    return _png_uri(figure)


def _channels_uri(outputs: list[tuple[str, np.ndarray]], sample_rate: int) -> str:
    from scipy.signal import coherence

    plt = pyplot()
    original = outputs[0][1]
    figure, (levels, coherences) = plt.subplots(2, 1, figsize=(4.8, 3.6), sharex=True)
    channels = np.arange(1, original.shape[0] + 1)
    for label, audio in outputs:
        rms = np.sqrt(np.mean(audio**2, axis=1)) + 1e-12
        levels.plot(channels, 20 * np.log10(rms), marker=".", label=label)
        if label != "original":
            values = [
                float(np.mean(coherence(a, b, fs=sample_rate, nperseg=1024)[1]))
                for a, b in zip(original, audio, strict=True)
            ]
            coherences.plot(channels, values, marker=".", label=label)
    levels.set_ylabel("RMS dBFS")
    levels.legend(fontsize=6)
    coherences.set_ylabel("coherence")
    coherences.set_ylim(0, 1.05)
    coherences.set_xlabel("channel")
    figure.tight_layout()
    return _png_uri(figure)


def _training_curve(model_path: Path) -> str | None:
    """The run's validation curve (``metrics.jsonl`` of the run folder the model belongs to)."""
    run_dir = model_path if model_path.is_dir() else model_path.parent
    history = run_dir / "metrics.jsonl"
    if not history.is_file():
        return None
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    keys = [key for key in ("mel_distance", "si_snr") if rows and key in rows[0]]
    if not keys:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 2.6))
    for axis, key in zip(np.atleast_1d(axes), keys, strict=True):
        axis.plot([row["step"] for row in rows], [row[key] for row in rows], marker=".")
        axis.set_xlabel("step")
        axis.set_title(f"validation {key}", fontsize=9)
    figure.tight_layout()
    return f"<img alt='validation curves' src='{_png_uri(figure)}'>"


# ------------------------------------------------------------------------------ browser check


@dataclass(frozen=True)
class BrowserCheck:
    """What headless Chromium saw: the page's self-check result and the screenshot's path."""

    result: dict
    screenshot: Path

    @property
    def ok(self) -> bool:
        result = self.result
        return (
            result.get("players", 0) > 0
            and result["loaded"] == result["players"]
            and not result["errors"]
            and not result["media_errors"]
            and result["images_broken"] == 0
        )


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian: ``apt-get install chromium``), or None."""
    for name in ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def check_in_browser(page: str | Path, screenshot: str | Path | None = None, timeout: float = 120.0) -> BrowserCheck:
    """Load ``page`` from disk in headless Chromium, read its self-check, save a screenshot.

    Raises:
        UserError: no Chromium on PATH, or the page never finished its self-check.
    """
    browser = find_chromium()
    if browser is None:
        raise UserError("no Chromium found to check the page; on Debian/Ubuntu: apt-get install chromium")
    page = Path(page).resolve()
    screenshot = Path(screenshot) if screenshot else page.with_name("report.png")
    with tempfile.TemporaryDirectory() as profile:
        # No background networking: on a closed network Chromium would otherwise try (and fail) to
        # reach its update and sync hosts at every start.
        common = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
        ]
        dom = subprocess.run(
            [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=timeout
        ).stdout
        subprocess.run(
            [*common, "--window-size=1280,2000", f"--screenshot={screenshot.resolve()}", page.as_uri()],
            capture_output=True,
            timeout=timeout,
        )
    start = dom.find('id="self-check">')
    if start < 0:
        raise UserError(f"{page}: Chromium returned no page (is it a report.html?)")
    text = html.unescape(dom[start + len('id="self-check">') : dom.find("</pre>", start)])
    try:
        result = json.loads(text)
    except json.JSONDecodeError:
        raise UserError(
            f"{page}: the page's self-check did not finish in the browser (it says {text[:80]!r})"
        ) from None
    return BrowserCheck(result, screenshot)
