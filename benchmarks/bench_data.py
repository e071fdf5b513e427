"""Benchmark: 1 s training segments from ten-minute 32-channel 48 kHz files.

Compares, per worker process (one process = one DataLoader worker):

* ``seek+soxr`` — :class:`audioenc.audio.datasets.SegmentDataset`: seek-read only the
  segment's frames (plus the resampler margin), soxr to 24 kHz; ``mono`` (one random
  channel per item) and ``all`` (32 channels).
* ``whole+linear`` — what the source repository did: read the whole file, cut a random
  1 s span, resample it to 24 kHz by linear interpolation (``torch.nn.functional.interpolate``).

Each configuration runs in a fresh child process so that its peak resident memory
(``ru_maxrss``) is its own; the table gives segments per second, peak RSS, and the RSS
increase over the same process after imports (what the reading itself costs). Files are
written first (32 ch, 48 kHz, PCM-24, white noise; 2.76 GB per 10-minute file) into a
temporary directory and read from a warm page cache.

Usage::

    python benchmarks/bench_data.py                      # 2 files x 10 min, the defaults
    python benchmarks/bench_data.py --minutes 1 --files 1 --segments 50   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHANNELS = 32
SOURCE_RATE = 48_000
TARGET_RATE = 24_000


def make_files(directory: Path, files: int, minutes: float) -> list[Path]:
    """Write ``files`` white-noise files of ``minutes`` each (32 ch, 48 kHz, PCM-24), 10 s at a time."""
    import numpy as np
    import soundfile as sf

    paths = []
    for index in range(files):
        path = directory / f"long_{index}.wav"
        rng = np.random.default_rng(index)
        total = int(minutes * 60 * SOURCE_RATE)
        with sf.SoundFile(path, "w", SOURCE_RATE, CHANNELS, subtype="PCM_24") as handle:
            for start in range(0, total, 10 * SOURCE_RATE):
                frames = min(10 * SOURCE_RATE, total - start)
                handle.write(0.1 * rng.standard_normal((frames, CHANNELS), dtype=np.float32))
        paths.append(path)
    return paths


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def child(method: str, mode: str, directory: str, segments: int) -> dict:
    """Run one configuration in this (fresh) process and return its numbers."""
    import numpy as np
    import soundfile as sf
    import torch

    from audioenc.audio.datasets import SegmentDataset

    torch.set_num_threads(1)
    paths = sorted(Path(directory).glob("long_*.wav"))
    if method == "seek+soxr":
        dataset = SegmentDataset(
            directory,
            segment_seconds=1.0,
            sample_rate=TARGET_RATE,
            channel_mode=mode,
            channels=1 if mode == "mono" else CHANNELS,
            seed=0,
            items_per_epoch=10**9,
        )

        def load(index: int) -> torch.Tensor:
            return dataset[index]
    else:
        rng = np.random.default_rng(0)

        def load(index: int) -> torch.Tensor:
            path = paths[int(rng.integers(len(paths)))]
            audio, _ = sf.read(path, dtype="float32", always_2d=True)  # whole file: [frames, 32]
            start = int(rng.integers(0, audio.shape[0] - SOURCE_RATE))
            span = torch.from_numpy(np.ascontiguousarray(audio[start : start + SOURCE_RATE].T))
            if mode == "mono":
                span = span[int(rng.integers(CHANNELS))][None]
            del audio
            return torch.nn.functional.interpolate(span[None], size=TARGET_RATE, mode="linear", align_corners=False)[0]

    sf.info(str(paths[0]))  # import everything a read needs before the baseline RSS
    base_rss = _rss_mb()
    first = load(0)  # warm-up (the first read includes lazy initialisation)
    assert first.shape == (1 if mode == "mono" else CHANNELS, TARGET_RATE), first.shape
    started = time.perf_counter()
    for index in range(1, segments + 1):
        load(index)
    elapsed = time.perf_counter() - started
    return {
        "method": method,
        "mode": mode,
        "segments": segments,
        "seconds": elapsed,
        "segments_per_s": segments / elapsed,
        "peak_rss_mb": _rss_mb(),
        "base_rss_mb": base_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each file (default 10)")
    parser.add_argument("--files", type=int, default=2, help="number of files (default 2)")
    parser.add_argument("--segments", type=int, default=200, help="timed segments for seek+soxr (default 200)")
    parser.add_argument(
        "--baseline-segments",
        type=int,
        default=3,
        help="timed segments for whole+linear (each reads a whole file; default 3)",
    )
    parser.add_argument("--workdir", default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "MODE", "DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, mode, directory, segments = args.child
        print(json.dumps(child(method, mode, directory, int(segments))))
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench_data_", dir=args.workdir))
    try:
        started = time.perf_counter()
        paths = make_files(workdir, args.files, args.minutes)
        size_gb = sum(path.stat().st_size for path in paths) / 1e9
        print(
            f"wrote {args.files} x {args.minutes:g} min, 32 ch, 48 kHz, PCM-24 ({size_gb:.2f} GB) "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        rows = []
        for method, count in (("seek+soxr", args.segments), ("whole+linear", args.baseline_segments)):
            for mode in ("mono", "all"):
                result = subprocess.run(
                    [sys.executable, __file__, "--child", method, mode, str(workdir), str(count)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=dict(os.environ, OMP_NUM_THREADS="1"),
                )
                row = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"  {method:12s} {mode:4s}: {row['segments_per_s']:.2f} segments/s", flush=True)
        print()
        print("| method | mode | segments timed | segments/s | ms/segment | peak RSS (MB) | RSS over imports (MB) |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            print(
                f"| {row['method']} | {row['mode']} | {row['segments']} | {row['segments_per_s']:.2f} | "
                f"{1000 / row['segments_per_s']:.1f} | {row['peak_rss_mb']:.0f} | "
                f"{row['peak_rss_mb'] - row['base_rss_mb']:.0f} |"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
