"""Experiment loggers: TensorBoard (default, local files), wandb (optional; offline works), none."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioenc.core.plotting import pyplot
from audioenc.metrics.reconstruction import validation_mel


class RunLogger:
    """Scalars, audio and images for one run; only rank 0 logs.

    Args:
        kind: ``tensorboard`` (event files in ``run_dir/tensorboard``), ``wandb`` (``WANDB_MODE``
            is respected; ``offline`` needs no network) or ``none``.
        run_dir: the run folder.
        config: the resolved configuration, recorded with the run.
        enabled: False on non-zero ranks.
    """

    def __init__(self, kind: str, run_dir: Path, config: dict[str, Any], enabled: bool = True) -> None:
        self.kind = kind if enabled else "none"
        self._tensorboard = None
        self._wandb = None
        if self.kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        elif self.kind == "wandb":
            try:
                import wandb
            except ImportError as error:
                raise RuntimeError(
                    "--logger wandb needs the wandb package: pip install 'audioenc[wandb]' "
                    "(or use --logger tensorboard)."
                ) from error
            self._wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "audioenc"),
                dir=str(run_dir),
                config=config,
                name=Path(run_dir).name,
                resume="allow",
            )
        elif self.kind != "none":
            raise ValueError(f"Unknown logger {kind!r}; choose tensorboard, wandb or none.")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(dict(values), step=step)

    def audio(self, step: int, tag: str, audio: np.ndarray, sample_rate: int) -> None:
        """``audio``: ``[T]`` float in [-1, 1]."""
        if self._tensorboard is not None:
            self._tensorboard.add_audio(tag, audio[None], step, sample_rate=sample_rate)
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Audio(audio, sample_rate=sample_rate)}, step=step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """``image``: ``[H, W, 3]`` uint8."""
        if self._tensorboard is not None:
            self._tensorboard.add_image(tag, image, step, dataformats="HWC")
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Image(image)}, step=step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()


def mel_comparison_image(reference: np.ndarray, reconstruction: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel spectrograms of ``reference`` and ``reconstruction`` (both ``[T]``) as an RGB image ``[H, W, 3]``."""
    plt = pyplot()
    mel = validation_mel(sample_rate)
    figure, axes = plt.subplots(2, 1, figsize=(6, 4), sharex=True)
    for axis, audio, title in zip(axes, (reference, reconstruction), ("reference", "reconstruction")):
        spectrogram = mel(torch.as_tensor(audio, dtype=torch.float32).view(1, 1, -1))[0, 0].numpy()
        axis.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma")
        axis.set_title(f"{title} (log-mel, 64 bands)", fontsize=8)
        axis.set_ylabel("mel band")
    axes[-1].set_xlabel("frame (hop 256)")
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image
