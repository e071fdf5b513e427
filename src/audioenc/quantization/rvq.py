"""Residual vector quantizer (RVQ) with EMA codebooks, as in EnCodec.

The latent sequence ``[batch, dim, frames]`` of the SEANet encoder is quantized frame by frame by
``n_q`` codebooks in cascade: the first codebook quantizes the frame, each next one quantizes what
the previous ones left over (the residual). ``n_q`` codebooks of ``bins`` entries cost
``n_q · log2(bins)`` bits per frame, i.e. ``n_q · log2(bins) · frame_rate / 1000`` kbps
(32 × 10 bit × 75 Hz = 24 kbps).

Why not vector-quantize-pytorch
-------------------------------
The project prefers a maintained library, so ``vector_quantize_pytorch.ResidualVQ`` (1.32.0, in the
venv) was checked against EnCodec's RVQ (audiocraft ``quantization/core_vq.py``). What matches:
the EMA update (``lerp`` with weight ``1 - decay``) with Laplace smoothing of the cluster sizes;
k-means init from the first batch; dead-code expiry that really persists (it writes ``embed``,
``embed_avg = sample · threshold`` and ``cluster_size = threshold``; checked: unused codes jumped to
the batch's points and stayed there); quantizer dropout uniform over ``[1, n_q]`` with a seed that
can be fixed and is all-reduced across ranks; a commitment term per layer whose gradient reaches the
input (checked: nonzero for all 3 layers of a 3-layer RVQ). What does not: (1) the gradient through
``ResidualVQ`` is not the identity — with its default rotation trick it is not a straight-through
estimator at all, and with ``rotation_trick=False`` every layer's straight-through output carries
its own identity path, so ``x.grad`` is ``n_q`` times the upstream gradient (measured: exactly 4×
with 4 quantizers; this is the defect of encodec#25 that audiocraft fixes with one straight-through
over the sum); (2) k-means init turns every empty cluster into the zero vector (it stores
``means · counts`` and renormalises; measured: 8 codes on a batch of 4 distinct points, the 4
empty clusters became ``(0, 0)``),
where EnCodec keeps the sampled batch vector; (3) ``ResidualVQ`` does not accept channel-first
``[batch, dim, frames]`` input (``channel_last=False`` fails with a size mismatch); (4) with
dropout the codes keep all ``n_q`` columns padded with ``-1``. Points (1) and (2) change training,
so this module is our own implementation (about 290 lines of code).

Differences from audiocraft, on purpose
---------------------------------------
* Dead codes are replaced *after* the EMA update, and the replacement is written into ``embed``,
  ``embed_avg`` (``= sample · threshold``) and ``cluster_size`` (``= threshold``). Upstream replaces
  rows of ``embed`` before the EMA update, which then recomputes ``embed = embed_avg / n`` from
  untouched statistics and overwrites them: the expiry is a no-op (encodec#61). Expiring after the
  update also follows encodec#33 (a code used in this very batch is not expired). Upstream expires
  first so that all ranks take the same decision; here the statistics are all-reduced and the
  expiry mask is broadcast from rank 0, so the decision is identical on every rank anyway.
* After k-means, ``embed_avg = means · counts`` (upstream stores the means themselves, so the first
  EMA step gives ``embed ≈ mean / count``, shrinking every code towards zero for ~100 steps).
* The commitment penalty is also computed in eval mode (upstream returns 0 there), so validation
  can report it; it never updates anything.
* An uninitialised codebook (``kmeans_init=True`` and no training batch seen, no checkpoint
  loaded) raises instead of quantizing everything to the zero code.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from audioenc.quantization.base import QuantizedResult, Quantizer, QuantizerOptions

# --- distributed helpers: no-ops unless torch.distributed is initialised -------------------------


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_sum_(tensor: torch.Tensor) -> None:
    if _distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def _broadcast_from_rank0_(*tensors: torch.Tensor) -> None:
    if _distributed():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


# --- plain functions on flat vectors [N, D] ------------------------------------------------------


def squared_distances(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``‖v_n − e_k‖²`` as a matrix ``[N, K]``.

    Uses ``‖v‖² − 2 v·e + ‖e‖²`` (one matmul) rather than broadcasting ``[N, K, D]`` differences,
    which would need N·K·D floats (gigabytes at EnCodec's sizes).

    Args:
        vectors: ``[N, D]``.
        codebook: ``[K, D]``.
    """
    return vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ codebook.t() + codebook.pow(2).sum(1).unsqueeze(0)


def nearest_code(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook entry for each vector: ``[N]`` int64 (ties: lowest index)."""
    return squared_distances(vectors, codebook).argmin(dim=1)


def sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    """``num`` rows drawn from ``samples [N, D]`` with torch's global generator.

    Without replacement when ``N >= num``, with replacement otherwise. Returns ``[num, D]``.
    """
    count = samples.shape[0]
    if count >= num:
        indices = torch.randperm(count, device=samples.device)[:num]
    else:
        indices = torch.randint(0, count, (num,), device=samples.device)
    return samples[indices]


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means, started from ``num_clusters`` random samples (torch's global generator).

    Each iteration assigns every sample to its nearest mean and moves each mean to the average of
    its samples; a mean with no sample keeps its previous value (a batch vector).

    Args:
        samples: ``[N, D]``.
        num_clusters: K.
        num_iters: Lloyd iterations.

    Returns:
        ``(means [K, D], counts [K])``, counts of the last assignment (the one the means average).
    """
    if samples.shape[0] < num_clusters:
        warnings.warn(
            f"k-means init: the first training batch has {samples.shape[0]} vectors for "
            f"{num_clusters} codebook entries, so some entries start as duplicates and are "
            "replaced as dead codes later; use a larger first batch (batch × frames >= bins) "
            "to avoid this.",
            stacklevel=3,
        )
    means = sample_vectors(samples, num_clusters)
    counts = torch.zeros(num_clusters, dtype=samples.dtype, device=samples.device)
    for _ in range(num_iters):
        assignment = nearest_code(samples, means)
        counts = torch.bincount(assignment, minlength=num_clusters).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assignment, samples)
        empty = counts == 0
        means = torch.where(empty[:, None], means, sums / counts.clamp(min=1)[:, None])
    return means, counts


# --- one codebook --------------------------------------------------------------------------------


class EMACodebook(nn.Module):
    """One codebook of ``bins`` entries, learnt by exponential moving averages (no gradient).

    Math (one training batch of vectors ``x_n``, assigned to their nearest entry ``k(n)``):

    * counts ``c_k = #{n: k(n) = k}`` and sums ``s_k = Σ_{k(n)=k} x_n`` (all-reduced over ranks);
    * ``N_k ← γ N_k + (1 − γ) c_k`` and ``m_k ← γ m_k + (1 − γ) s_k`` with decay ``γ``;
    * Laplace smoothing ``Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j`` (no division by zero);
    * entries ``e_k = m_k / Ñ_k``;
    * dead codes: entries with ``N_k < threshold`` get a random vector ``v`` of the current batch,
      ``e_k = v``, ``m_k = threshold · v``, ``N_k = threshold`` — all three, so the next EMA step
      continues from ``v`` instead of recomputing the old entry. ``threshold = 0`` disables this.
      A code must then receive on average ``threshold`` vectors per (global) batch to survive, so
      batches with fewer than ``threshold · bins`` vectors keep re-drawing rarely used codes.

    Buffers (in ``state_dict``): ``initialized`` (bool), ``cluster_size`` ``N [K]``,
    ``embed`` ``e [K, D]``, ``embed_avg`` ``m [K, D]``, all float32 except the flag.
    """

    def __init__(
        self,
        dimension: int,
        bins: int,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: float = 2.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMACodebook: decay must be in [0, 1), got {decay}.")
        self.dimension = dimension
        self.bins = bins
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        if kmeans_init:
            embed = torch.zeros(bins, dimension)
        else:
            embed = torch.empty(bins, dimension)
            nn.init.kaiming_uniform_(embed)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        # Ones, so that embed_avg / cluster_size = embed holds from the start.
        self.register_buffer("cluster_size", torch.ones(bins))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    @torch.no_grad()
    def set_codebook_(self, embed: torch.Tensor, cluster_size: torch.Tensor) -> None:
        """Set entries ``[K, D]`` and EMA counts ``[K]`` consistently (``m = e · N``); marks initialised."""
        if embed.shape != self.embed.shape or cluster_size.shape != self.cluster_size.shape:
            raise ValueError(
                f"EMACodebook.set_codebook_: expected embed {tuple(self.embed.shape)} and "
                f"cluster_size {tuple(self.cluster_size.shape)}, got {tuple(embed.shape)} and "
                f"{tuple(cluster_size.shape)}."
            )
        self.embed.copy_(embed)
        self.cluster_size.copy_(cluster_size)
        self.embed_avg.copy_(embed * cluster_size[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def initialize_(self, vectors: torch.Tensor) -> None:
        """k-means on ``vectors [N, D]``; in distributed runs rank 0's result is broadcast."""
        means, counts = kmeans(vectors, self.bins, self.kmeans_iters)
        self.embed.copy_(means)
        self.cluster_size.copy_(counts)
        self.embed_avg.copy_(means * counts[:, None])
        self.initialized.fill_(True)
        _broadcast_from_rank0_(self.embed, self.cluster_size, self.embed_avg)

    def _require_initialized(self) -> None:
        if not bool(self.initialized):
            raise RuntimeError(
                "EMACodebook: the codebook is not initialised (kmeans_init=True waits for the first "
                "training batch). Run one forward in training mode, load a checkpoint, or construct "
                "the quantizer with kmeans_init=False."
            )

    def encode(self, vectors: torch.Tensor) -> torch.Tensor:
        """Nearest entry for each of ``vectors [N, D]``: ``[N]`` int64."""
        self._require_initialized()
        return nearest_code(vectors.to(self.embed.dtype), self.embed)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Entries for ``codes [...]`` int64: ``[..., D]``."""
        self._require_initialized()
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def update_ema_(self, vectors: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step from ``vectors [N, D]`` assigned to ``codes [N]`` (see class docstring)."""
        onehot = F.one_hot(codes, self.bins).to(self.embed.dtype)  # [N, K]
        counts = onehot.sum(0)
        sums = onehot.t() @ vectors.to(self.embed.dtype)  # [K, D]
        _all_reduce_sum_(counts)
        _all_reduce_sum_(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.bins * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def expire_dead_codes_(self, vectors: torch.Tensor) -> int:
        """Replace entries with ``N_k < threshold`` by random rows of ``vectors [N, D]``.

        Returns the number of replaced entries. In distributed runs the mask and the new entries
        are rank 0's, so every rank stays identical.
        """
        if self.threshold_ema_dead_code <= 0:
            return 0
        dead = (self.cluster_size < self.threshold_ema_dead_code).to(torch.uint8)
        _broadcast_from_rank0_(dead)
        dead = dead.bool()
        num_dead = int(dead.sum())
        if num_dead == 0:
            return 0
        replacement = sample_vectors(vectors.to(self.embed.dtype), num_dead)
        self.embed[dead] = replacement
        self.embed_avg[dead] = replacement * self.threshold_ema_dead_code
        self.cluster_size[dead] = float(self.threshold_ema_dead_code)
        _broadcast_from_rank0_(self.embed, self.embed_avg, self.cluster_size)
        return num_dead

    def forward(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize ``vectors [N, D]`` → ``(entries [N, D], codes [N])``; learns in training mode.

        The entries returned are those of the codebook *before* this batch's update.
        """
        vectors = vectors.detach()
        if self.training and not bool(self.initialized):
            self.initialize_(vectors.to(self.embed.dtype))
        codes = self.encode(vectors)
        quantized = self.decode(codes)
        if self.training:
            self.update_ema_(vectors, codes)
            self.expire_dead_codes_(vectors)
        return quantized, codes


# --- the residual quantizer ----------------------------------------------------------------------


class ResidualVectorQuantizer(Quantizer):
    """EnCodec's residual vector quantizer with EMA codebooks.

    Math, for latents ``x [B, D, F]`` read as ``B·F`` vectors and ``n`` active layers:

    * ``r_0 = x``; layer ``i`` picks ``q_i = e^{(i)}_{k_i}``, the entry nearest to ``r_i``, and
      ``r_{i+1} = r_i − q_i`` (``q_i`` carries no gradient);
    * output ``x̂ = Σ_{i<n} q_i`` with the straight-through estimator ``x + (x̂ − x).detach()``,
      so ``∂x̂/∂x = I`` exactly;
    * commitment penalty ``(1/n) Σ_i mean((r_i − sg(q_i))²)``; every ``r_i`` depends on ``x`` with
      Jacobian ``I``, so every layer's term pulls the encoder output;
    * bandwidth ``n · log2(bins) · frame_rate / 1000`` kbps.

    Quantizer dropout (``q_dropout=True``, training only): each batch uses
    ``n ~ Uniform{1, …, n_q}`` drawn from ``generator`` (``forward`` argument), else from a
    generator seeded with ``q_dropout_seed``, else from torch's global generator. When
    ``torch.distributed`` is initialised, rank 0's draw is broadcast so every rank uses the same
    ``n``. A seeded generator restarts from its seed when a run is resumed (it is not in the
    ``state_dict``); pass the trainer's own generator to continue a sequence instead.

    Codebooks learn by EMA in training mode only (see :class:`EMACodebook`); k-means runs on the
    first training batch (torch's global generator, so ``torch.manual_seed`` makes it
    reproducible). In distributed runs the EMA statistics are all-reduced and the k-means init and
    dead-code replacements are broadcast from rank 0.

    Usage::

        rvq = ResidualVectorQuantizer(dimension=128, n_q=32, bins=1024, q_dropout=True)
        out = rvq(latents, frame_rate=75.0)          # training: out.x, out.codes, out.penalty
        rvq.eval(); rvq.n_q = rvq.n_q_for(6.0, 75.0)  # 8 codebooks = 6 kbps
        codes = rvq.encode(latents)                  # [B, 8, F]
        latents_hat = rvq.decode(codes)              # [B, 128, F]

    Args:
        dimension: latent dimension ``D``.
        n_q: number of codebooks (the maximum; ``n_q`` can be lowered later for inference).
        bins: entries per codebook.
        decay: EMA decay ``γ``.
        kmeans_init: initialise each codebook by k-means on its first training batch; otherwise
            Kaiming-uniform random entries.
        kmeans_iters: Lloyd iterations for that k-means.
        threshold_ema_dead_code: EMA cluster size below which an entry is replaced (0: never).
        q_dropout: quantizer dropout in training.
        epsilon: Laplace smoothing ``ε``.
        q_dropout_seed: seed of this module's own dropout generator (``None``: global generator).
    """

    def __init__(
        self,
        dimension: int = 128,
        n_q: int = 32,
        bins: int = 1024,
        decay: float = 0.99,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: float = 2.0,
        q_dropout: bool = False,
        epsilon: float = 1e-5,
        q_dropout_seed: int | None = None,
    ) -> None:
        super().__init__()
        if n_q < 1 or bins < 2 or dimension < 1:
            raise ValueError(
                f"ResidualVectorQuantizer: need n_q >= 1, bins >= 2, dimension >= 1; got n_q={n_q}, "
                f"bins={bins}, dimension={dimension}."
            )
        self.dimension = dimension
        self.bins = bins
        self.q_dropout = q_dropout
        self.total_codebooks = n_q
        self._n_q = n_q
        self.layers = nn.ModuleList(
            EMACodebook(dimension, bins, decay, epsilon, kmeans_init, kmeans_iters, threshold_ema_dead_code)
            for _ in range(n_q)
        )
        self._dropout_generator: torch.Generator | None = None
        if q_dropout_seed is not None:
            self._dropout_generator = torch.Generator().manual_seed(q_dropout_seed)

    @classmethod
    def from_options(cls, options: QuantizerOptions) -> ResidualVectorQuantizer:
        """``n_q`` codebooks of ``bins`` entries on ``dimension``-dimensional latents."""
        return cls(dimension=options.dimension, n_q=options.n_q, bins=options.bins, q_dropout=options.q_dropout)

    def summary(self) -> str:
        return f"rvq, {self.total_codebooks} codebooks x {self.bins} bins"

    def state_note(self) -> str:
        values = self.total_codebooks * self.bins * self.dimension
        return (
            f"codebooks are learned by EMA: {self.total_codebooks} x {self.bins} x {self.dimension} = "
            f"{values} values in buffers"
        )

    @property
    def initialized(self) -> bool:
        """True when every codebook has been initialised (k-means on a training batch, or loaded)."""
        return all(bool(layer.initialized) for layer in self.layers)

    # --- quantization ---------------------------------------------------------------------------

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.dimension:
            raise ValueError(
                f"ResidualVectorQuantizer: expected latents [batch, {self.dimension}, frames], got "
                f"shape {tuple(x.shape)}."
            )
        return x.transpose(1, 2).reshape(-1, self.dimension)

    def _unflatten(self, vectors: torch.Tensor, batch: int) -> torch.Tensor:
        return vectors.reshape(batch, -1, self.dimension).transpose(1, 2)

    def _draw_dropout_n_q(self, device: torch.device, generator: torch.Generator | None) -> int:
        generator = generator if generator is not None else self._dropout_generator
        draw_device = generator.device if generator is not None else torch.device("cpu")
        n_q = torch.randint(1, self.n_q + 1, (1,), generator=generator, device=draw_device)
        n_q = n_q.to(device)
        _broadcast_from_rank0_(n_q)  # identical on every rank, whatever each rank's generator
        return int(n_q.item())

    def _residual_quantize(
        self, x: torch.Tensor, n_q: int, learn: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shared by forward and encode: ``(sum of entries [N, D], codes [n_q, N], penalty)``.

        ``learn=False`` only looks codes up (encode); ``learn=True`` calls each codebook's forward,
        which picks the same codes and also updates the codebook in training mode.
        """
        residual = self._flatten(x).to(self.layers[0].embed.dtype)
        quantized_sum = torch.zeros_like(residual, requires_grad=False)
        codes, penalties = [], []
        # Distances, EMA statistics and the penalty in the codebooks' float32, even under autocast.
        with torch.autocast(device_type=residual.device.type, enabled=False):
            for layer in self.layers[:n_q]:
                if learn:
                    quantized, layer_codes = layer(residual)
                else:
                    layer_codes = layer.encode(residual)
                    quantized = layer.decode(layer_codes)
                penalties.append(F.mse_loss(residual, quantized))
                residual = residual - quantized
                quantized_sum = quantized_sum + quantized
                codes.append(layer_codes)
        return quantized_sum, torch.stack(codes), torch.stack(penalties).mean()

    def forward(self, x: torch.Tensor, frame_rate: float, generator: torch.Generator | None = None) -> QuantizedResult:
        """Quantize ``x [B, D, F]`` (frame_rate in Hz); see the class docstring for the math.

        Args:
            x: latents ``[batch, dimension, frames]``.
            frame_rate: frames per second, for the bandwidth.
            generator: quantizer-dropout generator for this call (overrides ``q_dropout_seed``).
        """
        batch = x.shape[0]
        n_q = self.n_q
        # Dropout starts once every codebook is k-means initialised: the first training batch uses
        # all of them, so a model is usable in eval after one step whatever dropout drew.
        if self.training and self.q_dropout and self.initialized:
            n_q = self._draw_dropout_n_q(x.device, generator)
        quantized_sum, codes, penalty = self._residual_quantize(x, n_q, learn=True)
        quantized = self._unflatten(quantized_sum, batch).to(x.dtype)
        if torch.is_grad_enabled() and x.requires_grad:
            # One straight-through over the sum: the gradient w.r.t. x is exactly the identity.
            quantized = x + (quantized - x).detach()
        codes = codes.reshape(n_q, batch, -1).transpose(0, 1)
        bandwidth = torch.tensor(n_q * self.bandwidth_per_codebook(frame_rate), device=x.device)
        return QuantizedResult(x=quantized, codes=codes, bandwidth=bandwidth, penalty=penalty)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` int64 of latents ``x [B, D, F]`` (default ``n_q``: ``self.n_q``).

        Never updates the codebooks, whatever the mode.
        """
        n_q = self.n_q if n_q is None else self._check_n_q(n_q)
        _, codes, _ = self._residual_quantize(x, n_q, learn=False)
        return codes.reshape(n_q, x.shape[0], -1).transpose(0, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, F]`` (float32) from codes ``[B, K, F]`` (any integer dtype), ``K <= total_codebooks``."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.total_codebooks:
            raise ValueError(
                f"ResidualVectorQuantizer.decode: expected codes [batch, 1..{self.total_codebooks}, "
                f"frames], got shape {tuple(codes.shape)}."
            )
        batch = codes.shape[0]
        per_layer = codes.long().transpose(0, 1).reshape(codes.shape[1], -1)  # [K, B·F]
        quantized_sum = torch.zeros(
            per_layer.shape[1], self.dimension, dtype=self.layers[0].embed.dtype, device=codes.device
        )
        for layer, layer_codes in zip(self.layers, per_layer):
            quantized_sum = quantized_sum + layer.decode(layer_codes)
        return self._unflatten(quantized_sum, batch)

    # --- the same lookups for an exported graph -------------------------------------------------

    def _stacked_codebooks(self) -> torch.Tensor:
        """Every codebook's entries ``[n_q, bins, D]`` (one constant in an exported graph)."""
        return torch.stack([layer.embed.detach() for layer in self.layers])

    def export_encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` int64 of all codebooks: the nearest-entry rule of :meth:`encode` (lowest index on
        ties) without its checks on buffer values, which a traced graph cannot hold. The first ``k`` rows are the
        codes of ``k`` codebooks, since residual quantization is sequential."""
        batch = x.shape[0]
        residual = x.transpose(1, 2).reshape(-1, self.dimension)
        codes = []
        for codebook in self._stacked_codebooks():
            index = squared_distances(residual, codebook).argmin(dim=1)
            residual = residual - F.embedding(index, codebook)
            codes.append(index)
        return torch.stack(codes).reshape(len(codes), batch, -1).transpose(0, 1)

    def export_decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, F]`` (``K <= n_q``) -> latents ``[B, D, F]``: ``Σ_{i<K} e^{(i)}_{codes[:, i]}`` as one
        lookup in the stacked codebooks (row ``i`` is offset by ``i · bins``)."""
        offsets = torch.arange(encoded.shape[1], device=encoded.device) * self.bins
        stacked = self._stacked_codebooks().reshape(-1, self.dimension)
        entries = F.embedding(encoded + offsets[None, :, None], stacked)  # [B, K, F, D]
        return entries.sum(dim=1).transpose(1, 2)
