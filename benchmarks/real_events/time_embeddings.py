"""Time a frozen encoder's embeddings on a corpus's clips, with the embedding cache cold, then warm.

    python benchmarks/real_events/time_embeddings.py --data /tmp/speech_events --encoder crepe-tiny \
        --cache /tmp/h8/cache_timing --passes 2 --json /tmp/h8/cache_timing.json

Each pass calls :func:`audioenc.timing.encoders.encoder_embeddings` once on every clip of
``DIR/audio/{train,validation,test}/`` (or the first ``--clips``), one thread, with one
:class:`~audioenc.core.cache.ArrayCache` per pass rooted at ``--cache`` (a fresh folder makes the
first pass cold; later passes read what it stored). ``--no-cache`` computes every clip each pass.
Prints, per pass, the seconds (total and per clip), the cache's hits and misses, and the cache's size
on disk; the speed-up is the first pass's time over the last's. Loading the encoder (and hashing its
weights for the cache key) is timed apart, since a run pays it once.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from audioenc.core.cache import folder_bytes
from audioenc.timing.encoders import embedding_cache, encoder_embeddings, load_encoder

SPLITS = ("train", "validation", "test")


def corpus_clips(data: Path, limit: int | None) -> list[tuple[Path, str]]:
    """``(audio folder, filename)`` of every ``.wav`` under the layout's splits, sorted, the first ``limit``."""
    folders = [data / "audio" / split for split in SPLITS]
    clips = [(folder, path.name) for folder in folders for path in sorted(folder.glob("*.wav"))]
    return clips[:limit] if limit else clips


def time_passes(encoder: str, data: Path, cache_root: Path | None, passes: int, limit: int | None) -> dict:
    """Load ``encoder`` once, then embed the clips ``passes`` times; the timings as JSON data."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    handle = load_encoder(encoder)
    loaded = time.perf_counter() - start
    clips = corpus_clips(data, limit)
    folders = sorted({folder for folder, _ in clips})
    result = {"encoder": encoder, "data": str(data), "clips": len(clips), "load_seconds": loaded, "passes": []}
    for index in range(passes):
        start = time.perf_counter()
        cache = embedding_cache(handle, root=cache_root, enabled=cache_root is not None)
        keyed = time.perf_counter() - start  # the fingerprint hashes every weight once
        start = time.perf_counter()
        for folder in folders:
            encoder_embeddings(handle, folder, [name for where, name in clips if where == folder], cache=cache)
        seconds = time.perf_counter() - start
        size = folder_bytes(cache_root) if cache_root is not None else 0
        result["passes"].append(
            {
                "pass": index + 1,
                "seconds": seconds,
                "seconds_per_clip": seconds / len(clips),
                "fingerprint_seconds": keyed,
                "hits": cache.stats.hits,
                "misses": cache.stats.misses,
                "cache_bytes": size,
            }
        )
        print(
            f"pass {index + 1}: {seconds:.1f} s for {len(clips)} clips ({seconds / len(clips):.3f} s/clip), "
            f"{cache.stats.hits} hits, {cache.stats.misses} misses, cache {size / 1e6:.1f} MB "
            f"(key {keyed:.2f} s)",
            flush=True,
        )
    if passes > 1:
        result["speedup"] = result["passes"][0]["seconds"] / result["passes"][-1]["seconds"]
        print(f"speed-up, pass 1 over pass {passes}: {result['speedup']:.1f}x")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="corpus folder (DIR/audio/{split}/*.wav)")
    parser.add_argument("--encoder", default="crepe-tiny", help="what `audioenc workflow --encoder` takes")
    parser.add_argument("--cache", type=Path, default=None, help="the arrays folder to use (fresh = cold)")
    parser.add_argument("--no-cache", action="store_true", help="compute every clip in every pass")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--clips", type=int, default=None, help="only the first N clips (train first)")
    parser.add_argument("--json", type=Path, default=None, help="also write the timings here")
    args = parser.parse_args()
    if args.cache is None and not args.no_cache:
        parser.error("give --cache DIR (a fresh folder for a cold first pass) or --no-cache")
    result = time_passes(args.encoder, args.data, None if args.no_cache else args.cache, args.passes, args.clips)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
