"""The training and validation datasets of a run, from its config."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from audioenc.audio import datasets
from audioenc.config import Config
from audioenc.core.distributed import DistributedContext
from audioenc.errors import UserError, require_directory


def build_datasets(config: Config, context: DistributedContext) -> tuple[Dataset, Dataset]:
    """Training segments (random, indexed by global sample number) and fixed validation segments.

    ``data.root=None`` uses the embedded eigenscape-like corpus, generated on first use.
    """
    if config.data.root:
        root = require_directory(
            config.data.root,
            "The training data folder (--data / data.root)",
            "Point --data at a folder of audio files, or leave it out for the embedded corpus.",
        )
    else:
        root = Path(datasets.default_eigenscape_corpus())
    channels = config.model.channels
    if config.data.channel_mode in ("mono", "downmix") and channels != 1:
        raise UserError(
            f"data.channel_mode={config.data.channel_mode} gives 1 channel but model.channels={channels}; "
            "use --32ch (channel_mode all) for multichannel training."
        )
    splits = datasets.build_datasets(
        root,
        segment_seconds=config.data.segment_seconds,
        sample_rate=config.model.sample_rate,
        channel_mode=config.data.channel_mode,
        channels=channels,
        seed=config.train.seed,
        valid_segments=config.data.valid_segments,
        rank=context.rank,
    )
    if splits.valid is None:
        raise UserError(
            f"No validation files could be split off {root}: at least 3 usable files are needed "
            "(train/valid/test split by file)."
        )
    return splits.train, splits.valid
