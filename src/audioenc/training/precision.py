"""bf16 autocast, checked layer by layer against float32 on this machine's own kernels.

A bf16 kernel can be wrong, not just imprecise. Measured on this project's CPU machine (Intel Xeon
with AMX-BF16, torch 2.13.0, oneDNN 3.12): ``Conv1d`` 16 → 32 channels, kernel 8, stride 4, on an
input whose length is a multiple of the stride, returns an output 110 % off (relative L2: noise)
under bf16 autocast, where bf16 rounding gives 0.3 %; with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``
(oneDNN without AMX) the same call is right. The small preset's encoder has exactly that layer, and
bf16 training diverged (validation mel distance 6.8 against fp32's 0.82 after 80 steps). A
reduction can fail too: the weight gradient of a ``Conv1d`` 1→2, kernel 1, summed over 2 × 2400
positions (a test configuration) came out 72 % off in bf16.

So before a bf16 run the trainer checks every layer autocast would run in bf16 (convolutions,
transposed convolutions, linear layers, LSTMs) on the run's own shapes: forward output, input
gradient and parameter gradients of each layer in bf16 against float32, from the same inputs.
A layer whose bf16 result is off by more than :data:`TOLERANCE` runs in float32 from then on
(:func:`run_in_float32`; the rest stays bf16), and the run says which and why.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

# bf16 keeps 8 significant bits. Measured on the small and paper presets: rounding gives 0.2-1.3 %
# relative L2 on outputs and gradients, up to 4.7 % on a weight gradient summed over ~24 k positions
# (the paper discriminator's last conv); the wrong kernels give 72-112 %.
TOLERANCE = 0.2
AUTOCAST_LAYERS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.Linear, nn.LSTM)


@dataclass
class LayerError:
    """One layer's bf16 result against float32 (relative L2 errors)."""

    name: str
    layer: str  # e.g. "Conv1d 16→32, kernel 8, stride 4 on [8, 16, 6004]"
    output: float
    input_grad: float
    weight_grad: float

    @property
    def worst(self) -> float:
        return max(self.output, self.input_grad, self.weight_grad)


def _relative(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.double().norm().item()
    error = (estimate.double() - reference.double()).norm().item()
    return error / scale if scale > 0 else (0.0 if error == 0 else float("inf"))


def describe(module: nn.Module) -> str:
    """``Conv1d 16→32, kernel 8, stride 4`` (weight-norm wrappers named as the layer they wrap)."""
    kind = type(module).__name__.removeprefix("Parametrized")
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
        kernel, stride = module.kernel_size, module.stride
        kernel, stride = (kernel[0], stride[0]) if len(kernel) == 1 else (kernel, stride)
        return f"{kind} {module.in_channels}→{module.out_channels}, kernel {kernel}, stride {stride}"
    if isinstance(module, nn.Linear):
        return f"{kind} {module.in_features}→{module.out_features}"
    if isinstance(module, nn.LSTM):
        return f"{kind} {module.input_size}→{module.hidden_size}, {module.num_layers} layers"
    return kind


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # LSTM: (output, (h, c))


def layer_error(name: str, module: nn.Module, inputs: torch.Tensor, device_type: str, seed: int = 0) -> LayerError:
    """bf16 autocast against float32 for one layer on ``inputs``: output, input and parameter grads."""
    generator = torch.Generator(device=inputs.device).manual_seed(seed)
    params = [p for p in module.parameters() if p.requires_grad]
    x = inputs.detach().float().requires_grad_(True)
    reference = _first(module(x))
    cotangent = torch.randn(reference.shape, generator=generator, device=reference.device)
    reference_grads = torch.autograd.grad(reference, [x, *params], cotangent)
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        estimate = _first(module(x))
    estimate_grads = torch.autograd.grad(estimate.float(), [x, *params], cotangent)
    weight_errors = [_relative(e, r) for e, r in zip(estimate_grads[1:], reference_grads[1:], strict=True)]
    return LayerError(
        name,
        f"{describe(module)} on {list(inputs.shape)}",
        _relative(estimate.float(), reference),
        _relative(estimate_grads[0], reference_grads[0]),
        max(weight_errors, default=0.0),
    )


def layer_inputs(
    model: nn.Module, discriminator: nn.Module, audio: torch.Tensor
) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Each autocast layer of the codec's encoder and decoder and of the discriminator, with the
    input it gets when ``audio`` ``[B, C, T]`` goes through them in float32 (the discriminator
    sees the decoder's output). The quantizer is skipped: its first training forward initialises
    the codebooks, and it has no autocast layer."""
    captured: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    handles = []
    for prefix, root in (("model", model), ("discriminator", discriminator)):
        for name, module in root.named_modules():
            if isinstance(module, AUTOCAST_LAYERS):

                def keep(mod, args, key=f"{prefix}.{name}") -> None:
                    captured.setdefault(key, (mod, args[0].detach()))

                handles.append(module.register_forward_pre_hook(keep))
    modes = {m: m.training for m in (model, discriminator)}
    try:
        model.eval()
        discriminator.eval()
        with torch.no_grad():
            reconstruction = model.decoder(model.encoder(audio))[..., : audio.shape[-1]]
            discriminator(reconstruction)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    return captured


def check_bf16_layers(model: nn.Module, discriminator: nn.Module, audio: torch.Tensor) -> list[LayerError]:
    """:func:`layer_error` of every autocast layer on the inputs ``audio`` gives it (see
    :func:`layer_inputs`), in the order the layers run."""
    device_type = audio.device.type
    return [
        layer_error(name, module, inputs, device_type)
        for name, (module, inputs) in layer_inputs(model, discriminator, audio).items()
    ]


def run_in_float32(module: nn.Module) -> None:
    """Make ``module`` compute in float32 even under autocast (its output is float32; the next
    layer casts as autocast decides). The parameters and the state dict are unchanged."""
    forward = module.forward

    @functools.wraps(forward)
    def float32_forward(x, *args, **kwargs):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return forward(x.float(), *args, **kwargs)

    module.forward = float32_forward


def guard_bf16(
    model: nn.Module, discriminator: nn.Module, audio: torch.Tensor, tolerance: float = TOLERANCE
) -> list[LayerError]:
    """Check every autocast layer on ``audio`` ``[B, C, T]`` (the run's per-rank batch shape) and
    run the wrong ones in float32; returns those layers (empty when bf16 is right everywhere)."""
    wrong = [error for error in check_bf16_layers(model, discriminator, audio) if error.worst > tolerance]
    modules = dict(model.named_modules(prefix="model")) | dict(discriminator.named_modules(prefix="discriminator"))
    for error in wrong:
        run_in_float32(modules[error.name])
    return wrong
