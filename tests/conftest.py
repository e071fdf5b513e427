"""Settings for every test process.

One intra-op thread: the suite's tensors are small, so a second OpenMP thread mostly adds
synchronisation, and on a 2-core machine shared with another job it makes small operations many
times slower (threads spin waiting for a descheduled one). Measured side by side on the project's
quiet 2-core machine, the same clone, ``pytest -m "slow or not slow"``: 864 s with torch's default
two threads, 675 s with one. ``OMP_NUM_THREADS`` set by the caller wins; subprocesses
(the CLI and torchrun tests) inherit it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the variable: OpenMP reads it when it starts)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
