"""Tests for audioenc.quantization.rvq (residual vector quantizer with EMA codebooks).

References used below: hand computations (commitment penalty and its gradient on a 2-layer,
1-dimensional quantizer), float64 NumPy versions of the EMA / nearest-neighbour / k-means-mean
formulas, and EnCodec's published bitrates (1.5, 3, 6, 12, 24 kbps with 2, 4, 8, 16, 32 codebooks of
1024 entries at 75 Hz; Défossez et al. 2022, "High Fidelity Neural Audio Compression").
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from audioenc.quantization.base import QuantizedResult
from audioenc.quantization.rvq import ResidualVectorQuantizer, kmeans

FRAME_RATE = 75.0


def _small_rvq(**overrides) -> ResidualVectorQuantizer:
    options = dict(dimension=8, n_q=4, bins=16, kmeans_iters=5)
    options.update(overrides)
    return ResidualVectorQuantizer(**options)


def _latents(seed: int, batch: int = 2, dimension: int = 8, frames: int = 20) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dimension, frames, generator=generator)


def _nearest_float64(vectors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    distances = ((vectors[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)
    return distances.argmin(1)


def _ema_step_float64(
    embed: np.ndarray, size: np.ndarray, avg: np.ndarray, vectors: np.ndarray, decay: float, epsilon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Independent float64 version of one EMA step: assignment, N ← γN + (1−γ)c, m ← γm + (1−γ)s,
    Ñ = (N + ε)/(ΣN + Kε)·ΣN, e = m/Ñ. Returns (assignment, N, m, e)."""
    assignment = _nearest_float64(vectors, embed)
    onehot = np.eye(len(embed))[assignment]
    new_size = decay * size + (1 - decay) * onehot.sum(0)
    new_avg = decay * avg + (1 - decay) * onehot.T @ vectors
    total = new_size.sum()
    smoothed = (new_size + epsilon) / (total + len(embed) * epsilon) * total
    return assignment, new_size, new_avg, new_avg / smoothed[:, None]


def _buffers64(codebook) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(t.double().numpy().copy() for t in (codebook.embed, codebook.cluster_size, codebook.embed_avg))


def test_gradient_through_quantizer_is_identity():
    """x.grad equals the upstream gradient bit for bit, in training and in eval mode."""
    torch.manual_seed(0)
    rvq = _small_rvq()
    for training in (True, False):
        rvq.train(training)
        x = _latents(1).requires_grad_(True)
        upstream = _latents(2)
        out = rvq(x, FRAME_RATE)
        assert isinstance(out, QuantizedResult)
        (out.x * upstream).sum().backward()
        assert torch.equal(x.grad, upstream)
        if not training:  # (in training the codebook has moved on since these codes were picked)
            # The straight-through output has the value of the quantized sum (up to rounding).
            assert torch.allclose(out.x, rvq.decode(out.codes), atol=1e-5)


def test_codes_round_trip_in_eval_mode():
    """decode(encode(x)) equals forward's quantized output exactly, for all and for fewer codebooks."""
    torch.manual_seed(0)
    rvq = _small_rvq()
    rvq.train()
    for step in range(3):
        rvq(_latents(10 + step), FRAME_RATE)
    rvq.eval()
    x = _latents(20)
    for n_q in (4, 2):
        rvq.n_q = n_q
        out = rvq(x, FRAME_RATE)
        codes = rvq.encode(x)
        assert codes.dtype == torch.int64 and codes.shape == (2, n_q, 20)
        assert torch.equal(codes, out.codes)
        assert torch.equal(rvq.decode(codes), out.x)
        assert float(out.bandwidth) == pytest.approx(n_q * 4 * FRAME_RATE / 1000)  # log2(16) = 4 bits
    # More codebooks quantize better (each layer removes part of the residual).
    error_2 = (rvq.decode(rvq.encode(x, n_q=2)) - x).pow(2).mean()
    error_4 = (rvq.decode(rvq.encode(x, n_q=4)) - x).pow(2).mean()
    assert error_4 < error_2


def _two_cluster_batch(seed: int, extra: torch.Tensor | None = None) -> torch.Tensor:
    """[1, 2, frames]: 10 points near (0, 0) and 10 near (10, 10), plus optional extra points."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0.0]] * 10 + [[10.0, 10.0]] * 10)
    points = centers + 0.1 * torch.randn(20, 2, generator=generator)
    if extra is not None:
        points = torch.cat([points, extra])
    return points.t().unsqueeze(0)


def test_dead_codes_are_replaced_by_batch_vectors_and_stay_replaced():
    """Codes 2 and 3 are never used; once their EMA count falls below 2 they become batch vectors,
    and the next EMA update keeps them there (the replacement is also written into embed_avg).

    Reference: EMA count 2.05 · 0.99^t (hand computation) drops below the threshold 2 at t = 3.
    Upstream audiocraft writes the replacement only into `embed`, which the EMA update then
    overwrites from the untouched statistics (encodec#61): there embed[2] would stay at (-10, 10).
    """
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dimension=2, n_q=1, bins=4, decay=0.99, threshold_ema_dead_code=2)
    codebook = rvq.layers[0]
    dead_start = torch.tensor([[-10.0, 10.0], [10.0, -10.0]])
    codebook.set_codebook_(
        torch.cat([torch.tensor([[0.0, 0.0], [10.0, 10.0]]), dead_start]),
        torch.tensor([50.0, 50.0, 2.05, 2.05]),
    )
    rvq.train()
    for step in (1, 2):
        out = rvq(_two_cluster_batch(step), FRAME_RATE)
        assert not torch.isin(out.codes, torch.tensor([2, 3])).any()
        expected_count = 2.05 * 0.99**step
        assert codebook.cluster_size[2:].tolist() == pytest.approx([expected_count] * 2, rel=1e-6)
        assert torch.allclose(codebook.embed[2:], dead_start, rtol=1e-4)  # not yet expired

    batch_3 = _two_cluster_batch(3)
    rvq(batch_3, FRAME_RATE)
    batch_vectors = batch_3[0].t()  # [20, 2]
    for code in (2, 3):
        entry = codebook.embed[code]
        assert (batch_vectors == entry).all(dim=1).any(), f"code {code} is not a batch vector"
        assert codebook.cluster_size[code] == 2.0
        assert torch.equal(codebook.embed_avg[code], 2.0 * entry)
    assert not torch.equal(codebook.embed[2], codebook.embed[3])
    # Live codes were not touched by the replacement.
    assert codebook.embed[0].abs().max() < 0.2 and (codebook.embed[1] - 10).abs().max() < 0.2

    # Next step: three copies of the new code 2 are in the batch, so code 2 is used and survives;
    # its EMA update continues from the replacement (float64 NumPy version of the EMA formula).
    replacement = codebook.embed[2].clone()
    embed, size, avg = _buffers64(codebook)
    batch_4 = _two_cluster_batch(4, extra=replacement.repeat(3, 1))
    out = rvq(batch_4, FRAME_RATE)
    vectors = batch_4[0].t().double().numpy()
    assignment, new_size, _, new_embed = _ema_step_float64(embed, size, avg, vectors, 0.99, 1e-5)
    assert out.codes[0, 0].tolist() == assignment.tolist()
    assert (assignment == 2).sum() >= 3
    assert new_size[2] >= 2.0 and codebook.cluster_size[2].item() == pytest.approx(new_size[2], rel=1e-6)
    np.testing.assert_allclose(codebook.embed[2].numpy(), new_embed[2], rtol=1e-5, atol=1e-6)
    assert (codebook.embed[2] - replacement).abs().max() < 0.1  # still where it was put
    if new_size[3] < 2.0:  # code 3 unused again: re-drawn from this batch
        assert (batch_4[0].t() == codebook.embed[3]).all(dim=1).any()


def test_commitment_penalty_matches_hand_computation_and_reaches_every_layer():
    """Two 1-D layers with fixed codebooks; x = (0.9, -2.2) over two frames.

    Hand computation: layer 0 picks 1.0 and -2.0 (residuals -0.1, -0.2, mse 0.025); layer 1 picks
    -0.1 and -0.1 (errors 0, -0.1, mse 0.005); penalty = (0.025 + 0.005) / 2 = 0.015.
    d penalty / dx = ½ (2 (x − q0) / 2 + 2 (r1 − q1) / 2) = ½ ((-0.1, -0.2) + (0, -0.1))
    = (-0.05, -0.15). Without layer 1's term reaching x it would be (-0.05, -0.10).
    """
    rvq = ResidualVectorQuantizer(dimension=1, n_q=2, bins=3, threshold_ema_dead_code=0)
    rvq.layers[0].set_codebook_(torch.tensor([[1.0], [-2.0], [5.0]]), torch.ones(3))
    rvq.layers[1].set_codebook_(torch.tensor([[0.1], [-0.1], [0.5]]), torch.ones(3))
    rvq.train()
    x = torch.tensor([[[0.9, -2.2]]], requires_grad=True)
    out = rvq(x, FRAME_RATE)
    assert out.codes.tolist() == [[[0, 1], [1, 1]]]
    assert out.penalty.item() == pytest.approx(0.015, abs=1e-6)
    (gradient,) = torch.autograd.grad(out.penalty, x)
    assert torch.allclose(gradient, torch.tensor([[[-0.05, -0.15]]]), atol=1e-6)
    assert torch.allclose(out.x, torch.tensor([[[0.9, -2.1]]]), atol=1e-6)


def test_ema_update_matches_float64_formula():
    """One training step on a 3-entry codebook against a float64 NumPy version of
    N ← γN + (1−γ)c, m ← γm + (1−γ)s, Ñ = (N + ε)/(ΣN + Kε)·ΣN, e = m/Ñ (decay 0.9, ε = 0.1 so the
    smoothing is visible)."""
    decay, epsilon = 0.9, 0.1
    rvq = ResidualVectorQuantizer(dimension=2, n_q=1, bins=3, decay=decay, epsilon=epsilon, threshold_ema_dead_code=0)
    codebook = rvq.layers[0]
    embed = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    cluster_size = np.array([3.0, 1.0, 0.5])
    embed_avg = np.array([[0.3, -0.2], [3.0, 0.5], [0.1, 2.0]])
    codebook.set_codebook_(torch.tensor(embed, dtype=torch.float32), torch.tensor(cluster_size, dtype=torch.float32))
    codebook.embed_avg.copy_(torch.tensor(embed_avg, dtype=torch.float32))
    vectors = np.array([[0.1, 0.2], [-0.3, 0.1], [4.2, -0.1], [3.9, 0.3], [0.2, 3.7], [0.5, 0.4]])
    rvq.train()
    rvq(torch.tensor(vectors.T[None], dtype=torch.float32), FRAME_RATE)

    assignment, new_size, new_avg, new_embed = _ema_step_float64(
        embed, cluster_size, embed_avg, vectors, decay, epsilon
    )
    assert assignment.tolist() == [0, 0, 1, 1, 2, 0]
    np.testing.assert_allclose(codebook.cluster_size.numpy(), new_size, rtol=1e-6)
    np.testing.assert_allclose(codebook.embed_avg.numpy(), new_avg, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(codebook.embed.numpy(), new_embed, rtol=1e-5, atol=1e-7)
    # The smoothing matters here: without it the entries would be m / N.
    assert not np.allclose(new_embed, new_avg / new_size[:, None], rtol=1e-3)


def _three_cluster_points(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]).repeat_interleave(20, dim=0)
    return centers + 0.3 * torch.randn(60, 2, generator=generator)


def test_kmeans_function_returns_means_of_assigned_points():
    """At convergence every mean is the NumPy mean of the points nearest to it."""
    torch.manual_seed(0)
    points = _three_cluster_points(0)
    means, counts = kmeans(points, 3, num_iters=10)
    points64, means64 = points.double().numpy(), means.double().numpy()
    assignment = _nearest_float64(points64, means64)
    for k in range(3):
        members = points64[assignment == k]
        assert len(members) == counts[k].item()
        np.testing.assert_allclose(means64[k], members.mean(0), atol=1e-5)


def test_kmeans_init_on_first_training_batch_is_reproducible():
    """The codebook after the first training step is the k-means solution (the three true cluster
    means here, NumPy reference) up to the Laplace factor of the EMA step; same seed, same result;
    later steps do not re-initialise."""
    points = _three_cluster_points(1)
    batch = points.t().unsqueeze(0)  # [1, 2, 60]

    def first_step(seed: int) -> ResidualVectorQuantizer:
        torch.manual_seed(seed)
        rvq = ResidualVectorQuantizer(dimension=2, n_q=1, bins=3, kmeans_iters=10)
        assert not bool(rvq.layers[0].initialized)
        rvq.train()
        rvq(batch, FRAME_RATE)
        return rvq

    rvq = first_step(0)
    codebook = rvq.layers[0]
    assert bool(codebook.initialized)
    # Every entry is the mean of the batch points nearest to it (NumPy reference), up to the
    # Laplace factor (N + ε)/(ΣN + Kε)·ΣN of the EMA step that follows the init.
    points64, learned = points.double().numpy(), codebook.embed.double().numpy()
    assignment = _nearest_float64(points64, learned)
    for k in range(3):
        members = points64[assignment == k]
        assert len(members) > 0
        np.testing.assert_allclose(learned[k], members.mean(0), rtol=1e-4, atol=1e-5)
        assert codebook.cluster_size[k].item() == pytest.approx(len(members))
    assert torch.equal(first_step(0).layers[0].embed, codebook.embed)

    # A second step moves the codes by one EMA step (float64 reference), not by a new k-means.
    embed, size, avg = _buffers64(codebook)
    far = batch + 100.0
    rvq(far, FRAME_RATE)
    *_, expected = _ema_step_float64(embed, size, avg, far[0].t().double().numpy(), 0.99, 1e-5)
    np.testing.assert_allclose(codebook.embed.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_quantizer_dropout_varies_in_training_is_reproducible_and_full_in_eval():
    x = _latents(3)
    torch.manual_seed(0)

    def n_q_sequence(rvq: ResidualVectorQuantizer, steps: int = 20, **kwargs) -> list[int]:
        sequence = []
        for _ in range(steps):
            out = rvq(x, FRAME_RATE, **kwargs)
            n_q = out.codes.shape[1]
            assert float(out.bandwidth) == pytest.approx(rvq.bandwidth_for(n_q, FRAME_RATE))
            sequence.append(n_q)
        return sequence

    first = _small_rvq(n_q=8, q_dropout=True, q_dropout_seed=7).train()
    second = _small_rvq(n_q=8, q_dropout=True, q_dropout_seed=7).train()
    torch.manual_seed(123)  # a different global state must not matter with a seeded generator
    sequence = n_q_sequence(first)
    assert sequence == n_q_sequence(second)
    assert len(set(sequence)) >= 4 and min(sequence) >= 1 and max(sequence) <= 8
    # An explicit generator (e.g. the trainer's, same seed on every rank) gives the same draws.
    with_generator = [
        n_q_sequence(_small_rvq(n_q=8, q_dropout=True).train(), generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    assert with_generator[0] == with_generator[1]
    first.eval()
    assert set(n_q_sequence(first, steps=5)) == {8}


def test_bitrate_arithmetic_matches_encodec():
    rvq = ResidualVectorQuantizer(dimension=4, n_q=32, bins=1024, kmeans_init=False)
    assert rvq.bandwidth_per_codebook(75.0) == pytest.approx(0.75)
    assert rvq.bandwidth_for(32, 75.0) == pytest.approx(24.0)
    for kbps, n_q in [(1.5, 2), (3.0, 4), (6.0, 8), (12.0, 16), (24.0, 32)]:
        assert rvq.n_q_for(kbps, 75.0) == n_q
        assert rvq.bandwidth_for(n_q, 75.0) == pytest.approx(kbps)
    assert rvq.n_q_for(7.0, 75.0) == 9  # floor: 9 codebooks = 6.75 kbps fit in 7 kbps
    with pytest.raises(ValueError, match="outside"):
        rvq.n_q_for(0.5, 75.0)
    with pytest.raises(ValueError, match="outside"):
        rvq.n_q_for(30.0, 75.0)
    rvq.eval()
    out = rvq(torch.randn(1, 4, 3), 75.0)
    assert out.codes.shape == (1, 32, 3) and float(out.bandwidth) == pytest.approx(24.0)


def test_n_q_setter_and_input_checks():
    rvq = _small_rvq()
    rvq.n_q = 3
    assert rvq.n_q == 3 and rvq.total_codebooks == 4
    for bad in (0, 5, 2.5):
        with pytest.raises(ValueError, match="n_q must be"):
            rvq.n_q = bad
    with pytest.raises(ValueError, match="expected latents"):
        rvq(torch.randn(2, 7, 5), FRAME_RATE)
    with pytest.raises(RuntimeError, match="not initialised"):
        rvq.eval()(torch.randn(2, 8, 5), FRAME_RATE)


def test_ema_updates_only_in_training_mode():
    torch.manual_seed(0)
    rvq = _small_rvq()
    rvq.train()
    rvq(_latents(4), FRAME_RATE)
    snapshot = {name: buffer.clone() for name, buffer in rvq.state_dict().items()}
    rvq.encode(_latents(5))  # encode never learns, even in training mode
    rvq.eval()
    rvq(_latents(6), FRAME_RATE)
    for name, buffer in rvq.state_dict().items():
        assert torch.equal(buffer, snapshot[name]), name
    rvq.train()
    rvq(_latents(6), FRAME_RATE)
    assert not torch.equal(rvq.layers[0].embed, snapshot["layers.0.embed"])


def test_state_dict_round_trip_preserves_codebooks(tmp_path):
    """Buffers survive state_dict and safetensors; the reloaded quantizer encodes identically and
    does not re-run k-means when training resumes (its next step equals the original's)."""
    torch.manual_seed(0)
    rvq = _small_rvq()
    rvq.train()
    for step in range(2):
        rvq(_latents(30 + step), FRAME_RATE)
    state = rvq.state_dict()
    for key in ("initialized", "cluster_size", "embed", "embed_avg"):
        assert f"layers.3.{key}" in state
    path = tmp_path / "rvq.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    restored = _small_rvq()
    restored.load_state_dict(safetensors.torch.load_file(str(path)))
    for key, value in state.items():
        assert torch.equal(restored.state_dict()[key], value), key
    x = _latents(40)
    assert torch.equal(restored.encode(x), rvq.encode(x))

    restored.train()
    torch.manual_seed(9)
    rvq(x, FRAME_RATE)
    torch.manual_seed(9)
    restored(x, FRAME_RATE)
    for layer, restored_layer in zip(rvq.layers, restored.layers):
        assert torch.equal(layer.embed, restored_layer.embed)


# --- distributed: two gloo ranks on CPU ----------------------------------------------------------


def _fixed_codebooks(rvq: ResidualVectorQuantizer) -> None:
    generator = torch.Generator().manual_seed(11)
    for layer in rvq.layers:
        layer.set_codebook_(
            torch.randn(layer.bins, layer.dimension, generator=generator),
            2.0 + torch.rand(layer.bins, generator=generator),
        )


def _distributed_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    # A timeout turns a collective mismatch (a hang) into an error that fails the test.
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.manual_seed(100 + rank)  # every rank's own random state differs on purpose
        full = _latents(50, batch=2, dimension=4, frames=10)
        part = full[rank : rank + 1]
        synced = ResidualVectorQuantizer(dimension=4, n_q=2, bins=8, threshold_ema_dead_code=0, kmeans_init=False)
        _fixed_codebooks(synced)
        synced.train()
        synced(part, FRAME_RATE)
        learned = ResidualVectorQuantizer(dimension=4, n_q=2, bins=8, kmeans_iters=5, q_dropout=True)
        learned.train()
        n_qs = [learned(part + rank, FRAME_RATE).codes.shape[1] for _ in range(6)]
        torch.save(
            {"synced": synced.state_dict(), "learned": learned.state_dict(), "n_qs": n_qs},
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_distributed_ranks_share_statistics_init_and_dropout(tmp_path):
    """Two ranks with different halves of a batch and different random states: the EMA step equals
    the single-process step on the whole batch (all-reduced statistics), and k-means init, dead-code
    replacements and dropout draws are rank 0's on both ranks (identical buffers)."""
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]

    reference = ResidualVectorQuantizer(dimension=4, n_q=2, bins=8, threshold_ema_dead_code=0, kmeans_init=False)
    _fixed_codebooks(reference)
    reference.train()
    reference(_latents(50, batch=2, dimension=4, frames=10), FRAME_RATE)
    for result in results:
        for key, value in reference.state_dict().items():
            assert torch.allclose(result["synced"][key].float(), value.float(), rtol=1e-5, atol=1e-6), key
    for key, value in results[0]["learned"].items():
        assert torch.equal(results[1]["learned"][key], value), key
    assert results[0]["n_qs"] == results[1]["n_qs"]
