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

from audioenc.codec_io.streaming import StreamingDecoder, StreamingEncoder
from audioenc.config import ModelConfig
from audioenc.errors import UserError, require_directory
from audioenc.interop.onnx import SIDECAR, SIDECAR_FORMAT, export_onnx, require_onnx
from audioenc.interop.onnx_contract import REEXPORT, check_identity, check_structure, verify_graphs
from audioenc.interop.onnx_session import ort_errors, session
from audioenc.models.codec import CodecModel


def read_sidecar(folder: str | os.PathLike) -> dict:
    """The ``audioenc_onnx.json`` contract of an export folder (checked for its format and the shape of its
    ``graphs`` table; :func:`~audioenc.interop.onnx_contract.verify_graphs` checks the graphs against it)."""
    path = (
        require_directory(folder, "The ONNX export folder", "Write one with `audioenc export RUN --format onnx OUT`.")
        / SIDECAR
    )
    if not path.is_file():
        raise UserError(
            f"{folder} is not an ONNX export of audioenc (no {SIDECAR}); write one with "
            "`audioenc export RUN --format onnx OUT`."
        )
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # UnicodeDecodeError included
        raise UserError(f"{path}: not readable JSON ({error}); {REEXPORT}.") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise UserError(
            f"{path}: format {sidecar.get('format') if isinstance(sidecar, dict) else None!r}, expected "
            f"{SIDECAR_FORMAT!r}; export the model again with this version of audioenc."
        )
    check_structure(path, sidecar)
    return sidecar


class OnnxCodec:
    """The graphs of an export folder: ``run(graph, *inputs) -> outputs`` (numpy), zero states."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        require_onnx()
        self.folder = Path(folder)
        self.sidecar = read_sidecar(folder)
        verify_graphs(self.folder, self.folder / SIDECAR, self.sidecar)
        self.threads = threads
        # The layout rewrite edits ONNX Runtime's internal graph: trusted only on the version the
        # export checked against PyTorch (another version runs the plain graph).
        import onnxruntime

        checked_on = self.sidecar.get("exporter", {}).get("onnxruntime")
        self.layout_rewrite = checked_on == onnxruntime.__version__
        self._sessions: dict[str, Any] = {}

    def has(self, graph: str) -> bool:
        return graph in self.sidecar["graphs"]

    def _session(self, graph: str) -> Any:
        """The graph's ONNX Runtime session, created on first use; a graph ONNX Runtime cannot load (an
        unverified export's damaged file) is the user's folder, named."""
        if graph not in self._sessions:
            path = self.folder / self.sidecar["graphs"][graph]["file"]
            try:
                self._sessions[graph] = session(path, self.threads, self.layout_rewrite)
            except ort_errors() as error:
                raise UserError(
                    f"{path}: ONNX Runtime cannot load it ({' '.join(str(error).split())[:200]}); {REEXPORT}."
                ) from None
        return self._sessions[graph]

    def run(self, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
        ort_session = self._session(graph)
        names = [entry["name"] for entry in self.sidecar["graphs"][graph]["inputs"]]
        return ort_session.run(None, dict(zip(names, inputs)))

    def zero_state(self, graph: str, batch: int) -> list[np.ndarray]:
        """Zero state tensors of a step graph for ``batch`` signals."""
        return [
            np.zeros([batch if size == "batch" else size for size in entry["shape"]], dtype=entry["dtype"])
            for entry in self.sidecar["graphs"][graph]["inputs"][1:]
        ]


class OnnxStreamingEncoder(StreamingEncoder):
    """:class:`~audioenc.codec_io.StreamingEncoder` (its interface, chunk rules, level and checks),
    computed by ONNX Runtime: the ``encoder`` graph for a one-chunk signal, else ``encoder_step``
    with the state as explicit inputs and outputs."""

    def __init__(
        self,
        codec: OnnxCodec,
        model: CodecModel,
        n_q: int | None,
        scale: torch.Tensor | float | None,
        latent_check: Callable[[torch.Tensor, int], None] | None,
    ) -> None:
        self.codec = codec
        super().__init__(model, n_q, scale=scale, latent_check=latent_check)

    def state_numel(self) -> int:
        return 0 if self._state is None else sum(t.size for t in self._state)

    def _encode(self, audio: torch.Tensor, one_shot: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = audio.to(torch.float32).cpu().numpy()
        if one_shot:
            outputs = self.codec.run("encoder", x)
        else:
            if not self.codec.has("encoder_step"):
                raise UserError(
                    "Streaming: the model is not causal (or not zero-padded), so it needs the whole signal "
                    "at once; encode it in a single final chunk."
                )
            state = self._state if self._state is not None else self.codec.zero_state("encoder_step", x.shape[0])
            outputs = self.codec.run("encoder_step", x, *state)
            heads = 2 if self.model.quantizer.discrete else 1  # latents [, codes]
            outputs, self._state = outputs[:heads], outputs[heads:]
        codes = None if self.n_q is None else torch.from_numpy(outputs[1][:, : self.n_q])
        return torch.from_numpy(outputs[0]), codes


class OnnxStreamingDecoder(StreamingDecoder):
    """:class:`~audioenc.codec_io.StreamingDecoder` computed by ONNX Runtime (``decoder`` /
    ``decoder_step`` graphs, as :class:`OnnxStreamingEncoder`)."""

    def __init__(self, codec: OnnxCodec, model: CodecModel, scale: torch.Tensor | float | None) -> None:
        self.codec = codec
        super().__init__(model, scale)

    def state_numel(self) -> int:
        return 0 if self._state is None else sum(t.size for t in self._state)

    def _decode(self, encoded: torch.Tensor, one_shot: bool) -> torch.Tensor:
        x = encoded.long().numpy() if self.model.quantizer.discrete else encoded.to(torch.float32).numpy()
        if one_shot:
            return torch.from_numpy(self.codec.run("decoder", x)[0])
        if not self.codec.has("decoder_step"):
            raise UserError("a non-causal decoder needs all frames in one final chunk.")
        state = self._state if self._state is not None else self.codec.zero_state("decoder_step", x.shape[0])
        audio, *self._state = self.codec.run("decoder_step", x, *state)
        return torch.from_numpy(audio)


class OnnxRuntimeEngine:
    """Chunk-by-chunk encoding and decoding with the graphs of an ONNX export folder.

    Args:
        folder: written by :func:`audioenc.interop.onnx.export_onnx` from the same model.
        threads: intra-op threads of each session (None: ONNX Runtime's default).
    """

    name = "onnxruntime"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        self.codec = OnnxCodec(folder, threads)

    def check_model(self, model: CodecModel, config: ModelConfig | None = None) -> None:
        """Refuse a folder whose sidecar does not describe ``model`` (other weights, another configuration,
        hop, codebooks or level rule than it states)."""
        check_identity(self.codec.folder / SIDECAR, self.codec.sidecar, model, config)

    def streaming_encoder(
        self,
        model: CodecModel,
        n_q: int | None,
        *,
        scale: float,
        latent_check: Callable[[torch.Tensor, int], None] | None,
    ) -> OnnxStreamingEncoder:
        self.check_model(model)
        return OnnxStreamingEncoder(self.codec, model, n_q, scale, latent_check)

    def streaming_decoder(self, model: CodecModel, *, scale: float) -> OnnxStreamingDecoder:
        self.check_model(model)
        return OnnxStreamingDecoder(self.codec, model, scale)


@contextlib.contextmanager
def onnx_engine(
    model: CodecModel, config: ModelConfig, folder: str | os.PathLike | None = None, threads: int | None = None
) -> Iterator[OnnxRuntimeEngine]:
    """An :class:`OnnxRuntimeEngine` for ``model``: from ``folder`` (an export of this model), or
    from a temporary export that is removed afterwards (seconds to a minute for the paper model:
    export once with ``audioenc export RUN --format onnx OUT`` to run many files)."""
    if folder is not None:
        engine = OnnxRuntimeEngine(folder, threads)
        engine.check_model(model, config)
        yield engine
        return
    with tempfile.TemporaryDirectory(prefix="audioenc-onnx-") as tmp:
        export_onnx(model, config, Path(tmp) / "onnx")
        yield OnnxRuntimeEngine(Path(tmp) / "onnx", threads)
