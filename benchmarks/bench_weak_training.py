"""Where a weak-label CRNN's training step goes, and what the workflow's speed settings buy.

    python benchmarks/bench_weak_training.py [--steps 8] [--repeats 3]

One torch thread (as every workflow model trains), the embedded event corpus's training clips, batches
of 16, Adam; one training step = forward, clip BCE, backward, optimizer step. Side by side in one run,
interleaved (each repeat times every variant once, in turn), medians over repeats:

* ``gru`` / ``lstm``: the CRNN's recurrent cell (``crnn.rnn_cell``); torch trains an LSTM with oneDNN's
  fused kernel and a GRU one time step at a time.
* ``avgpool``: the conv blocks' pooling as ``nn.AvgPool2d`` (before ``BlockMean`` replaced it).
* ``6 apart`` / ``6 shared``: the six pooling rules of step 3, one CRNN each against one shared trunk with
  six heads (``weak.shared_trunk``), per step over all six.

Prints a Markdown table: seconds per step and the ratio to the first variant of its group.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from audioenc.audio.synth_events import default_event_corpus
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.fitting import clip_bce, collate_padded
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.shared_trunk import SharedTrunkCRNNs
from audioenc.timing.weak import BlockMean, CRNNConfig, WeakCRNN
from audioenc.timing.workflow.data import load_workflow_data


def _with_avgpool(model: WeakCRNN) -> WeakCRNN:
    """The model with torch's AvgPool2d where BlockMean stands (the same numbers)."""
    for block in model.cnn:
        for index, layer in enumerate(block):
            if isinstance(layer, BlockMean):
                block[index] = nn.AvgPool2d(layer.kernel_size)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_workflow_data(default_event_corpus(seed=0), log=lambda line: None)
    train = data.features["train"]
    inputs, targets = train.inputs(), torch.from_numpy(clip_targets(train.split, data.classes))
    batches = [list(range(16 * i, 16 * i + 16)) for i in range(args.steps)]

    def single(cell: str, avgpool: bool = False) -> Callable[[], None]:
        torch.manual_seed(0)
        model = WeakCRNN(data.classes, "attention", CRNNConfig(rnn_cell=cell), train.config)
        model = _with_avgpool(model) if avgpool else model
        optimizer = torch.optim.Adam(model.parameters(), 3e-3)

        def run() -> None:
            model.train()
            for rows in batches:
                batch, mask = collate_padded([inputs[row] for row in rows])
                loss = clip_bce(model(batch, mask).clip_scores, targets[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        return run

    def six(shared: bool) -> Callable[[], None]:
        config = CRNNConfig(rnn_cell="lstm")
        models = {}
        for rule in POOLING_NAMES:
            torch.manual_seed(0)
            models[rule] = WeakCRNN(data.classes, rule, config, train.config)
        joint = SharedTrunkCRNNs(models) if shared else None
        optimizers = (
            [torch.optim.Adam(joint.parameters(), 3e-3)]
            if shared
            else [torch.optim.Adam(model.parameters(), 3e-3) for model in models.values()]
        )

        def run() -> None:
            for rows in batches:
                batch, mask = collate_padded([inputs[row] for row in rows])
                if shared:
                    joint.train()
                    outputs = joint(batch, mask)
                    losses = [clip_bce(outputs[rule].clip_scores, targets[rows]) for rule in models]
                    optimizers[0].zero_grad()
                    torch.stack(losses).sum().backward()
                    optimizers[0].step()
                    continue
                for model, optimizer in zip(models.values(), optimizers):
                    model.train()
                    loss = clip_bce(model(batch, mask).clip_scores, targets[rows])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

        return run

    groups = {
        "recurrent cell": {"gru": single("gru"), "lstm": single("lstm")},
        "conv-block pooling (gru)": {"avgpool": single("gru", avgpool=True), "BlockMean": single("gru")},
        "step 3's six rules (lstm)": {"6 apart": six(False), "6 shared": six(True)},
    }
    for variants in groups.values():
        for run in variants.values():
            run()  # warm-up: oneDNN primitives, allocator
    seconds: dict[str, list[float]] = {name: [] for variants in groups.values() for name in variants}
    for _ in range(args.repeats):
        for variants in groups.values():
            for name, run in variants.items():
                started = time.perf_counter()
                run()
                seconds[name].append((time.perf_counter() - started) / args.steps)
    print(f"{args.steps} steps of batch 16, median of {args.repeats} interleaved repeats, 1 thread\n")
    print("| group | variant | s / step | ratio to first |")
    print("|---|---|---:|---:|")
    for group, variants in groups.items():
        first = statistics.median(seconds[next(iter(variants))])
        for name in variants:
            value = statistics.median(seconds[name])
            print(f"| {group} | {name} | {value:.3f} | {value / first:.2f} |")


if __name__ == "__main__":
    main()
