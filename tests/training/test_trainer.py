"""The training step and loop: determinism, exact resume, validation purity, checkpoint safety."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from audioenc.core.distributed import DistributedContext
from audioenc.models.files import load_training_state
from audioenc.training.checkpoint import save_training_state
from audioenc.training.data import build_datasets
from audioenc.training.run import train
from audioenc.training.trainer import NonFiniteLossError, Trainer


def _steps(config, run_dir, n):
    train_set, _ = build_datasets(config, DistributedContext())
    trainer = Trainer(config, run_dir, torch.device("cpu"))
    losses = []
    for index in range(n):
        result = trainer.train_step(torch.stack([train_set[index * 2 + k] for k in range(2)]))
        losses.append(result.values)
    return trainer, losses


@pytest.mark.parametrize("quantizer", ["none", "rvq"])
def test_two_steps_are_identical_across_runs(make_config, tmp_path, quantizer):
    config = make_config(f"model.quantizer={quantizer}")
    _, first = _steps(config, tmp_path / "a", 2)
    _, second = _steps(config, tmp_path / "b", 2)
    assert first == second
    assert set(first[0]) >= {"l1", "mel", "adv", "feat", "d_loss", "commitment", "effective_loss"}


def test_weights_actually_change(make_config, tmp_path):
    # The source repository never updated its weights (a swallowed balancer key error).
    config = make_config()
    train_set, _ = build_datasets(config, DistributedContext())
    trainer = Trainer(config, tmp_path, torch.device("cpu"))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    disc_before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    trainer.train_step(torch.stack([train_set[0], train_set[1]]))
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)  # every generator tensor moved
    assert any(not torch.equal(v, disc_before[k]) for k, v in trainer.discriminator.state_dict().items())


@pytest.mark.parametrize("normalize", [True, False])
def test_a_normalising_codec_trains_the_same_whatever_the_input_level(make_config, tmp_path, normalize):
    """model.normalize: the step sees every segment at unit RMS, so a batch whose items are 60 and
    40 dB quieter gives the same losses and the same gradients (float64: equal up to rounding;
    compared before Adam, whose first step turns near-zero gradients into full steps); without it
    the level changes the step."""
    config = make_config(f"model.normalize={normalize}")
    train_set, _ = build_datasets(config, DistributedContext())
    batch = torch.stack([train_set[0], train_set[1]]).double()
    results = []
    quiet_gains = torch.tensor([1e-3, 1e-2], dtype=torch.float64)[:, None, None]  # a different gain per item
    for gain, folder in ((1.0, "loud"), (quiet_gains, "quiet")):
        trainer = Trainer(config, tmp_path / folder, torch.device("cpu"))
        for module in (trainer.model, trainer.discriminator, trainer.mel_loss):
            module.double()
        values = trainer.train_step(gain * batch).values
        results.append((values, [p.grad.clone() for p in trainer.model.parameters()]))
    (loud, loud_grads), (quiet, quiet_grads) = results
    if normalize:
        # Exact but for the 1e-8 floor added to each item's level: relative 1e-8 / (quietest RMS).
        tolerance = 10 * 1e-8 / float((quiet_gains * batch).pow(2).mean(dim=(1, 2)).sqrt().min())
        assert tolerance < 0.01, tolerance
        for key in ("l1", "mel", "adv", "feat", "d_loss"):
            assert quiet[key] == pytest.approx(loud[key], rel=tolerance), key
        for quiet_grad, loud_grad in zip(quiet_grads, loud_grads):
            assert (quiet_grad - loud_grad).abs().max() <= tolerance * loud_grad.abs().max() + 1e-12
    else:  # the same weights see another signal: the mel loss moves by far more than rounding
        assert abs(quiet["mel"] - loud["mel"]) > 0.1 * loud["mel"]


def test_resume_reproduces_the_uninterrupted_run(make_config, tmp_path):
    config = make_config("model.quantizer=rvq", "train.epochs=1", "train.updates_per_epoch=5")
    # Uninterrupted: 5 steps.
    full = train(config, tmp_path / "full", progress=False)
    full_losses = full["last_train_losses"]
    # Interrupted after 3 steps (checkpoint_every=2 -> saved at 2; stop at 3 via a shorter run).
    short = make_config(
        "model.quantizer=rvq", "train.epochs=1", "train.updates_per_epoch=5", "train.checkpoint_every=3"
    )
    run_dir = tmp_path / "resumed"
    train_set, valid_set = build_datasets(short, DistributedContext())
    trainer = Trainer(short, run_dir, torch.device("cpu"))
    # The same samples as steps 0-2 of the full run; a private generator keeps the global RNG untouched.
    loader = torch.utils.data.DataLoader(train_set, batch_size=2, sampler=range(0, 6), generator=torch.Generator())
    for audio in loader:
        trainer.train_step(audio)
    trainer.save("last")
    summary = train(short, run_dir, resume=True, progress=False)
    assert summary["steps"] == 5
    assert summary["last_train_losses"] == full_losses


def test_best_step_is_saved_and_resumed(make_config, tmp_path):
    config = make_config()
    trainer = Trainer(config, tmp_path, torch.device("cpu"))
    trainer.step, trainer.best_step, trainer.best_value = 9, 7, 0.5
    state = trainer.state_dict()
    resumed = Trainer(config, tmp_path / "b", torch.device("cpu"))
    resumed.load_state_dict(state, tmp_path / "checkpoint_last.pt")
    assert (resumed.step, resumed.best_step, resumed.best_value) == (9, 7, 0.5)
    del state["best_step"]  # a checkpoint from before best_step: taken as recent, so no reset follows
    resumed.load_state_dict(state, tmp_path / "checkpoint_last.pt")
    assert resumed.best_step == 9


def test_checkpoint_from_before_normalize_names_the_override(make_config, tmp_path):
    trainer = Trainer(make_config(), tmp_path, torch.device("cpu"))
    state = trainer.state_dict()
    del state["config"]["model"]["normalize"]  # as saved before the key existed: never normalised
    with pytest.raises(ValueError, match=r"model.normalize: checkpoint False, now True[\s\S]*model.normalize=false"):
        trainer.load_state_dict(state, tmp_path / "checkpoint_last.pt")
    plain = Trainer(make_config("model.normalize=false"), tmp_path / "plain", torch.device("cpu"))
    plain.load_state_dict(state, tmp_path / "checkpoint_last.pt")  # the same codec: resumes
    assert plain.step == 0


def test_validation_changes_nothing(make_config, tmp_path):
    config = make_config("model.quantizer=rvq")
    train_set, valid_set = build_datasets(config, DistributedContext())
    trainer = Trainer(config, tmp_path, torch.device("cpu"))
    trainer.train_step(torch.stack([train_set[0], train_set[1]]))
    state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in trainer.state_dict().items()}
    snapshot = json.dumps({k: str(v) for k, v in state.items()})
    metrics = trainer.validate(torch.utils.data.DataLoader(valid_set, batch_size=2))
    assert set(metrics) >= {"l1", "mel_distance", "si_snr"}
    after = trainer.state_dict()
    for key in ("model", "discriminator"):
        for name, tensor in after[key].items():
            assert torch.equal(tensor, state[key][name]), f"{key}.{name} changed during validation"
    assert json.dumps({k: str(v) for k, v in after.items()}) == snapshot  # optimizers, balancer, RNG too


def test_multichannel_run_reports_spatial_errors(tmp_path):
    from audioenc.config import build_config

    from .conftest import TINY_OVERRIDES, make_audio_folder

    data = make_audio_folder(tmp_path / "stereo", channels=2)
    config = build_config("32ch", "small", [*TINY_OVERRIDES, "model.channels=2", f"data.root={data}", "train.epochs=1"])
    train(config, tmp_path / "run", progress=False)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["ild_error_db"] > 0 and 0 < row["coherence_error"] <= 2


def test_killed_checkpoint_write_leaves_previous_loadable(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    save_training_state(path, {"step": 1, "weights": torch.ones(3)})
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from audioenc.core.atomic import atomic_write

        def write(tmp):
            with open(tmp, "wb") as handle:
                handle.write(b"PK" + b"\\0" * 1000)  # half a file ...
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)  # ... then killed

        atomic_write(Path({str(path)!r}), write)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -9
    state = load_training_state(path)
    assert state["step"] == 1 and torch.equal(state["weights"], torch.ones(3))


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="could not be read"):
        load_training_state(path)


def test_checkpoint_from_another_configuration_is_refused(make_config, tmp_path):
    train(make_config("train.epochs=1"), tmp_path, progress=False)
    other = make_config("train.epochs=2", "model.dimension=16")
    with pytest.raises(ValueError, match="model.dimension: checkpoint 8, now 16"):
        train(other, tmp_path, resume=True, progress=False)


def test_existing_run_is_not_overwritten(make_config, tmp_path):
    train(make_config("train.epochs=1"), tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(make_config("train.epochs=1"), tmp_path, progress=False)


def test_nonfinite_losses_are_skipped_then_stop(make_config, tmp_path):
    config = make_config("train.max_nonfinite_steps=2")
    trainer = Trainer(config, tmp_path, torch.device("cpu"))
    bad = torch.full((2, 1, 2400), float("nan"))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.train_step(bad).skipped
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        trainer.train_step(bad)


def test_run_folder_contents_and_best_by_mel(make_config, tmp_path):
    summary = train(make_config(), tmp_path, progress=False)
    for name in (
        "config.json",
        "checkpoint_last.pt",
        "checkpoint_best.pt",
        "model_best.safetensors",
        "model_best.json",
        "metrics.jsonl",
        "summary.json",
    ):
        assert (tmp_path / name).exists(), name
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1, 2]  # epoch 0: the untrained baseline
    assert summary["best_mel_distance"] == pytest.approx(min(r["mel_distance"] for r in rows))


def test_best_is_chosen_among_models_trained_with_the_full_objective(make_config, tmp_path):
    """Validation mel distances scripted per epoch, adversarial warm-up until step 2 (one step per
    epoch): the warm-up's 0.5 (step 2: no adversarial step yet) no longer counts once step 3 has
    been validated; from then on the lowest value wins as usual."""
    from audioenc.training.logging import RunLogger
    from audioenc.training.loop import _end_of_epoch

    config = make_config("train.adversarial_warmup_steps=2", "train.updates_per_epoch=1", "train.logger=none")
    trainer = Trainer(config, tmp_path, torch.device("cpu"))
    scripted = {0: 3.0, 1: 1.0, 2: 0.5, 3: 0.9, 4: 0.95, 5: 0.8, 6: 0.85}
    trainer.validate = lambda loader: {"mel_distance": scripted[trainer.step]}
    logger = RunLogger("none", tmp_path, config.to_dict())
    history = tmp_path / "metrics.jsonl"
    for step in scripted:
        trainer.step = step
        _end_of_epoch(trainer, None, logger, history, epoch=step)
    best_flags = [json.loads(line)["best"] for line in history.read_text().splitlines()]
    assert best_flags == [True, True, True, True, False, True, False]
    assert (trainer.best_value, trainer.best_step) == (0.8, 5)
    state = load_training_state(tmp_path / "checkpoint_best.pt")
    assert (state["step"], state["best_step"], state["best_value"]) == (5, 5, 0.8)


def test_torchrun_two_ranks_gloo_end_with_identical_weights(tiny_data, tmp_path):
    from .conftest import TINY_OVERRIDES

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        # --standalone: the rendezvous takes a free port, so parallel test runs do not collide.
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "audioenc",
        "train",
        "--1ch",
        "--preset",
        "small",
        "--run-dir",
        str(tmp_path / "ddp"),
        "--no-progress",
        *TINY_OVERRIDES,
        "train.epochs=1",
        f"data.root={tiny_data}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    checksums = summary["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert summary["steps"] == 3


def test_adversarial_warmup_trains_reconstruction_first(make_config, tmp_path):
    config = make_config("train.adversarial_warmup_steps=1")
    _, values = _steps(config, tmp_path, 2)
    assert "adv" not in values[0] and "feat" not in values[0] and "d_loss" in values[0]
    assert {"adv", "feat"} <= set(values[1])


def test_tensorboard_logs_scalars_audio_and_mel_images(make_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_config("train.logger=tensorboard", "train.epochs=1"), tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/l1", "train/mel", "train/adv", "train/share_mel", "valid/mel_distance"} <= set(tags["scalars"])
    assert {"valid/reference", "valid/reconstruction"} <= set(tags["audio"])
    assert "valid/mel" in tags["images"]
    assert len(events.Scalars("train/l1")) == 3  # log_every=1, 3 steps


def test_wandb_offline_run_needs_no_network(make_config, tmp_path, monkeypatch):
    """``--logger wandb`` with ``WANDB_MODE=offline`` (the machines here have no network)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = train(make_config("train.logger=wandb", "train.epochs=1"), tmp_path, progress=False)
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb")), "no offline run file"
    media = run / "files" / "media"
    assert list((media / "audio" / "valid").glob("reconstruction_*.wav"))
    assert list((media / "images" / "valid").glob("mel_*.png"))
    assert summary["steps"] == 3


def test_bf16_autocast_step_is_finite_and_close_to_fp32(make_config, tmp_path):
    config = make_config()
    _, fp32 = _steps(config, tmp_path / "fp32", 1)
    _, bf16 = _steps(make_config("train.precision=bf16"), tmp_path / "bf16", 1)
    for key in ("l1", "mel", "adv", "feat"):
        assert math.isfinite(bf16[0][key])
        # bf16 keeps ~3 significant digits; the first step's losses agree to a few percent.
        assert bf16[0][key] == pytest.approx(fp32[0][key], rel=0.05, abs=1e-3), key


def test_compiled_step_matches_eager_and_keeps_checkpoint_keys(make_config, tmp_path):
    """``train.compile=true`` (torch.compile, inductor on CPU) computes the eager step's losses."""
    eager_trainer, eager = _steps(make_config("train.adversarial_warmup_steps=0"), tmp_path / "eager", 2)
    compiled_trainer, compiled = _steps(
        make_config("train.adversarial_warmup_steps=0", "train.compile=true"), tmp_path / "compiled", 2
    )
    for step in range(2):
        for key in ("d_loss", "l1", "mel", "adv", "feat"):
            # Fused kernels reorder float32 sums: agreement to ~1e-5, not bit for bit.
            assert compiled[step][key] == pytest.approx(eager[step][key], rel=1e-4, abs=1e-6), (step, key)
    # Module.compile() works in place: checkpoints of compiled and eager runs are interchangeable.
    assert list(compiled_trainer.model.state_dict()) == list(eager_trainer.model.state_dict())
    assert list(compiled_trainer.discriminator.state_dict()) == list(eager_trainer.discriminator.state_dict())


def _wait_until(condition, process: subprocess.Popen, log: Path, what: str, timeout: float = 900.0) -> None:
    """Poll ``condition`` until it holds; fail (and stop ``process``) if the process ends first or
    ``timeout`` seconds pass, so a signal is never sent to a run that has not started training."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"no {what} after {timeout:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


@pytest.mark.parametrize("target", ["process", "group"])
def test_sigterm_saves_last_and_exits_cleanly(tiny_data, tmp_path, target):
    """SIGTERM to the trainer alone, or to its whole process group as Ctrl-C, `timeout` and SLURM
    do (the DataLoader worker gets it too: it used to die and abort the step mid-way)."""
    from .conftest import TINY_OVERRIDES

    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "audioenc",
        "train",
        "--1ch",
        "--preset",
        "small",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        *TINY_OVERRIDES,
        "train.epochs=1000",
        "train.checkpoint_every=100000",
        f"data.root={tiny_data}",
        "data.num_workers=1",
    ]
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a pipe nobody reads while polling can fill and block the run
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    metrics = run_dir / "metrics.jsonl"
    # Epoch 0 (baseline) and epoch 1 done: training is under way, however loaded the machine is.
    _wait_until(
        lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2,
        process,
        log,
        "two validation rows in metrics.jsonl",
    )
    if target == "group":
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    assert process.returncode == 130, log.read_text()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_by_signal"] == signal.SIGTERM
    state = load_training_state(run_dir / "checkpoint_last.pt")
    assert state["step"] == summary["steps"] >= 3
