"""Hugging Face interop: export to ``transformers.EncodecModel`` and import from it, exactly.

Nothing is downloaded: ``HF_HUB_OFFLINE=1`` and every ``EncodecModel`` is built here from an
``EncodecConfig`` with random weights (random codebooks too: a fresh one has all-zero codebooks).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it at import

import pytest
import torch
import transformers  # noqa: E402  (the hf extra, part of the test install)

from audioenc.cli import main  # noqa: E402
from audioenc.config import Config, ModelConfig  # noqa: E402
from audioenc.interop.hf_config import (  # noqa: E402
    encodec_config_kwargs,
    hf_codebooks_for,
    target_bandwidths,
)
from audioenc.interop.hf_keys import key_pairs, to_hf_state, uses_legacy_weight_norm  # noqa: E402
from audioenc.models.codec import CodecModel  # noqa: E402
from audioenc.models.files import (
    export_model,  # noqa: E402
    load_codec,  # noqa: E402
)
from audioenc.models.seanet import SEANetDecoder, SEANetEncoder, seanet_options  # noqa: E402

transformers.utils.logging.disable_progress_bar()

# A tiny audiocraft-layout codec: EnCodec's strides (hop 320, 75 Hz) and 1024 bins, so that EnCodec's
# bandwidth list applies (1.5 / 3 kbps = 2 / 4 codebooks), but 4 filters and 16 dimensions.
TINY = dict(quantizer="rvq", n_filters=4, dimension=16, n_q=5, bins=1024, lstm=1)
LENGTH = 320 * 7 + 123  # not a multiple of the hop


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: on 2 shared cores, one intra-op thread is 3-4x faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def codebooks_like(latents: torch.Tensor, n_q: int, bins: int, seed: int = 0) -> list[torch.Tensor]:
    """``n_q`` codebooks ``[bins, D]`` drawn around the residuals of ``latents`` ``[B, D, F]`` level by
    level (as k-means init would start), so that codes differ from frame to frame."""
    generator = torch.Generator().manual_seed(seed)
    residual = latents.transpose(1, 2).reshape(-1, latents.shape[1])
    books = []
    for _ in range(n_q):
        rows = torch.randint(0, residual.shape[0], (bins,), generator=generator)
        book = residual[rows] + 0.3 * residual.std() * torch.randn(bins, residual.shape[1], generator=generator)
        books.append(book)
        residual = residual - book[torch.cdist(residual, book).argmin(1)]
    return books


def random_codebooks_(model: CodecModel) -> CodecModel:
    x = audio(model.channels)
    with torch.no_grad():
        latents = model.encoder(x / model.input_scale(x))
    books = codebooks_like(latents, model.quantizer.total_codebooks, model.quantizer.bins)
    for layer, book in zip(model.quantizer.layers, books):
        layer.set_codebook_(book, torch.rand(layer.bins) + 0.5)
    return model.eval()


def tiny_codec(**overrides) -> tuple[CodecModel, ModelConfig]:
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY, **overrides})
    return random_codebooks_(CodecModel.from_config(config)), config


def audio(channels: int = 1, batch: int = 2) -> torch.Tensor:
    x = 0.1 * torch.randn(batch, channels, LENGTH, generator=torch.Generator().manual_seed(1))
    x[-1] *= 0.01  # a quiet item: normalisation must act per item
    return x


def assert_same_codec(model: CodecModel, hf_model, x: torch.Tensor) -> list[int]:
    """Identical codes and audio within 1e-5 at every bandwidth of ``hf_model``; returns the codebook counts."""
    counts = []
    for bandwidth in hf_model.config.target_bandwidths:
        n_q = hf_model.quantizer.get_num_quantizers_for_bandwidth(bandwidth)
        encoded = hf_model.encode(x, bandwidth=bandwidth)
        hf_audio = hf_model.decode(encoded.audio_codes, encoded.audio_scales).audio_values
        assert hf_audio.shape[-1] == -(-LENGTH // model.hop_length) * model.hop_length  # frames × hop samples
        model.quantizer.n_q = n_q
        codes, scale = model.encode(x)
        ours = model.decode(codes, scale, length=LENGTH)
        assert torch.equal(encoded.audio_codes[0], codes), bandwidth
        assert codes.unique().numel() > 4  # the comparison means something
        assert (hf_audio[..., :LENGTH] - ours).abs().max() <= 1e-5
        counts.append(n_q)
    model.quantizer.n_q = model.quantizer.total_codebooks
    return counts


# ------------------------------------------------------------------------------------ export


@pytest.mark.parametrize(
    "architecture",
    [
        dict(),  # audioenc's default: audiocraft's causal, constant padding, identity shortcuts, normalised
        dict(causal=False, pad_mode="reflect", normalize=False, n_residual_layers=2, lstm=2),
    ],
)
def test_export_round_trip_gives_identical_codes_and_audio(tmp_path, architecture):
    model, config = tiny_codec(**architecture)
    from audioenc.interop.hf import export_hf

    summary = export_hf(model, config, tmp_path / "hf")
    assert "codes identical" in summary and "DIFFER" not in summary
    hf_model = transformers.EncodecModel.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    assert hf_model.config.target_bandwidths == [1.5, 3.0, 3.75]  # EnCodec's list, then all 5 codebooks
    with torch.no_grad():
        assert assert_same_codec(model, hf_model, audio()) == [2, 4, 5]
        # The feature extractor saved beside it feeds the same numbers; forward() trims to the input.
        extractor = transformers.EncodecFeatureExtractor.from_pretrained(tmp_path / "hf")
        assert extractor.sampling_rate == 24000
        x = audio(batch=1)
        inputs = extractor(raw_audio=x[0, 0].numpy(), sampling_rate=24000, return_tensors="pt")
        out = hf_model(inputs["input_values"], inputs["padding_mask"], bandwidth=3.75).audio_values
        codes, scale = model.encode(x)
        assert out.shape[-1] == LENGTH
        assert (out - model.decode(codes, scale, length=LENGTH)).abs().max() <= 1e-5


def test_target_bandwidths_follow_encodec_and_end_with_all_codebooks():
    assert target_bandwidths(ModelConfig(quantizer="rvq")) == [1.5, 3.0, 6.0, 12.0, 24.0]  # the paper codec
    assert target_bandwidths(ModelConfig(quantizer="rvq", n_q=8)) == [1.5, 3.0, 6.0]  # the small preset
    # 22.05 kHz / 320: HF's frame rate is ceil(68.9) = 69; every entry still selects what it says.
    odd = ModelConfig(quantizer="rvq", sample_rate=22050, n_q=7)
    bandwidths = target_bandwidths(odd)
    counts = [hf_codebooks_for(b, 1024, 69) for b in bandwidths]
    assert counts == sorted(set(counts)) and counts[-1] == 7
    assert transformers.EncodecConfig(**encodec_config_kwargs(odd)).num_quantizers == 7


def _refusal(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(quantizer="none"), "continuous"),
        (dict(channels=32), "32 channels"),
        (dict(channels=2), "stereo"),  # normalize on the channel mean in HF
    ],
)
def test_export_refuses_what_encodec_model_cannot_be(tmp_path, capsys, overrides, words):
    config = ModelConfig(**{**TINY, **overrides})
    model = CodecModel.from_config(config)
    if model.quantizer.discrete:
        random_codebooks_(model)
    export_model(tmp_path, "model_best", model, config)
    err = _refusal(capsys, ["export", str(tmp_path / "model_best.safetensors"), "--format", "hf", str(tmp_path / "hf")])
    assert words in err and "--format onnx" in err
    assert not (tmp_path / "hf").exists()


def test_export_refuses_a_quantizer_encodec_model_does_not_have(tmp_path, capsys):
    """transformers' EncodecModel has only EnCodec's RVQ: an FSQ codec is refused by name, nothing written."""
    config = ModelConfig(**{**TINY, "quantizer": "fsq"})
    export_model(tmp_path, "model_best", CodecModel.from_config(config), config)
    err = _refusal(capsys, ["export", str(tmp_path / "model_best.safetensors"), "--format", "hf", str(tmp_path / "hf")])
    assert "model.quantizer='fsq'" in err and "only model.quantizer='rvq'" in err and "--format onnx" in err
    assert not (tmp_path / "hf").exists()


def test_export_refuses_untrained_codebooks_and_a_used_folder(tmp_path, capsys):
    config = ModelConfig(**TINY)
    export_model(tmp_path / "run", "model_best", CodecModel.from_config(config), config)  # k-means never ran
    assert "never initialised" in _refusal(
        capsys, ["export", str(tmp_path / "run"), "--format", "hf", str(tmp_path / "hf")]
    )
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("keep me")
    export_model(tmp_path / "run2", "model_best", *tiny_codec())
    err = _refusal(capsys, ["export", str(tmp_path / "run2"), "--format", "hf", str(tmp_path / "used")])
    assert "already holds files" in err and "--overwrite" in err
    assert (tmp_path / "used" / "x").read_text() == "keep me"


# ------------------------------------------------------------------------------------ import


def random_encodec(**overrides):
    """A tiny random ``EncodecModel`` (hop 8: 3000 frames/s, 1024 bins: 30 kbps per codebook, 4 codebooks;
    1024 bins because transformers 4.53 and older count 10 bits per codebook) with codebooks around its latents."""
    torch.manual_seed(0)
    kwargs = dict(
        num_filters=4,
        hidden_size=16,
        codebook_size=1024,
        upsampling_ratios=[4, 2],
        target_bandwidths=[30.0, 60.0, 120.0],
        normalize=True,
    )
    hf_model = transformers.EncodecModel(transformers.EncodecConfig(**{**kwargs, **overrides})).eval()
    with torch.no_grad():
        x = audio()
        latents = hf_model.encoder(x / (x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + 1e-8))
        books = codebooks_like(latents, len(hf_model.quantizer.layers), hf_model.config.codebook_size)
        for layer, book in zip(hf_model.quantizer.layers, books):
            layer.codebook.embed.copy_(book)
            layer.codebook.embed_avg.copy_(book)
            layer.codebook.cluster_size.fill_(1.0)
    return hf_model


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(dict(use_conv_shortcut=True, pad_mode="reflect"), id="released-24khz-layout"),
        pytest.param(dict(use_conv_shortcut=False, pad_mode="constant", use_causal_conv=False), id="audiocraft-layout"),
    ],
)
def test_import_gives_identical_codes_and_audio(tmp_path, overrides):
    from audioenc.interop.hf import import_hf

    hf_model = random_encodec(**overrides)
    hf_model.save_pretrained(tmp_path / "hf")
    summary = import_hf(tmp_path / "hf", tmp_path / "run")
    assert "codes identical" in summary and "--init-from" in summary
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json",
        "imported_from.json",
        "model_best.json",
        "model_best.safetensors",
    ]
    model, config = load_codec(tmp_path / "run")
    assert (config.true_skip, config.pad_mode, config.n_q, config.bins) == (
        not overrides["use_conv_shortcut"],
        overrides["pad_mode"],
        4,
        1024,
    )
    assert Config.load(tmp_path / "run" / "config.json").model == config
    with torch.no_grad():
        assert assert_same_codec(model, hf_model, audio()) == [1, 2, 4]


def test_import_refuses_what_audioenc_cannot_express(tmp_path, capsys):
    transformers.EncodecConfig(norm_type="time_group_norm").save_pretrained(tmp_path / "48k")  # the 48 kHz model
    assert "time_group_norm" in _refusal(capsys, ["import-hf", str(tmp_path / "48k"), str(tmp_path / "run")])
    transformers.EncodecConfig(compress=4).save_pretrained(tmp_path / "compress")
    assert "compress=4" in _refusal(capsys, ["import-hf", str(tmp_path / "compress"), str(tmp_path / "run")])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert "not a transformers EncodecModel" in _refusal(
        capsys, ["import-hf", str(tmp_path / "other"), str(tmp_path / "run")]
    )
    untrained = random_encodec(use_conv_shortcut=False)
    with torch.no_grad():
        untrained.quantizer.layers[2].codebook.embed.zero_()
    untrained.save_pretrained(tmp_path / "untrained")
    assert "all zeros" in _refusal(capsys, ["import-hf", str(tmp_path / "untrained"), str(tmp_path / "run")])
    weights = tmp_path / "untrained" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a cut download
    assert "could not be loaded" in _refusal(capsys, ["import-hf", str(tmp_path / "untrained"), str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ layout


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "true_skip, encoder, decoder",
    [
        (True, 7_337_792, 7_338_018),  # audioenc / audiocraft (`audioenc info --1ch --quantizer rvq`)
        (False, 7_425_792, 7_426_018),  # transformers' defaults = the released facebook/encodec_24khz
    ],
)
def test_paper_parameter_counts_equal_transformers(true_skip, encoder, decoder):
    config = ModelConfig(quantizer="rvq", true_skip=true_skip)
    with torch.device("meta"):  # counting only: no memory, no initialisation
        ours = SEANetEncoder(**seanet_options(config)), SEANetDecoder(**seanet_options(config))
        theirs = transformers.EncodecModel(transformers.EncodecConfig(**encodec_config_kwargs(config)))
        if not true_skip:
            default = transformers.EncodecModel(transformers.EncodecConfig())
            assert (_count(default.encoder), _count(default.decoder)) == (encoder, decoder)
    assert (_count(ours[0]), _count(ours[1])) == (encoder, decoder)
    assert (_count(theirs.encoder), _count(theirs.decoder)) == (encoder, decoder)


@pytest.mark.parametrize("true_skip", [True, False])
def test_key_map_covers_both_state_dicts_exactly(true_skip):
    config = ModelConfig(**{**TINY, "true_skip": true_skip, "n_residual_layers": 2, "lstm": 2})
    from audioenc.quantization.rvq import ResidualVectorQuantizer

    options = seanet_options(config)  # (CodecModel.from_config may not pass true_skip yet)
    model = CodecModel(
        SEANetEncoder(**options),
        SEANetDecoder(**options),
        ResidualVectorQuantizer(config.dimension, config.n_q, config.bins),
        24000,
        1,
    )
    hf_model = transformers.EncodecModel(transformers.EncodecConfig(**encodec_config_kwargs(config)))
    ours, theirs = model.state_dict(), hf_model.state_dict()
    mapped = to_hf_state(ours, config, legacy_weight_norm=uses_legacy_weight_norm(theirs))  # transformers <= 4.44
    assert set(mapped) == set(theirs)
    assert all(mapped[key].shape == theirs[key].shape for key in theirs)
    assert len(key_pairs(config)) + config.n_q == len(ours)


def test_configs_saved_before_true_skip_keep_identity_shortcuts():
    saved = Config().to_dict()
    del saved["model"]["true_skip"]
    assert Config.from_dict(saved).model.true_skip is True


# ------------------------------------------------------------------------------------ CLI


def test_cli_export_import_and_fine_tune(tmp_path, capsys):
    """export → import-hf gives back the very same weights; `train --init-from` starts from them."""
    from tests.training.conftest import TINY_OVERRIDES, make_audio_folder

    model, config = tiny_codec(ratios=(4, 4), n_q=4)  # hop 16: the tiny trainer's segment fits
    export_model(tmp_path / "run", "model_best", model, config)
    assert main(["export", str(tmp_path / "run"), "--format", "hf", str(tmp_path / "hf")]) == 0
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    back, back_config = load_codec(tmp_path / "back")
    assert back_config == config
    state = model.state_dict()
    assert all(torch.equal(tensor, state[key]) for key, tensor in back.state_dict().items())
    capsys.readouterr()

    data = make_audio_folder(tmp_path / "data")
    training = [item for item in TINY_OVERRIDES if not item.startswith("model.")]
    argv = [
        "train",
        "--1ch",
        "--preset",
        "small",
        "--no-progress",
        "--init-from",
        str(tmp_path / "back"),
        "--run-dir",
        str(tmp_path / "ft"),
        *training,
        f"data.root={data}",
        "train.epochs=1",
        "train.updates_per_epoch=1",
    ]
    assert main(argv) == 0
    assert "initialised from" in capsys.readouterr().out
    record = json.loads((tmp_path / "ft" / "init_from.json").read_text())
    assert "discriminator starts fresh" in record["note"]
    assert Config.load(tmp_path / "ft" / "config.json").model == config  # the preset's model keys gave way
    assert main([*argv, "--resume"]) == 2  # --init-from with --resume is contradictory


@pytest.mark.slow
def test_paper_size_export_is_exact(tmp_path):
    """EnCodec's size (15 M parameters, 32 codebooks, 5 bandwidths): 15-60 s on 2 shared cores."""
    model, config = tiny_codec(n_filters=32, dimension=128, n_q=32, lstm=2)
    from audioenc.interop.hf import export_hf

    export_hf(model, config, tmp_path / "hf")
    hf_model = transformers.EncodecModel.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    with torch.no_grad():
        assert assert_same_codec(model, hf_model, audio()) == [2, 4, 8, 16, 32]
