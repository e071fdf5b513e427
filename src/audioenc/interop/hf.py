"""Hugging Face ``transformers``: export an audioenc codec as an ``EncodecModel``, import one as a run.

``export_hf(model, config, out)`` (``audioenc export RUN --format hf OUT``) writes a folder that
``EncodecModel.from_pretrained(OUT)`` and ``EncodecFeatureExtractor.from_pretrained(OUT)`` load
offline: ``config.json``, ``model.safetensors``, ``preprocessor_config.json`` and a ``README.md``.
``import_hf(directory, run_dir)`` (``audioenc import-hf DIR RUN``) turns a local ``EncodecModel``
snapshot (e.g. a download of ``facebook/encodec_24khz``) into a run folder: ``model_best.safetensors``
+ ``model_best.json`` (what ``encode``, ``decode``, ``eval``, HEAR and ``train --init-from`` load),
``config.json`` and ``imported_from.json``.

Both are exact, and both prove it before keeping what they wrote: the written model is loaded
back and compared with the original on noise at every bandwidth (:mod:`audioenc.interop.hf_check`:
identical codes, audio equal to float32 rounding); a difference is a bug and raises, leaving nothing
behind. The names of the tensors: :mod:`audioenc.interop.hf_keys`; the configurations and what
cannot be expressed (refused with a :class:`~audioenc.errors.UserError`): :mod:`audioenc.interop.hf_config`.

Using the export in ``transformers`` (pitfalls that differ from audioenc)::

    model = EncodecModel.from_pretrained(OUT)
    out = model.encode(x, bandwidth=model.config.target_bandwidths[-1])  # default: the FIRST (lowest)
    codes = out.audio_codes                                  # [1, B, n_q, F]: one "chunk" in front
    y = model.decode(out.audio_codes, out.audio_scales).audio_values[..., :x.shape[-1]]  # F·hop samples
"""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

from audioenc.config import Config, ModelConfig, validate
from audioenc.core.atomic import atomic_folder
from audioenc.errors import UserError
from audioenc.interop.hf_check import Agreement, compare
from audioenc.interop.hf_config import check_exportable, encodec_config_kwargs, model_config_from_hf
from audioenc.interop.hf_keys import from_hf_state, to_hf_state, uses_legacy_weight_norm
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model, load_codec, model_weights_hash
from audioenc.outputs import occupied


def require_transformers() -> Any:
    """The ``transformers`` module (progress bars off), or a ``UserError`` saying how to install it."""
    try:
        import transformers
    except ImportError as error:
        raise UserError(
            f"Hugging Face interop needs the transformers package ({error}); install it with "
            "`pip install 'audioenc[hf]'` (transformers >= 4.40)."
        ) from None
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _check_new_folder(path: Path) -> None:
    """Refuse an existing file or non-empty folder at ``path`` (nothing is ever overwritten)."""
    if occupied(path):  # the rule of every command that writes (audioenc.outputs)
        raise FileExistsError(f"{path} exists and is not an empty folder; choose a new folder or remove it first.")


def _write_folder(path: Path, write, check) -> Any:
    """``write(tmp)`` into a temporary folder beside ``path``, ``result = check(tmp)``, then rename
    the folder to ``path``; on any error the temporary folder is removed and ``path`` never appears."""
    with atomic_folder(path) as tmp:
        write(tmp)
        return check(tmp)


def _require_exact(agreement: Agreement, what: str) -> Agreement:
    if not agreement.exact:
        raise RuntimeError(
            f"{what} is not the same codec ({agreement.describe()}); nothing was written. "
            "This is a bug in audioenc.interop: please report it with the model's config."
        )
    return agreement


# ---------------------------------------------------------------------------------------- export


def to_encodec_model(model: CodecModel, config: ModelConfig, where: str = "this codec") -> Any:
    """An ``EncodecModel`` (eval mode) with ``model``'s weights; ``UserError`` when it cannot be exact."""
    check_exportable(config, where)
    if not model.quantizer.initialized:
        raise UserError(
            f"{where}: its codebooks were never initialised (no training step): an EncodecModel of "
            "it would return the zero code for everything. Export a trained run."
        )
    refuse_zero_codebooks(model.state_dict(), config.n_q, where, "Export a trained run.")
    transformers = require_transformers()
    hf_config = transformers.EncodecConfig(**encodec_config_kwargs(config))
    if (
        hf_config.num_quantizers != config.n_q
    ):  # transformers <= 4.53 (at least; 4.57 is fixed) count 10 bits per codebook
        raise UserError(
            f"{where}: transformers {transformers.__version__} would build {hf_config.num_quantizers} codebooks "
            f"instead of {config.n_q} (its EncodecConfig.num_quantizers assumes 1024-entry codebooks; this codec "
            f"has {config.bins}). Upgrade transformers (`pip install -U 'audioenc[hf]'`)."
        )
    hf_model = transformers.EncodecModel(hf_config)
    legacy = uses_legacy_weight_norm(hf_model.state_dict())
    hf_model.load_state_dict(to_hf_state(model.state_dict(), config, legacy), strict=True)
    return hf_model.eval()


def export_hf(model: CodecModel, config: ModelConfig, out: str | os.PathLike) -> str:
    """Write ``model`` as a ``transformers`` ``EncodecModel`` folder ``out``; returns a summary.

    Raises:
        UserError: a continuous codec, more than 2 channels, no LSTM, codebooks whose size is not a
            power of 2, stereo with ``normalize``, untrained codebooks (all: use ``--format onnx``
            or a trained run); transformers missing.
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    out = Path(out)
    _check_new_folder(out)
    hf_model = to_encodec_model(model, config)
    transformers = require_transformers()
    extractor = transformers.EncodecFeatureExtractor(
        feature_size=config.channels, sampling_rate=config.sample_rate, padding_value=0.0
    )
    bandwidths = list(hf_model.config.target_bandwidths)

    def write(folder: Path) -> None:
        hf_model.save_pretrained(folder)
        extractor.save_pretrained(folder)
        (folder / "README.md").write_text(model_card(hf_model, model_weights_hash(model)))

    def check(folder: Path) -> Agreement:
        reloaded = transformers.EncodecModel.from_pretrained(folder, local_files_only=True)
        return _require_exact(compare(model, reloaded), f"The export in {out}")

    agreement = _write_folder(out, write, check)
    return (
        f"wrote {out}: transformers EncodecModel + EncodecFeatureExtractor ({config.channels} ch, "
        f"{config.sample_rate} Hz, target_bandwidths {bandwidths} kbps). Checked after loading it back: "
        f"{agreement.describe()}."
    )


def model_card(hf_model: Any, weights_sha256: str) -> str:
    """The export folder's ``README.md``: what it is, how to call it, its bandwidths, its pitfalls."""
    config = hf_model.config
    rows = "\n".join(
        f"| {bw:g} | {hf_model.quantizer.get_num_quantizers_for_bandwidth(bw)} |" for bw in config.target_bandwidths
    )
    return f"""# audioenc codec as a transformers EncodecModel

Exported by `audioenc export --format hf` (audioenc weights SHA-256 `{weights_sha256}`).
Same codes and the same audio (to float32 rounding) as the audioenc codec, checked at export.

```python
from transformers import EncodecFeatureExtractor, EncodecModel
model = EncodecModel.from_pretrained(FOLDER)
extractor = EncodecFeatureExtractor.from_pretrained(FOLDER)
out = model.encode(x, bandwidth={config.target_bandwidths[-1]!r})   # x: [batch, {config.audio_channels}, time]
audio = model.decode(out.audio_codes, out.audio_scales).audio_values[..., : x.shape[-1]]
```

| bandwidth (kbps) | codebooks |
|---|---|
{rows}

* `encode()` without `bandwidth` uses the FIRST (lowest) entry of `target_bandwidths`; pass one of
  the values above exactly.
* `audio_codes` is `[1, batch, codebooks, frames]` (one chunk in front); `decode()` returns
  `frames × {math.prod(config.upsampling_ratios)}` samples: cut to the input length (or pass `padding_mask`).
* Sample rate {config.sampling_rate} Hz, {config.audio_channels} channel(s); input level normalised:
  {config.normalize}.
"""


# ---------------------------------------------------------------------------------------- import


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: not readable JSON ({error}); download or export the model folder again.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object; download or export the model folder again.")
    return data


def refuse_zero_codebooks(state: dict[str, Any], n_q: int, where: str, advice: str) -> None:
    """Refuse (``UserError``) an audioenc state dict with a codebook that is all zeros: every vector would get
    the same meaningless code. One rule for export and import, so that an export is never refused on import."""
    empty = [i for i in range(n_q) if not bool(state[f"quantizer.layers.{i}.embed"].any())]
    if empty:
        raise UserError(
            f"{where}: codebook(s) {empty[:5]} are all zeros (untrained codebooks?); their codes "
            f"would mean nothing. {advice}"
        )


def from_encodec_model(hf_model: Any, where: str) -> tuple[CodecModel, ModelConfig, list[str]]:
    """An audioenc :class:`CodecModel` (eval mode) with an ``EncodecModel``'s weights, its config and notes."""
    config, notes = model_config_from_hf(hf_model.config, where)
    state = from_hf_state(hf_model.float().state_dict(), config)
    refuse_zero_codebooks(state, config.n_q, where, "Import a trained model.")
    model = CodecModel.from_config(config)
    model.load_state_dict(state, strict=True)
    return model.eval(), config, notes


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""The weights files ``EncodecModel.from_pretrained`` looks for, in its order of preference."""


def _weights_file(directory: Path) -> Path:
    """The weights file ``from_pretrained`` will read in ``directory`` (the folder itself when there is none),
    so that a refusal names the file."""
    return next((directory / name for name in WEIGHT_FILES if (directory / name).is_file()), directory)


def _refuse_config_beyond_weights(hf_config: Any, directory: Path, weights: Path) -> None:
    """Refuse weights files far smaller than the network config.json describes, before ``from_pretrained``
    allocates it: the codebooks and the two LSTMs alone need this many numbers, of at least 2 bytes each
    (half precision). A cut download, or a config.json of another model."""
    dim = hf_config.hidden_size
    least = hf_config.num_quantizers * hf_config.codebook_size * dim + 2 * hf_config.num_lstm_layers * 8 * dim * dim
    stored = sum(path.stat().st_size for pattern in ("*.safetensors", "*.bin") for path in directory.glob(pattern))
    if 2 * least > stored:
        raise UserError(
            f"{weights}: the weights could not be loaded: the weights files hold {stored:,} bytes, but "
            f"{directory / 'config.json'} describes at least {least:,} weights (a cut download, or a "
            "config.json of another model); download the model folder again."
        )


def import_hf(directory: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """Turn the ``EncodecModel`` folder ``directory`` into the audioenc run folder ``run_dir``; returns a summary.

    Raises:
        UserError: not an EncodecModel folder (no/bad ``config.json``, other ``model_type``, missing or
            unexpected weights); an architecture audioenc cannot express (see
            :func:`~audioenc.interop.hf_config.model_config_from_hf`); all-zero codebooks; transformers missing.
        FileNotFoundError / FileExistsError: no ``directory``; ``run_dir`` exists and is not empty.
    """
    directory, run_dir = Path(directory), Path(run_dir)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"No model folder at {directory}: point DIR at a local EncodecModel snapshot "
            "(config.json + model.safetensors)."
        )
    meta = _read_json(directory / "config.json") if (directory / "config.json").is_file() else None
    if meta is None or meta.get("model_type") != "encodec":
        found = "no config.json" if meta is None else f"model_type {meta.get('model_type')!r}"
        raise UserError(
            f"{directory}: not a transformers EncodecModel folder ({found}); download one, e.g. "
            "facebook/encodec_24khz, or export one with `audioenc export RUN --format hf OUT`."
        )
    _check_new_folder(run_dir)
    transformers = require_transformers()
    from safetensors import SafetensorError

    try:
        hf_config = transformers.EncodecConfig.from_pretrained(directory)
    except Exception as error:  # noqa: BLE001 -- OSError, ValueError, huggingface_hub's strict-field errors …
        raise UserError(
            f"{directory / 'config.json'}: not a valid EncodecConfig ({' '.join(str(error).split())[:300]}); "
            "download or export the model folder again."
        ) from None
    model_config_from_hf(hf_config, str(directory))  # refuse what audioenc cannot express before loading weights
    weights = _weights_file(directory)
    _refuse_config_beyond_weights(hf_config, directory, weights)
    try:
        hf_model, info = transformers.EncodecModel.from_pretrained(
            directory, local_files_only=True, output_loading_info=True
        )
    except pickle.UnpicklingError:  # torch.load(weights_only=True) met a pickled object that is not a tensor
        raise UserError(
            f"{weights}: holds pickled Python objects besides tensors, which are not loaded (they could "
            "run code); convert the weights to model.safetensors from a trusted copy, or download the "
            "safetensors version of the model."
        ) from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:  # no, cut or damaged weights
        raise UserError(
            f"{weights}: the weights could not be loaded ({' '.join(str(error).split())[:300]}); "
            "download the model folder again."
        ) from None
    bad = {kind: info.get(kind) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(kind)}
    if bad:
        raise UserError(f"{directory}: its weights do not fit its config.json ({bad}); download the folder again.")
    hf_model.eval()
    model, config, notes = from_encodec_model(hf_model, str(directory))
    run_config = validate(Config(model=config))
    run_config.data.channel_mode = "mono" if config.channels == 1 else "all"

    def write(folder: Path) -> None:
        export_model(folder, "model_best", model, config)
        run_config.save(folder / "config.json")
        provenance = {
            "source": str(directory.resolve()),
            "transformers": transformers.__version__,
            "encodec_config": hf_model.config.to_dict(),
            "model_weights_sha256": model_weights_hash(model),
            "note": "imported weights; no training state: continue with `audioenc train --init-from`",
        }
        (folder / "imported_from.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")

    def check(folder: Path) -> Agreement:
        loaded, _ = load_codec(folder)
        return _require_exact(compare(loaded, hf_model), f"The import in {run_dir}")

    agreement = _write_folder(run_dir, write, check)
    flag = "--1ch" if config.channels == 1 else f"--1ch model.channels={config.channels} data.channel_mode=all"
    lines = [
        *notes,
        f"wrote {run_dir}: model_best.safetensors (+ .json), config.json, imported_from.json. Checked "
        f"after loading it back: {agreement.describe()}.",
        f"Fine-tune: audioenc train {flag} --init-from {run_dir} --run-dir {run_dir}-ft",
    ]
    return "\n".join(lines)


def load_encodec_model(directory: str | os.PathLike) -> Any:
    """``EncodecModel.from_pretrained(directory)`` offline, in eval mode (a convenience for tests and scripts)."""
    return require_transformers().EncodecModel.from_pretrained(Path(directory), local_files_only=True).eval()


__all__ = ["export_hf", "from_encodec_model", "import_hf", "load_encodec_model", "to_encodec_model"]
