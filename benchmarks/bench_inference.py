"""Benchmark: encode / decode real-time factor, audioenc against audiocraft's SEANet, one CPU thread.

Both sides at the same configuration (audioenc's ``paper`` 1ch model: SEANet ``encodec_base_24khz``
sizes, causal, 24 kHz mono, fp32, random weights — the work does not depend on their values) on the
same ``--seconds`` of audio, timed interleaved after one warm-up each:

* ``audioenc stream`` — what ``audioenc encode`` / ``decode`` run: :class:`StreamingEncoder` /
  :class:`StreamingDecoder` over chunks of ``--chunk-frames`` frames (the command's default, 150
  = 2 s), carrying each layer's state;
* ``audioenc one-shot`` — ``model.encoder(x)`` / ``model.decoder(z)`` on the whole signal, under
  ``torch.inference_mode`` with the weight-norm weights computed once (``parametrize.cached``);
* ``onnxruntime stream`` / ``onnxruntime one-shot`` — the same model exported with
  :func:`audioenc.interop.onnx.export_onnx` (to a temporary folder, before timing), run by ONNX
  Runtime with ``--threads`` intra-op threads: the step graphs over the same chunks (what
  ``audioenc encode/decode --backend onnxruntime`` run), and ``encoder.onnx`` / ``decoder.onnx`` on
  the whole signal. Skipped when onnxruntime is not installed (``pip install 'audioenc[onnx]'``);
* ``audiocraft`` — its ``SEANetEncoder`` / ``SEANetDecoder`` forward on the whole signal under
  ``torch.no_grad`` (what its ``EncodecModel.encode`` runs for a continuous model).

``RTF`` is audio seconds per second of compute (higher is faster); ``vs audiocraft`` is the ratio
of RTFs measured in the same run; ``vs torch`` the ratio to ``audioenc one-shot`` (PyTorch).

Usage::

    python benchmarks/bench_inference.py --audiocraft ~/src/audiocraft --audiocraft-deps /tmp/audiocraft-deps
    python benchmarks/bench_inference.py --threads 1 --seconds 10 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn.utils import parametrize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audiocraft_reference  # noqa: E402
from bench_model import load_average, machine_line, set_threads  # noqa: E402

from audioenc.codec_io import DEFAULT_CHUNK_FRAMES, StreamingDecoder, StreamingEncoder  # noqa: E402
from audioenc.config import build_config  # noqa: E402
from audioenc.models.codec import CodecModel  # noqa: E402


def stream_encode(model: CodecModel, audio: torch.Tensor, chunk: int) -> torch.Tensor:
    encoder = StreamingEncoder(model, scale=model.input_scale(audio))  # the level: one pass over the signal
    parts, length = [], audio.shape[-1]
    for start in range(0, length, chunk):
        parts.append(encoder.encode_chunk(audio[..., start : start + chunk], final=start + chunk >= length))
    return torch.cat(parts, dim=-1)


def stream_decode(model: CodecModel, latents: torch.Tensor, frames: int) -> torch.Tensor:
    decoder = StreamingDecoder(model, scale=1.0)  # restoring a level is one multiply; timed alike
    total = latents.shape[-1]
    parts = [
        decoder.decode_chunk(latents[..., s : s + frames], final=s + frames >= total) for s in range(0, total, frames)
    ]
    return torch.cat(parts, dim=-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audiocraft", default=None)
    parser.add_argument("--audiocraft-deps", default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunk-frames", type=int, default=DEFAULT_CHUNK_FRAMES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)

    config = build_config("1ch", "paper")
    torch.manual_seed(0)
    model = CodecModel.from_config(config.model).eval()
    sample_rate, hop = config.model.sample_rate, model.hop_length
    audio = 0.1 * torch.randn(1, 1, round(args.seconds * sample_rate), generator=torch.Generator().manual_seed(0))
    latents = model.encoder(audio).detach()

    def one_shot_encode():
        with torch.inference_mode(), parametrize.cached():
            return model.encoder(audio)

    def one_shot_decode():
        with torch.inference_mode(), parametrize.cached():
            return model.decoder(latents)

    encoders = {
        "audioenc stream": lambda: stream_encode(model, audio, args.chunk_frames * hop),
        "audioenc one-shot": one_shot_encode,
    }
    decoders = {
        "audioenc stream": lambda: stream_decode(model, latents, args.chunk_frames),
        "audioenc one-shot": one_shot_decode,
    }

    onnx_folder = None
    if importlib.util.find_spec("onnxruntime") is not None:
        from audioenc.interop.onnx import export_onnx
        from audioenc.interop.onnx_runtime import OnnxCodec, OnnxStreamingDecoder, OnnxStreamingEncoder

        onnx_folder = tempfile.TemporaryDirectory(prefix="bench-onnx-")
        started = time.perf_counter()
        export_onnx(model, config.model, f"{onnx_folder.name}/paper")
        print(f"ONNX export of the paper model: {time.perf_counter() - started:.1f} s")
        onnx = OnnxCodec(f"{onnx_folder.name}/paper", threads=args.threads)
        audio_np, latents_np = audio.numpy(), latents.numpy()

        def ort_stream_encode():
            encoder = OnnxStreamingEncoder(onnx, model, None, model.input_scale(audio), None)
            chunk, length = args.chunk_frames * hop, audio.shape[-1]
            return [
                encoder.encode_chunk(audio[..., s : s + chunk], final=s + chunk >= length)
                for s in range(0, length, chunk)
            ]

        def ort_stream_decode():
            decoder = OnnxStreamingDecoder(onnx, model, 1.0)
            frames, total = args.chunk_frames, latents.shape[-1]
            return [
                decoder.decode_chunk(latents[..., s : s + frames], final=s + frames >= total)
                for s in range(0, total, frames)
            ]

        encoders["onnxruntime stream"] = ort_stream_encode
        encoders["onnxruntime one-shot"] = lambda: onnx.run("encoder", audio_np)
        decoders["onnxruntime stream"] = ort_stream_decode
        decoders["onnxruntime one-shot"] = lambda: onnx.run("decoder", latents_np)

    modules = audiocraft_reference.load_if_given(args.audiocraft, args.audiocraft_deps)
    if modules is not None:
        ref = audiocraft_reference.build_reference_step(modules, config, channels=1)
        ref.encoder.eval()
        ref.decoder.eval()

        def ref_encode():
            with torch.no_grad():
                return ref.encoder(audio)

        def ref_decode():
            with torch.no_grad():
                return ref.decoder(latents)

        encoders["audiocraft"] = ref_encode
        decoders["audiocraft"] = ref_decode

    print(machine_line(torch.device("cpu")))
    print(
        f"{args.seconds:g} s of 24 kHz mono, fp32, chunks of {args.chunk_frames} frames; load before {load_average()}"
    )
    times = {(kind, name): [] for kind, table in (("encode", encoders), ("decode", decoders)) for name in table}
    for table in (encoders, decoders):
        for function in table.values():
            function()  # warm-up
    for repeat in range(args.repeats):
        for kind, table in (("encode", encoders), ("decode", decoders)):
            names = list(table) if repeat % 2 == 0 else list(reversed(table))
            for name in names:
                start = time.perf_counter()
                table[name]()
                times[(kind, name)].append(time.perf_counter() - start)
    print(f"load after {load_average()}\n")
    print("| direction | side | s (median) | RTF (× real time) | vs torch one-shot | vs audiocraft |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for kind, table in (("encode", encoders), ("decode", decoders)):
        reference = times.get((kind, "audiocraft"))
        torch_one_shot = statistics.median(times[(kind, "audioenc one-shot")])
        for name in table:
            seconds = statistics.median(times[(kind, name)])
            ratio = f"{statistics.median(reference) / seconds:.2f}×" if reference else "—"
            print(
                f"| {kind} | {name} | {seconds:.3f} | {args.seconds / seconds:.1f} | "
                f"{torch_one_shot / seconds:.2f}× | {ratio} |"
            )
    if onnx_folder is not None:
        onnx_folder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
