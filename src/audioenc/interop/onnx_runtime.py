"""Encode and decode with ONNX Runtime from an ``audioenc export --format onnx`` folder.

:class:`OnnxRuntimeEngine` is an :class:`~audioenc.codec_io.files.InferenceEngine`:
``encode_file`` / ``decode_file`` (and ``audioenc encode/decode --backend onnxruntime``) drive its
chunk-by-chunk encoder and decoder exactly as they drive the PyTorch ones, so the containers and the
audio are the same up to float rounding. The PyTorch model still describes the codec (its
configuration and weight hashes go into every container, its quantizer's bitrate arithmetic picks
``n_q``); the engine refuses a folder exported from other weights (the sidecar records their hash).

Chunks follow the PyTorch rules: a signal in one chunk runs the one-shot graph (``encoder.onnx`` /
``decoder.onnx``; the only way for a non-causal codec); otherwise the step graphs carry the state,
starting from zeros.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioenc.config import ModelConfig
from audioenc.errors import UserError
from audioenc.interop.onnx import SIDECAR, SIDECAR_FORMAT, require_onnx
from audioenc.models.codec import CodecModel, as_scale


def session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path`` with every graph optimisation; ``threads``: intra-op
    threads (None: ONNX Runtime's default, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def read_sidecar(folder: str | os.PathLike) -> dict:
    """The ``audioenc_onnx.json`` contract of an export folder (checked for its format)."""
    path = Path(folder) / SIDECAR
    if not path.is_file():
        raise UserError(f"{folder} is not an ONNX export of audioenc (no {SIDECAR}); write one with "
                        "`audioenc export RUN --format onnx OUT`.")
    try:
        sidecar = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{path}: not readable JSON ({error}); export the model again.") from error
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise UserError(f"{path}: format {sidecar.get('format') if isinstance(sidecar, dict) else None!r}, expected "
                        f"{SIDECAR_FORMAT!r}; export the model again with this version of audioenc.")
    return sidecar


class OnnxCodec:
    """The graphs of an export folder: ``run(graph, *inputs) -> outputs`` (numpy), zero states."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        require_onnx()
        self.folder = Path(folder)
        self.sidecar = read_sidecar(folder)
        self.threads = threads
        self._sessions: dict[str, Any] = {}

    def has(self, graph: str) -> bool:
        return graph in self.sidecar["graphs"]

    def run(self, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
        if graph not in self._sessions:
            self._sessions[graph] = session(self.folder / self.sidecar["graphs"][graph]["file"], self.threads)
        names = [entry["name"] for entry in self.sidecar["graphs"][graph]["inputs"]]
        return self._sessions[graph].run(None, dict(zip(names, inputs)))

    def zero_state(self, graph: str, batch: int) -> list[np.ndarray]:
        """Zero state tensors of a step graph for ``batch`` signals."""
        return [
            np.zeros([batch if size == "batch" else size for size in entry["shape"]], dtype=entry["dtype"])
            for entry in self.sidecar["graphs"][graph]["inputs"][1:]
        ]


class OnnxStreamingEncoder:
    """:class:`~audioenc.codec_io.StreamingEncoder`'s interface and chunk rules, computed by ONNX Runtime."""

    def __init__(self, codec: OnnxCodec, model: CodecModel, n_q: int | None, scale: torch.Tensor | float | None,
                 latent_check: Callable[[torch.Tensor, int], None] | None) -> None:
        if model.quantizer is None and n_q is not None:
            raise UserError("n_q selects codebooks; it is meaningless for a codec with continuous latents.")
        if model.normalize and scale is None:
            raise UserError("this codec normalises its input level; pass scale=.")
        self.codec, self.model = codec, model
        self.scale = scale if model.normalize else 1.0
        self.latent_check = latent_check
        self.n_q = None if model.quantizer is None else (model.quantizer.n_q if n_q is None else n_q)
        if self.n_q is not None:
            model.quantizer.bandwidth_for(self.n_q, model.frame_rate)  # validates n_q
        self._state: list[np.ndarray] | None = None
        self.finished = False
        self.frames_out = 0
        self.peak_chunk_samples = 0

    def state_numel(self) -> int:
        return 0 if self._state is None else sum(t.size for t in self._state)

    def encode_chunk(self, audio: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``[B, C, L]`` -> latents ``[B, D, f]`` or codes ``[B, n_q, f]`` int64, as the PyTorch encoder."""
        if self.finished:
            raise RuntimeError("OnnxStreamingEncoder: the final chunk was already encoded.")
        self.model._check_input(audio)
        length, hop = audio.shape[-1], self.model.hop_length
        if length < 1 or (not final and length % hop):
            raise UserError(f"chunk of {length} samples; non-final chunks must be a positive multiple of the hop "
                            f"length {hop}, the final chunk at least 1 sample.")
        self.peak_chunk_samples = max(self.peak_chunk_samples, length)
        x = (audio / as_scale(self.scale, audio)).to(torch.float32).cpu().numpy()
        if final and self.frames_out == 0:
            outputs = self.codec.run("encoder", x)
        else:
            if not self.codec.has("encoder_step"):
                raise UserError("Streaming: the model is not causal (or not zero-padded), so it needs the whole signal "
                                "at once; encode it in a single final chunk.")
            state = self._state if self._state is not None else self.codec.zero_state("encoder_step", x.shape[0])
            outputs = self.codec.run("encoder_step", x, *state)
            heads = 2 if self.n_q is not None else 1
            outputs, self._state = outputs[:heads], outputs[heads:]
        latents = torch.from_numpy(outputs[0])
        if self.latent_check is not None:
            self.latent_check(latents, self.frames_out)
        self.finished = final
        self.frames_out += latents.shape[-1]
        if self.n_q is None:
            return latents
        return torch.from_numpy(outputs[1][:, : self.n_q])


class OnnxStreamingDecoder:
    """:class:`~audioenc.codec_io.StreamingDecoder`'s interface and chunk rules, computed by ONNX Runtime."""

    def __init__(self, codec: OnnxCodec, model: CodecModel, scale: torch.Tensor | float | None) -> None:
        if model.normalize and scale is None:
            raise UserError("this codec normalises its input level; pass the encoder's scale=.")
        self.codec, self.model = codec, model
        self.scale = scale if model.normalize else 1.0
        self._state: list[np.ndarray] | None = None
        self.chunks = 0

    def state_numel(self) -> int:
        return 0 if self._state is None else sum(t.size for t in self._state)

    def decode_chunk(self, encoded: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``[B, D|K, f]`` -> audio ``[B, C, f · hop]``."""
        if encoded.dim() != 3 or encoded.shape[-1] < 1:
            raise UserError(f"expected [batch, dim or codebooks, frames>=1], got {tuple(encoded.shape)}.")
        quantized = self.model.quantizer is not None
        x = encoded.long().numpy() if quantized else encoded.to(torch.float32).numpy()
        if final and self.chunks == 0:
            audio = self.codec.run("decoder", x)[0]
        else:
            if not self.codec.has("decoder_step"):
                raise UserError("a non-causal decoder needs all frames in one final chunk.")
            state = self._state if self._state is not None else self.codec.zero_state("decoder_step", x.shape[0])
            audio, *self._state = self.codec.run("decoder_step", x, *state)
        self.chunks += 1
        audio = torch.from_numpy(audio)
        return audio * as_scale(self.scale, audio)


class OnnxRuntimeEngine:
    """Chunk-by-chunk encoding and decoding with the graphs of an ONNX export folder.

    Args:
        folder: written by :func:`audioenc.interop.onnx.export_onnx` from the same model.
        threads: intra-op threads of each session (None: ONNX Runtime's default).
    """

    name = "onnxruntime"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        self.codec = OnnxCodec(folder, threads)

    def check_model(self, model: CodecModel) -> None:
        """Refuse a folder exported from other weights than ``model``'s."""
        from audioenc.codec_io import model_weights_hash

        if self.codec.sidecar.get("model_weights_sha256") != model_weights_hash(model):
            raise UserError(f"{self.codec.folder} was exported from another model (its weights hash differs); "
                            "export this model with `audioenc export RUN --format onnx OUT` and pass OUT.")

    def streaming_encoder(self, model: CodecModel, n_q: int | None, *, scale: float,
                          latent_check: Callable[[torch.Tensor, int], None] | None) -> OnnxStreamingEncoder:
        self.check_model(model)
        return OnnxStreamingEncoder(self.codec, model, n_q, scale, latent_check)

    def streaming_decoder(self, model: CodecModel, *, scale: float) -> OnnxStreamingDecoder:
        self.check_model(model)
        return OnnxStreamingDecoder(self.codec, model, scale)


@contextlib.contextmanager
def onnx_engine(model: CodecModel, config: ModelConfig, folder: str | os.PathLike | None = None,
                threads: int | None = None) -> Iterator[OnnxRuntimeEngine]:
    """An :class:`OnnxRuntimeEngine` for ``model``: from ``folder`` (an export of this model), or
    from a temporary export that is removed afterwards (seconds to a minute for the paper model:
    export once with ``audioenc export RUN --format onnx OUT`` to run many files)."""
    if folder is not None:
        engine = OnnxRuntimeEngine(folder, threads)
        engine.check_model(model)
        yield engine
        return
    from audioenc.interop.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="audioenc-onnx-") as tmp:
        export_onnx(model, config, Path(tmp) / "onnx")
        yield OnnxRuntimeEngine(Path(tmp) / "onnx", threads)
