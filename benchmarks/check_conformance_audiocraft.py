"""Conformance: audioenc's training step against audiocraft's ``CompressionSolver.run_step``, float64.

Both steps are built at the same configuration (audioenc's ``small`` preset by default, mono), with
audioenc's codec and discriminator weights copied into audiocraft's own modules (same architecture;
the parameter names are translated mechanically and checked one-to-one, shape by shape), and fed
the same batches. Everything runs in float64 (``torch.set_default_dtype(torch.float64)`` before
anything is built: audiocraft accumulates its adversarial, feature-matching and discriminator losses
into ``torch.tensor(0.)`` in place, which would round them to the default dtype). Compared after
every step:

* the reconstruction, every loss term (L1, multi-scale mel, generator hinge, feature matching,
  discriminator hinge), the RVQ commitment penalty and the balancer's effective loss;
* the discriminator's gradients and its weights after its Adam step;
* the balanced gradient at the codec's output (a tensor hook on the decoder output), the codec's
  parameter gradients after the backward, and the codec's weights after the Adam step;
* the balancer's EMA state (per-loss EMA sums, the EMA count, the averaged norms);
* with RVQ: the codes, and every codebook buffer (``embed``, ``embed_avg``, ``cluster_size``).

Differences: ``max abs`` is the largest absolute difference over all entries; ``max rel`` is, per
tensor, the largest absolute difference divided by the largest magnitude of audiocraft's tensor,
maximised over the tensors of the quantity (single entries near zero carry only rounding; the
scale of a tensor is the meaningful reference). A tensor that is zero in theory (largest magnitude
below 1e-9 of the quantity's largest) is measured against the quantity's largest magnitude instead:
under the hinge loss in its linear range the discriminator's last biases get an exactly cancelling
gradient, 0.0 from audiocraft's two calls and ~1e-18 from audioenc's one call on [real; fake].
Verdict ``equal`` at ``max rel <= 1e-10``.

Runs (``--runs``):

* ``continuous``: the continuous codec (audioenc's default, ``model.quantizer=none``; audiocraft's
  ``DummyQuantizer``), ``--steps`` consecutive steps;
* ``rvq``: the RVQ codec, quantizer dropout off, dead-code expiry off (threshold 0 on both sides),
  codebooks initialised once by audioenc's k-means (cascaded over the layers as its first training
  forward does) on an extra batch that is not trained on, and copied into audiocraft's codebooks,
  then ``--steps`` steps on the same batches as the continuous run;
* ``deliberate``: one step each of the settings where audioenc differs from audiocraft on purpose,
  to show the size of each difference: relative feature matching (EnCodec Eq. 3, audioenc's
  default), dead-code expiry at threshold 2 (audioenc expires after the EMA update, audiocraft's
  expiry is overwritten by its own EMA update), each side's own k-means initialisation (audioenc
  stores ``embed_avg = means · counts``, audiocraft ``embed_avg = means``), and audioenc's mel
  filterbank as shipped (built in float64 by librosa, stored as float32).

In the equality runs audioenc's mel filterbank buffers are replaced by the same librosa filterbank
kept in float64 (audioenc stores them as float32, which is exact enough for float32 training but
limits a float64 comparison to ~1e-8; the ``deliberate`` run shows that on its own).

Configuration held equal on both sides (audioenc's config feeds audiocraft's blocks, see
``audiocraft_reference.build_reference_step``): ``model.normalize=false`` (audiocraft's 24 kHz
EnCodec has ``renormalize: false``; audioenc's per-segment level normalisation is a deliberate
addition), ``losses.relative_feature_matching=false`` (audiocraft never applies the relative scale),
``train.adversarial_warmup_steps=0``, ``model.q_dropout=false``.

Usage::

    .venv/bin/pip install --no-deps --target /tmp/audiocraft-deps torchaudio==2.11.0 einops flashy
    rm -r /tmp/audiocraft-deps/torchaudio/lib
    .venv/bin/python benchmarks/check_conformance_audiocraft.py \\
        --audiocraft /tmp/audiocraft --audiocraft-deps /tmp/audiocraft-deps
    # the paper's codec, one step, a small batch:
    .venv/bin/python benchmarks/check_conformance_audiocraft.py --audiocraft /tmp/audiocraft \\
        --audiocraft-deps /tmp/audiocraft-deps --preset paper --batch 2 --seconds 1 --steps 1 \\
        --runs continuous,rvq

Weights after Adam's first step may exceed 1e-10 where a gradient entry is near Adam's ε (its
update ``lr·g/(|g|+ε)`` amplifies the gradient's rounding by up to ``lr/ε``); such a row is
``equal up to rounding`` when the entrywise bound of :func:`adam_first_step_ratio` holds.

Exit code: 0 when every quantity of the equality runs is equal to 1e-10 relative (or within that
bound), 1 when one is not, 2 when no audiocraft checkout is given or it cannot be loaded (the
message says what to do).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audiocraft_sides import Sides, add_audiocraft_arguments, build_sides, load_or_explain
from bench_model import machine_line

from audioenc.config import build_config
from audioenc.core.mel import mel_filterbank
from audioenc.training.trainer import Trainer

TOLERANCE = 1e-10
# audioenc's loss names -> audiocraft's (the solver's balanced_losses keys).
LOSS_NAMES = {"l1": "l1", "mel": "msspec", "adv": "adv_msstftd", "feat": "feat_msstftd"}

# ----------------------------------------------------------------------------- the configuration


def conformance_sides(
    modules, args, run_dir: Path, quantizer: str, relative_feat: bool = False, threshold: float = 0.0
) -> Sides:
    """Both sides in float64 at ``args``' preset, with audiocraft's settings on audioenc's side."""
    overrides = [
        "model.normalize=false",
        "train.adversarial_warmup_steps=0",
        "model.q_dropout=false",
        f"model.quantizer={quantizer}",
        f"losses.relative_feature_matching={str(relative_feat).lower()}",
        "train.device=cpu",
        f"train.seed={args.seed}",
    ]
    if args.batch:
        overrides.append(f"train.batch_size={args.batch}")
    if args.seconds:
        overrides.append(f"data.segment_seconds={args.seconds}")
    config = build_config(args.mode, args.preset, overrides)
    return build_sides(modules, config, run_dir, dtype=torch.float64, threshold=threshold, keep_output_grads=True)


# ----------------------------------------------------------------------------- comparison


# A tensor whose largest magnitude is below this share of its quantity's largest magnitude is zero
# in theory (e.g. the discriminator's last biases under a hinge loss in its linear range): its
# difference is measured against the quantity's scale, not its own rounding-level scale.
ZERO_IN_THEORY = 1e-9


def _pair_diff(a: torch.Tensor, b: torch.Tensor, quantity_scale: float = 0.0) -> tuple[float, float]:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    abs_diff = (a - b).abs().max().item() if a.numel() else 0.0
    scale = b.abs().max().item() if b.numel() else 0.0
    if scale < ZERO_IN_THEORY * quantity_scale:
        scale = quantity_scale
    rel = abs_diff / scale if scale > 0 else (0.0 if abs_diff == 0 else math.inf)
    return abs_diff, rel


def diff(pairs) -> tuple[float, float]:
    """(max abs, max rel) over ``[(audioenc, audiocraft), ...]`` (rel per tensor, see the docstring)."""
    pairs = [(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)) for a, b in pairs]
    quantity_scale = max((b.abs().max().item() for _, b in pairs if b.numel()), default=0.0)
    worst_abs = worst_rel = 0.0
    for a, b in pairs:
        abs_diff, rel = _pair_diff(a, b, quantity_scale)
        worst_abs, worst_rel = max(worst_abs, abs_diff), max(worst_rel, rel)
    return worst_abs, worst_rel


@dataclass
class Row:
    quantity: str
    abs_diff: float
    rel_diff: float
    note: str = ""
    # Weights after Adam's first step: the difference is entrywise within what the gradients'
    # rounding difference gives through Adam (see adam_first_step_ratio).
    explained: bool = False

    @property
    def equal(self) -> bool:
        return self.rel_diff <= TOLERANCE

    @property
    def passes(self) -> bool:
        return self.equal or self.explained


def adam_first_step_ratio(weight_pairs, grad_pairs, optimizer: torch.optim.Optimizer) -> float | None:
    """Largest ``|Δw| / bound`` over all entries after Adam's first step, or None after later steps.

    At step 1 Adam moves each weight by ``lr · g / (|g| + ε)`` (the bias corrections cancel), whose
    derivative is ``lr · ε / (|g| + ε)²``: up to ``lr / ε`` (1e5 at lr 1e-3) for entries with
    ``|g| ≲ ε``, so a gradient rounding difference ``Δg`` of 1e-17 can move such a weight by 1e-12.
    ``bound = 1.01 · lr · ε / (|g| + ε)² · |Δg| + 4 ulp(max(|w|, lr))``; a ratio ≤ 1 means the weight
    difference is the gradient's rounding difference carried through Adam's first step, nothing else.
    """
    group = optimizer.param_groups[0]
    states = [optimizer.state.get(p, {}) for p in group["params"]]
    if any(int(state.get("step", 0)) != 1 for state in states):
        return None
    lr, eps = group["lr"], group["eps"]
    ulp = torch.finfo(torch.float64).eps
    worst = 0.0
    for (w_ours, w_theirs), (g_ours, g_theirs) in zip(weight_pairs, grad_pairs):
        dw = (w_ours - w_theirs).abs()
        g = g_theirs.abs()
        bound = 1.01 * lr * eps / (g + eps) ** 2 * (g_ours - g_theirs).abs() + 4 * ulp * w_theirs.abs().clamp(min=lr)
        worst = max(worst, (dw / bound).max().item())
    return worst


def weights_row(name: str, weight_pairs, grad_pairs, optimizer) -> Row:
    weight_pairs, grad_pairs = list(weight_pairs), list(grad_pairs)
    row = Row(name, *diff(weight_pairs))
    if not row.equal:
        ratio = adam_first_step_ratio(weight_pairs, grad_pairs, optimizer)
        if ratio is not None and ratio <= 1.0:
            row.explained = True
            row.note = (
                f"gradient rounding through Adam's first step (|Δw| ≤ lr·ε/(|g|+ε)²·|Δg| entrywise, "
                f"largest ratio {ratio:.2g})"
            )
    return row


def exact_filterbanks(trainer: Trainer) -> float:
    """Give audioenc's mel loss the float64 librosa filterbank it rounds to float32; returns the
    largest relative change (the float32 rounding)."""
    worst = 0.0
    for mel in trainer.mel_loss.mels:
        bank = torch.from_numpy(
            np.array(mel_filterbank(mel.sample_rate, mel.n_fft, mel.n_mels, 0.0, mel.sample_rate / 2))
        )
        if not torch.equal(bank.float().double(), mel.filterbank.double()):
            raise RuntimeError("audioenc's filterbank is not the librosa one this check expects")
        worst = max(worst, _pair_diff(mel.filterbank, bank)[1])
        mel.filterbank = bank
        mel.filterbank_nonempty = bank[bank.sum(dim=1) != 0]
    return worst


def filterbank_rows(sides: Sides) -> list[Row]:
    """audioenc's mel filterbanks against torchaudio's (the ones audiocraft's msspec uses)."""
    ours, theirs = [], []
    for mel, wrapper in zip(sides.trainer.mel_loss.mels, sides.reference.mel_loss.l1s):
        ours.append(mel.filterbank)
        theirs.append(wrapper.mel_transform.mel_scale.fb.t())
    return [Row("mel filterbanks (librosa float64 vs torchaudio float64)", *diff(zip(ours, theirs)))]


def init_codebooks_like_audioenc(sides: Sides, audio: torch.Tensor) -> None:
    """audioenc's first-batch k-means, cascaded over the layers exactly as its first training
    forward does (each layer on the residual of the k-means codebooks before it), without the
    EMA update; the resulting buffers are copied into audiocraft's codebooks."""
    quantizer = sides.trainer.model.quantizer
    with torch.no_grad():
        residual = quantizer._flatten(sides.trainer.model.encoder(audio))
        for layer in quantizer.layers:
            layer.initialize_(residual)
            residual = residual - layer.decode(layer.encode(residual))
    copy_codebooks(sides)


def copy_codebooks(sides: Sides) -> None:
    with torch.no_grad():
        for ours, theirs in zip(sides.trainer.model.quantizer.layers, sides.codec.quantizer.vq.layers):
            book = theirs._codebook
            book.embed.copy_(ours.embed)
            book.embed_avg.copy_(ours.embed_avg)
            book.cluster_size.copy_(ours.cluster_size)
            book.inited.fill_(1.0)


# ----------------------------------------------------------------------------- one step per side


def audiocraft_step(sides: Sides, audio: torch.Tensor) -> dict:
    """``CompressionSolver.run_step``, training branch (audiocraft/solvers/compression.py), line by
    line with the solver's own objects; the codec's gradients are read before the final
    ``zero_grad``. Logging-only extras (ratio1/ratio2 norms, info losses) are left out."""
    ref, model = sides.reference, sides.codec
    model.train()
    x = audio
    y = x.clone()
    qres = model(x)
    y_pred = qres.x
    # adversarial.every = 1: `torch.rand(1, generator=rng) <= 1 / every` is always true.
    d_loss = ref.adversarial_loss.train_adv(y_pred, y)
    balanced_losses, other_losses = {}, {}
    if qres.penalty is not None and qres.penalty.requires_grad:
        other_losses["penalty"] = qres.penalty
    adv_loss, feat_loss = ref.adversarial_loss(y_pred, y)
    balanced_losses["adv_msstftd"] = adv_loss
    balanced_losses["feat_msstftd"] = feat_loss
    # aux_losses in the order of cfg.losses (l1, msspec; mel and sisnr have weight 0).
    balanced_losses["l1"] = torch.nn.L1Loss()(y_pred, y)
    balanced_losses["msspec"] = ref.mel_loss(y_pred, y)
    other_loss = torch.tensor(0.0, device=x.device)
    if "penalty" in other_losses:
        other_loss += other_losses["penalty"]
    if other_loss.requires_grad:
        other_loss.backward(retain_graph=True)
    g_loss = ref.balancer.backward(balanced_losses, y_pred)
    codec_grads = {name: theirs.grad.detach().clone() for name, (_, theirs) in sides.codec_map.pairs.items()}
    ref.optimizer.step()
    ref.optimizer.zero_grad()
    return {
        "reconstruction": y_pred.detach().clone(),
        "codes": qres.codes.detach().clone() if qres.penalty is not None else None,
        "losses": {
            "d_loss": d_loss.item(),
            "g_loss": g_loss.item(),
            **{k: v.item() for k, v in balanced_losses.items()},
            "penalty": qres.penalty.item() if qres.penalty is not None else 0.0,
        },
        "codec_grads": codec_grads,
    }


def audioenc_step(sides: Sides, audio: torch.Tensor) -> dict:
    """``Trainer.train_step``, unchanged; reconstruction and codes from a forward hook."""
    captured = {}
    handle = sides.trainer.model.register_forward_hook(lambda mod, inp, out: captured.update(output=out))
    try:
        result = sides.trainer.train_step(audio)
    finally:
        handle.remove()
    if result.skipped:
        raise FloatingPointError(f"audioenc skipped the step: {result.values}")
    output = captured["output"]
    codec_grads = {name: ours.grad.detach().clone() for name, (ours, _) in sides.codec_map.pairs.items()}
    return {
        "reconstruction": output.audio.detach().clone(),
        "codes": output.codes.detach().clone() if output.codes is not None else None,
        "losses": dict(result.values),
        "codec_grads": codec_grads,
    }


def compare_step(sides: Sides, ours: dict, theirs: dict) -> list[Row]:
    rows = [Row("reconstruction ŷ (forward)", *diff([(ours["reconstruction"], theirs["reconstruction"])]))]
    if ours["codes"] is not None:
        mismatched = int((ours["codes"] != theirs["codes"]).sum())
        rows.append(Row("RVQ codes (entries that differ)", float(mismatched), 0.0 if mismatched == 0 else math.inf))
        rows.append(Row("RVQ commitment penalty", *diff([(ours["losses"]["commitment"], theirs["losses"]["penalty"])])))
    lo, lt = ours["losses"], theirs["losses"]
    rows.append(Row("discriminator hinge loss", *diff([(lo["d_loss"], lt["d_loss"])])))
    labels = {
        "l1": "L1 loss",
        "mel": "multi-scale mel loss",
        "adv": "adversarial (generator hinge) loss",
        "feat": "feature-matching loss",
    }
    for key, label in labels.items():
        rows.append(Row(label, *diff([(lo[key], lt[LOSS_NAMES[key]])])))
    rows.append(Row("balancer effective loss", *diff([(lo["effective_loss"], lt["g_loss"])])))

    disc = sides.disc_map.pairs.values()
    rows.append(Row("discriminator gradients", *diff((a.grad, b.grad) for a, b in disc)))
    rows.append(
        weights_row(
            "discriminator weights after Adam",
            ((a.detach(), b.detach()) for a, b in disc),
            ((a.grad, b.grad) for a, b in disc),
            sides.trainer.optimizer_disc,
        )
    )

    # Balancer EMA: audioenc keeps ema_sum / ema_count; flashy's averager keeps total / fix per key.
    closure = dict(
        zip(
            sides.reference.balancer.averager.__code__.co_freevars,
            (c.cell_contents for c in sides.reference.balancer.averager.__closure__),
        )
    )
    total, fix = closure["total"], closure["fix"]
    balancer = sides.trainer.balancer
    rows.append(
        Row("balancer EMA sums (per loss)", *diff((balancer._ema_sum[k], total[LOSS_NAMES[k]]) for k in LOSS_NAMES))
    )
    rows.append(Row("balancer EMA count", *diff((balancer._ema_count, fix[LOSS_NAMES[k]]) for k in LOSS_NAMES)))
    rows.append(
        Row(
            "balancer averaged norms",
            *diff(
                (balancer._ema_sum[k] / balancer._ema_count, total[LOSS_NAMES[k]] / fix[LOSS_NAMES[k]])
                for k in LOSS_NAMES
            ),
        )
    )

    rows.append(
        Row(
            "balanced gradient at the codec output",
            *diff([(sides.ours_output_grads[-1], sides.theirs_output_grads[-1])]),
        )
    )
    rows.append(
        Row(
            "codec gradients (after the backward)",
            *diff((ours["codec_grads"][k], theirs["codec_grads"][k]) for k in sides.codec_map.pairs),
        )
    )
    rows.append(
        weights_row(
            "codec weights after Adam",
            ((a.detach(), b.detach()) for a, b in sides.codec_map.pairs.values()),
            ((ours["codec_grads"][k], theirs["codec_grads"][k]) for k in sides.codec_map.pairs),
            sides.trainer.optimizer,
        )
    )
    if sides.trainer.model.quantizer.discrete:
        books = list(zip(sides.trainer.model.quantizer.layers, sides.codec.quantizer.vq.layers))
        for buffer in ("embed", "embed_avg", "cluster_size"):
            rows.append(
                Row(f"codebooks: {buffer}", *diff((getattr(a, buffer), getattr(b._codebook, buffer)) for a, b in books))
            )
    return rows


def batches(args, config, steps: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(args.seed + 1)
    length = round(config.data.segment_seconds * config.model.sample_rate)
    shape = (config.train.batch_size, config.model.channels, length)
    return [0.1 * torch.randn(*shape, generator=generator, dtype=torch.float64) for _ in range(steps)]


def run_equality(modules, args, quantizer: str, run_dir: Path) -> dict:
    """``--steps`` steps on both sides; rows of step 1 and the maxima over all steps."""
    sides = conformance_sides(modules, args, run_dir, quantizer)
    float32_bank = exact_filterbanks(sides.trainer)
    # Batch 0 only initialises the codebooks (RVQ run): k-means on the very batch a step quantizes
    # gives every vector its own code when bins > vectors, a lossless first step.
    data = batches(args, sides.config, args.steps + 1)
    if quantizer == "rvq":
        init_codebooks_like_audioenc(sides, data[0])
    per_step = []
    for index, audio in enumerate(data[1:]):
        ours = audioenc_step(sides, audio)
        theirs = audiocraft_step(sides, audio)
        per_step.append(compare_step(sides, ours, theirs))
        print(f"  {quantizer} step {index + 1}: losses audioenc {fmt_losses(ours['losses'])}")
    worst = []
    for position, first in enumerate(per_step[0]):
        rows = [step[position] for step in per_step]
        row = Row(first.quantity, max(r.abs_diff for r in rows), max(r.rel_diff for r in rows))
        if not row.equal and all(r.passes for r in rows):  # only when every step's own check passed
            row.explained, row.note = True, next(r.note for r in rows if r.explained)
        worst.append(row)
    return {
        "sides": sides,
        "first": per_step[0],
        "worst": worst,
        "per_step": per_step,
        "float32_filterbank_rel": float32_bank,
        "filterbanks": filterbank_rows(sides),
    }


def fmt_losses(values: dict) -> str:
    return ", ".join(f"{k} {values[k]:.6g}" for k in ("d_loss", "l1", "mel", "adv", "feat") if k in values)


# ----------------------------------------------------------------------------- deliberate differences


def run_deliberate(modules, args, run_dir: Path) -> list[Row]:
    """One step of each setting where audioenc differs on purpose; each row names its cause."""
    rows = []

    # 1. Relative feature matching (EnCodec Eq. 3, audioenc's default): each layer's L1 divided by
    #    mean|real|. audiocraft's FeatureMatchingLoss computes that scale but never applies it.
    sides = conformance_sides(modules, args, run_dir / "relfeat", "none", relative_feat=True)
    exact_filterbanks(sides.trainer)
    audio = batches(args, sides.config, 2)[1]
    step = {r.quantity: r for r in compare_step(sides, audioenc_step(sides, audio), audiocraft_step(sides, audio))}
    cause = "EnCodec Eq. 3 (relative); audiocraft never applies its feat_scale"
    for name in ("feature-matching loss", "L1 loss", "codec weights after Adam"):
        rows.append(
            Row(
                f"relative feature matching on: {name}",
                step[name].abs_diff,
                step[name].rel_diff,
                cause if step[name].rel_diff > TOLERANCE else "",
            )
        )

    # 2. Dead-code expiry at threshold 2: audioenc expires after the EMA update and writes embed,
    #    embed_avg and cluster_size; audiocraft replaces rows of `embed` before its EMA update, which
    #    recomputes `embed` from untouched statistics, so its replacement is lost (encodec#61).
    sides = conformance_sides(modules, args, run_dir / "expiry", "rvq", threshold=2.0)
    exact_filterbanks(sides.trainer)
    data = batches(args, sides.config, 2)
    init_codebooks_like_audioenc(sides, data[0])
    torch.manual_seed(args.seed + 7)
    ours = audioenc_step(sides, data[1])
    torch.manual_seed(args.seed + 7)
    theirs = audiocraft_step(sides, data[1])
    step = {r.quantity: r for r in compare_step(sides, ours, theirs)}
    books = list(zip(sides.trainer.model.quantizer.layers, sides.codec.quantizer.vq.layers))
    replaced = [a.cluster_size == 2.0 for a, _ in books]  # audioenc sets a replaced row's count to the threshold
    differing = sum(int((a.embed != b._codebook.embed).any(1).sum()) for a, b in books)
    n_replaced = sum(int(mask.sum()) for mask in replaced)
    rows.append(
        Row(
            "expiry at threshold 2: codebook rows that differ",
            float(differing),
            math.inf if differing else 0.0,
            f"{differing} rows of {sum(len(m) for m in replaced)} differ, {n_replaced} were expired by "
            "audioenc; audiocraft's replacement is overwritten by its own EMA update (encodec#61)",
        )
    )
    rows.append(
        Row(
            "expiry at threshold 2: all other codebook rows",
            *diff((a.embed[~mask], b._codebook.embed[~mask]) for (a, b), mask in zip(books, replaced)),
        )
    )
    for name in ("multi-scale mel loss", "codec weights after Adam"):
        rows.append(Row(f"expiry at threshold 2: {name}", step[name].abs_diff, step[name].rel_diff))

    # 3. Each side's own k-means on the step's batch (same RNG state): same centroids and counts;
    #    audioenc stores embed_avg = means * counts, audiocraft embed_avg = means, so after the first
    #    EMA update audiocraft's entries are ~mean / count (empty clusters: ~mean / 1e-5).
    sides = conformance_sides(modules, args, run_dir / "kmeans", "rvq")
    exact_filterbanks(sides.trainer)
    audio = batches(args, sides.config, 2)[1]
    torch.manual_seed(args.seed + 11)
    ours = audioenc_step(sides, audio)
    torch.manual_seed(args.seed + 11)
    theirs = audiocraft_step(sides, audio)
    step = {r.quantity: r for r in compare_step(sides, ours, theirs)}
    cause = "k-means init: audioenc embed_avg = means*counts, audiocraft = means"
    for name in (
        "RVQ codes (entries that differ)",
        "multi-scale mel loss",
        "codec weights after Adam",
        "codebooks: cluster_size",
        "codebooks: embed_avg",
        "codebooks: embed",
    ):
        rows.append(
            Row(
                f"own k-means on each side: {name}",
                step[name].abs_diff,
                step[name].rel_diff,
                cause if step[name].rel_diff > TOLERANCE else "",
            )
        )
    books = list(zip(sides.trainer.model.quantizer.layers, sides.codec.quantizer.vq.layers))
    empty = sum(int((a.cluster_size == 0).sum()) for a, _ in books)
    ours_max = max(a.embed.abs().max().item() for a, _ in books)
    theirs_max = max(b._codebook.embed.abs().max().item() for _, b in books)
    rows[-1].note += (
        f"; largest |entry| audioenc {ours_max:.3g}, audiocraft {theirs_max:.3g} "
        f"({empty} codes got no vector in k-means nor in this step)"
    )

    # 4. audioenc's mel filterbank as shipped: float64 librosa values stored as a float32 buffer.
    sides = conformance_sides(modules, args, run_dir / "bank", "none")
    audio = batches(args, sides.config, 2)[1]
    with torch.no_grad():
        y_hat = sides.trainer.model(audio).audio
        shipped = sides.trainer.mel_loss(audio, y_hat).item()
        exact_filterbanks(sides.trainer)
        exact = sides.trainer.mel_loss(audio, y_hat).item()
        theirs_mel = sides.reference.mel_loss(y_hat, audio).item()
    shipped_row = Row("mel loss with audioenc's float32-stored filterbank", *diff([(shipped, theirs_mel)]))
    if not shipped_row.equal:
        shipped_row.note = "filterbank rounded to float32 (spectral.py `bank.float()`)"
    rows.append(shipped_row)
    rows.append(Row("mel loss with that filterbank kept in float64", *diff([(exact, theirs_mel)])))
    return rows


# ----------------------------------------------------------------------------- output


def format_table(rows: list[Row], title: str, deliberate: bool = False) -> str:
    lines = [f"\n{title}", "| quantity | max abs diff | max rel diff | verdict |", "| --- | ---: | ---: | --- |"]
    for row in rows:
        if deliberate:
            verdict = "equal" if row.equal else "differs"
        else:
            verdict = "equal" if row.equal else ("equal up to rounding" if row.explained else "DIFFERS")
        if row.note:
            verdict += f": {row.note}"
        lines.append(f"| {row.quantity} | {row.abs_diff:.3g} | {row.rel_diff:.3g} | {verdict} |")
    return "\n".join(lines)


def per_step_line(per_step: list[list[Row]]) -> str:
    """Max rel diff per step of the quantities that would show a divergence."""
    names = (
        "codec weights after Adam",
        "discriminator weights after Adam",
        "balancer EMA sums (per loss)",
        "codec gradients (after the backward)",
    )
    parts = []
    for index, rows in enumerate(per_step):
        by_name = {r.quantity: r for r in rows}
        parts.append(f"{index + 1}: " + " / ".join(f"{by_name[n].rel_diff:.2g}" for n in names))
    return "per step, max rel diff of " + " / ".join(names) + ": " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_audiocraft_arguments(parser)
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    parser.add_argument("--seconds", type=float, default=None, help="segment length (default: the preset's)")
    parser.add_argument("--steps", type=int, default=5, help="consecutive steps of the equality runs")
    parser.add_argument("--runs", default="continuous,rvq,deliberate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = set(runs) - {"continuous", "rvq", "deliberate"}
    if unknown:
        parser.error(f"unknown runs {sorted(unknown)}")

    torch.set_default_dtype(torch.float64)  # before anything of either side is built
    loaded = load_or_explain(
        args,
        "This check compares audioenc's training step with audiocraft's own code and",
        ".venv/bin/python benchmarks/check_conformance_audiocraft.py --audiocraft /tmp/audiocraft "
        "--audiocraft-deps /tmp/audiocraft-deps",
    )
    if loaded is None:
        return 2
    modules, root, commit = loaded
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
    warnings.filterwarnings("ignore", message=".*k-means init: the first training batch has.*")
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*weight_norm.*")

    print(machine_line(torch.device("cpu")))
    print(f"audiocraft: {root} (commit {commit}); float64 throughout; tolerance {TOLERANCE:g} relative")
    report: dict = {
        "machine": machine_line(torch.device("cpu")),
        "audiocraft_commit": commit,
        "args": vars(args) | {"json": str(args.json) if args.json else None},
    }
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for quantizer, run in (("none", "continuous"), ("rvq", "rvq")):
            if run not in runs:
                continue
            result = run_equality(modules, args, quantizer, Path(tmp) / run)
            sides = result["sides"]
            config = sides.config
            if run == runs[0]:
                print(
                    f"\nparameters mapped one-to-one: codec {len(sides.codec_map.pairs)} tensors, "
                    f"{sides.codec_map.numel:,} values; discriminator {len(sides.disc_map.pairs)} tensors, "
                    f"{sides.disc_map.numel:,} values"
                )
                print(format_table(result["filterbanks"], "mel filterbanks", deliberate=True))
                print(
                    "(audioenc stores them as float32: largest relative rounding "
                    f"{result['float32_filterbank_rel']:.2g}; "
                    "replaced by the float64 values in the equality runs)"
                )
            samples = round(config.data.segment_seconds * config.model.sample_rate)
            shape = f"[{config.train.batch_size}, {config.model.channels}, {samples}]"
            codec = (
                f"RVQ {config.model.n_q}x{config.model.bins}, dropout off, expiry off"
                if quantizer == "rvq"
                else "continuous codec"
            )
            what = f"{args.preset} preset, {args.mode}, batch {shape}, {codec}"
            print(format_table(result["first"], f"{run}: step 1 ({what})"))
            if args.steps > 1:
                print(format_table(result["worst"], f"{run}: largest difference over {args.steps} consecutive steps"))
                print(per_step_line(result["per_step"]))
            failed |= not all(row.passes for row in result["worst"])
            report[run] = {
                "config": what,
                "step1": [vars(r) for r in result["first"]],
                "worst": [vars(r) for r in result["worst"]],
                "per_step": [[vars(r) for r in rows] for rows in result["per_step"]],
            }
        if "deliberate" in runs:
            rows = run_deliberate(modules, args, Path(tmp) / "deliberate")
            print(format_table(rows, "settings where audioenc differs on purpose (one step each)", deliberate=True))
            report["deliberate"] = [vars(r) for r in rows]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(
        "\nverdict:",
        "every compared quantity equal to float64 rounding"
        if not failed
        else "some quantity differs beyond float64 rounding (see DIFFERS above)",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
