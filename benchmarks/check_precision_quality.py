"""Quality check: does bf16 autocast or torch.compile train as well as fp32 on the small preset?

Runs ``audioenc train --1ch --preset small`` (the same seed, data and number of steps) once per
variant — ``fp32``, ``bf16`` (``train.precision=bf16``) and ``compile`` (``train.compile=true``) —
and prints the validation mel distance after every epoch side by side, the ratio of each variant's
to fp32's at the end of the adversarial warm-up and at the best epoch, and each run's wall time.

The tolerance the project states: a variant passes when its best validation mel distance and its
mel distance at the end of the warm-up are both within ``--tolerance`` (default 10 %) of fp32's.
GAN training is chaotic once the adversarial losses join, so individual later epochs may differ
more; the best epoch is what a user keeps.

Usage::

    python benchmarks/check_precision_quality.py                      # fp32, bf16, compile
    python benchmarks/check_precision_quality.py --variants fp32,bf16 --tolerance 0.1 --json /tmp/q.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import load_average, machine_line  # noqa: E402

from audioenc.config import build_config  # noqa: E402
from audioenc.training.run import train  # noqa: E402

VARIANTS = {"fp32": [], "bf16": ["train.precision=bf16"], "compile": ["train.compile=true"]}


def run_variant(name: str, overrides: list[str], root: Path) -> dict:
    config = build_config("1ch", "small", [*VARIANTS[name], *overrides, "train.logger=none"])
    start = time.perf_counter()
    train(config, root / name, resume=False, progress=False)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"variant": name, "seconds": seconds, "rows": rows, "warmup_steps": config.train.adversarial_warmup_steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="fp32,bf16,compile")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every variant")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.variants.split(",")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or "fp32" not in names:
        parser.error(f"--variants must include fp32 and be among {sorted(VARIANTS)}; got {names}")

    print(machine_line(torch.device("cpu")))
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as folder:
        results = {name: run_variant(name, args.overrides, Path(folder)) for name in names}
    print(f"load average after: {load_average()}")

    fp32 = results["fp32"]
    epochs = [row["epoch"] for row in fp32["rows"]]
    print("\n| epoch | step | " + " | ".join(f"{n} mel" for n in names) + " |")
    print("| ---: | ---: | " + " | ".join("---:" for _ in names) + " |")
    for index, epoch in enumerate(epochs):
        cells = [f"{results[n]['rows'][index]['mel_distance']:.4f}" for n in names]
        print(f"| {epoch} | {fp32['rows'][index]['step']} | " + " | ".join(cells) + " |")

    def at_warmup_end(result):
        return next(r["mel_distance"] for r in result["rows"] if r["step"] >= result["warmup_steps"])

    def best(result):
        return min(r["mel_distance"] for r in result["rows"])

    print("\n| variant | wall s | mel at warm-up end | ratio to fp32 | best mel | ratio to fp32 | within tolerance |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    failed = []
    for name in names:
        result = results[name]
        warm, top = at_warmup_end(result), best(result)
        warm_ratio, best_ratio = warm / at_warmup_end(fp32), top / best(fp32)
        ok = abs(warm_ratio - 1) <= args.tolerance and abs(best_ratio - 1) <= args.tolerance
        if not ok:
            failed.append(name)
        print(
            f"| {name} | {result['seconds']:.1f} | {warm:.4f} | {warm_ratio:.3f} | {top:.4f} | {best_ratio:.3f} | "
            f"{'yes' if ok else 'NO'} (±{args.tolerance:.0%}) |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
