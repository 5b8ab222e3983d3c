"""Model-parameter randomisation test (Adebayo et al., "Sanity checks for saliency maps", 2018)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.parameter import is_lazy
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from captum_cf._model_state import preserve_model_state
from captum_cf._validation import check_images, check_model_dtype
from captum_cf.metrics._common import higher_is_better, saliency_map
from captum_cf.metrics.ssim import ssim

__all__ = ["RandomizationResult", "randomization_test", "map_similarity"]


@dataclass(frozen=True)
class RandomizationResult:
    """Similarity between the original map and the maps of the randomised models.

    Attributes:
        layers (list of str): randomised layers, top (output) first, in the order applied.
        similarity (Tensor): shape (N, L); column ``l`` compares the original map with the map
            after randomising ``layers[:l + 1]`` (cascade) or only ``layers[l]`` (independent).
        measure (str): ``"ssim"`` or ``"spearman"``.
        cascade (bool): cascading or independent randomisation.
        higher_is_better (bool): False: a method that passes the sanity check changes its map
            when the model is randomised, so a low similarity is good.
    """

    layers: list[str]
    similarity: Tensor
    measure: str
    cascade: bool
    higher_is_better: bool = False

    @property
    def mean(self) -> Tensor:
        """Similarity per layer averaged over examples, shape (L,)."""
        return self.similarity.mean(dim=0)


@higher_is_better(False)
def randomization_test(
    model: nn.Module,
    explain: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    target: Any,
    cascade: bool = True,
    similarity: str = "ssim",
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    seed: int = 0,
    original: Tensor | None = None,
) -> RandomizationResult:
    """Randomise the model's layers from the top down and measure how much the explanation changes.

    Cascading randomisation re-initialises the top layer, explains, then also the next layer
    down, and so on; independent randomisation (``cascade=False``) re-initialises one layer at
    a time with the others trained. A layer is re-initialised with its ``reset_parameters()``
    (PyTorch's default initialisation) or, lacking one or under a weight parametrization
    (``weight_norm``, ``spectral_norm``, ``torch.nn.utils.parametrize``: then the parameters the
    weight is computed from), a normal draw with each parameter's own standard deviation, from
    the CPU's generator seeded with ``seed`` (the global RNG is untouched; the same weights on
    every device).
    Afterwards the model is restored exactly: parameters and buffers (the same tensor objects,
    same values), ``requires_grad`` flags and train/eval modes, also when ``explain`` raises.

    Args:
        model (nn.Module): the model that ``explain`` explains.
        explain (callable): ``explain(inputs, target) -> attributions`` (N, C', H, W) or (N, H, W),
            calling ``model``, e.g. ``lambda x, t: Saliency(model).attribute(x, target=t)``.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        target (int, sequence or Tensor): passed to ``explain``.
        cascade (bool): cascading (default) or independent randomisation.
        similarity (str): ``"ssim"`` or ``"spearman"``, see :func:`map_similarity`.
        layers (sequence of str, optional): names (as in ``model.named_modules()``) to randomise,
            top first: a module that owns parameters (its own are re-initialised) or a block
            that holds some (every module in it that owns parameters is); default every module
            that owns parameters, last defined first.
        absolute (bool): compare absolute values of the maps (Adebayo et al.'s main setting).
        seed (int): seed of the re-initialisation.
        original (Tensor, optional): ``explain(inputs, target)`` of the trained model when the
            caller already has it (the audit does); it is then not computed again.

    Returns:
        RandomizationResult: similarity (N, L); lower means the explanation depends on the model.

    Example:
        >>> from captum.attr import Saliency
        >>> nn = torch.nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(256, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> explain = lambda x, t: Saliency(model).attribute(x, target=t)
        >>> res = randomization_test(model, explain, torch.rand(2, 1, 16, 16), 0)
        >>> res.layers, tuple(res.similarity.shape)
        (['3', '1'], (2, 2))
    """
    check_images(inputs, "inputs")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_model_dtype(inputs, model)
    if not callable(explain):
        raise TypeError("explain must be callable as explain(inputs, target)")
    if similarity not in ("ssim", "spearman"):
        raise ValueError(f"similarity must be 'ssim' or 'spearman', got {similarity!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not isinstance(cascade, bool):
        raise TypeError(f"cascade must be a bool, got {type(cascade).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError("model is a TorchScript module, whose layers cannot be re-initialised one "
                        "by one: pass the nn.Module it was scripted from")
    names = _layers(model, layers)
    scores = []
    with preserve_model_state(model):
        saved = _snapshot(model)
        try:
            if original is not None:
                original = saliency_map(original, tuple(inputs.shape), name="original").detach()
            if original is None or any(is_lazy(p) for p in model.parameters()):
                first = _explain_map(explain, inputs, target)
                original = first if original is None else original
                # a lazy module's parameters exist after the first pass: kept as they came
                known = {(id(table), name) for table, name, _, _ in saved}
                saved += [s for s in _snapshot(model) if (id(s[0]), s[1]) not in known]
            for i, name in enumerate(names):
                if not cascade:
                    _restore(saved)
                _randomize(model.get_submodule(name), seed + i)
                randomized = _explain_map(explain, inputs, target)
                scores.append(map_similarity(original, randomized, similarity, absolute))
        finally:
            _restore(saved)
    return RandomizationResult(names, torch.stack(scores, dim=1), similarity, cascade)


def _owns(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def layer_names(model: nn.Module) -> list[str]:
    """The model's layers as the sanity check re-initialises them, in definition order: the
    modules that own parameters, a parametrized module (``torch.nn.utils.parametrize``) as one
    layer with the parameters its weights are computed from (not its ``parametrizations.*``)."""
    parts = _parametrization_parts(model)
    return [n for n, m in model.named_modules() if n not in parts and _is_layer(m)]


def _parametrization_parts(model: nn.Module) -> dict[str, str]:
    """The name of every module inside a parametrization (``L.parametrizations...``) -> the
    parametrized layer's name ``L``."""
    return {name: layer for layer, module in model.named_modules()
            if parametrize.is_parametrized(module)
            for name, _ in module.parametrizations.named_modules(
                prefix=f"{layer}.parametrizations" if layer else "parametrizations")}


def _layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    owners = layer_names(model)
    if layers is None:
        if not owners:
            raise ValueError("model has no parameters to randomise")
        return owners[::-1]
    if isinstance(layers, str) or not layers:
        raise ValueError("layers must be a non-empty sequence of module names")
    parts = _parametrization_parts(model)
    inside = [n for n in layers if n in parts]
    if inside:
        raise ValueError(f"layers {inside} are inside the parametrization of "
                         f"{sorted({parts[n] for n in inside})}: name the parametrized layer")
    holding = {n for n, m in model.named_modules() if any(True for _ in m.parameters())}
    unknown = [n for n in layers if n not in holding]
    if unknown:
        blocks = [n for n in holding if n and not _owns(model.get_submodule(n))]
        raise ValueError(
            f"layers {unknown} are not modules with parameters; available: {owners}"
            + (f" and the blocks holding them: {blocks}" if blocks else ""))
    return list(layers)


def _explain_map(explain: Callable[[Tensor, Any], Tensor], inputs: Tensor, target: Any) -> Tensor:
    return saliency_map(
        explain(inputs, target), tuple(inputs.shape), name="explain(inputs, target)"
    ).detach()


@torch.no_grad()
def _randomize(module: nn.Module, seed: int) -> None:
    """Re-initialise a layer's own parameters; a block that owns none (a ResNet stage): every
    module in it that owns some, in definition order, from one seeded generator."""
    owners = ([module] if _is_layer(module)  # else a block (a ResNet stage): its layers
              else [module.get_submodule(n) for n in layer_names(module)])
    # drawn by the CPU generator, seeded, then restored: the same weights on every device (a
    # layer on a GPU is re-initialised as a CPU copy, whose values are copied in)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        for owner in owners:
            _reinitialise_on_cpu(owner)


def _is_layer(module: nn.Module) -> bool:
    return _owns(module) or parametrize.is_parametrized(module)


def _reinitialise_on_cpu(owner: nn.Module) -> None:
    if parametrize.is_parametrized(owner):
        # each parametrized tensor as the layer computes it: a normal draw with its standard
        # deviation, set through the parametrization (its right_inverse), so that an orthogonal
        # weight stays orthogonal and a weight-normed one is split into norm and direction
        for name in list(owner.parametrizations.keys()):
            current = getattr(owner, name).detach()
            try:
                setattr(owner, name, _normal_like(current).to(current.device))
            except (NotImplementedError, RuntimeError):  # a parametrization without
                for p in owner.parametrizations[name].parameters():  # right_inverse
                    p.copy_(_normal_like(p))
        for p in owner.parameters(recurse=False):  # its others (a bias)
            p.copy_(_normal_like(p))
        return
    own = [*owner.named_parameters(recurse=False), *owner.named_buffers(recurse=False)]
    # reset_parameters of a hook-normed layer writes into the weight its hook recomputes
    if hasattr(owner, "reset_parameters") and not _norm_hooks(owner):
        if all(t.device.type == "cpu" for _, t in own):
            owner.reset_parameters()
            return
        shadow = _cpu_shadow(owner)
        if shadow is not None:
            shadow.reset_parameters()
            fresh = dict([*shadow.named_parameters(recurse=False),
                          *shadow.named_buffers(recurse=False)])
            for name, tensor in own:
                tensor.copy_(fresh[name])
            return
    for _, p in owner.named_parameters(recurse=False):
        p.copy_(_normal_like(p))


def _normal_like(p: Tensor) -> Tensor:
    """A CPU normal draw of ``p``'s shape and dtype with ``p``'s standard deviation (1 when it
    has none)."""
    std = float(p.std()) if p.numel() > 1 else 0.0
    return torch.empty(p.shape, dtype=p.dtype).normal_(0.0, std if std > 0 else 1.0)


def _cpu_shadow(owner: nn.Module) -> nn.Module | None:
    """A shallow copy of ``owner`` whose own tensors are CPU copies (its children shared, not
    touched); None for a module that refuses copying (then the normal draw is used)."""
    try:
        shadow = copy.copy(owner)
    except Exception:
        return None
    shadow._parameters = {
        k: None if v is None else nn.Parameter(v.detach().cpu(), v.requires_grad)
        for k, v in owner._parameters.items()
    }
    shadow._buffers = {k: None if v is None else v.detach().cpu()
                       for k, v in owner._buffers.items()}
    return shadow


def _norm_hooks(module: nn.Module) -> list[WeightNorm | SpectralNorm]:
    """The hook-based ``weight_norm`` / ``spectral_norm`` of ``module``: each recomputes a weight
    (its ``name``, a plain attribute) from ``weight_g``/``weight_v`` or ``weight_orig`` before
    every forward pass."""
    return [h for h in module._forward_pre_hooks.values()
            if isinstance(h, (WeightNorm, SpectralNorm))]


_Saved = list[tuple[dict, str, Tensor, Tensor]]


def _snapshot(model: nn.Module) -> _Saved:
    """Every parameter and buffer (non-persistent ones too) of every module: the table it sits
    in, its name, the tensor object and a copy of its values."""
    saved = []
    for module in model.modules():
        # weight_norm / spectral_norm hooks keep the weight they computed as a plain attribute
        plain = {h.name: module.__dict__[h.name] for h in _norm_hooks(module)
                 if isinstance(module.__dict__.get(h.name), Tensor)}
        for table in (module._parameters, module._buffers, plain):
            for name, tensor in table.items():
                if tensor is None or is_lazy(tensor):
                    continue
                saved.append((module.__dict__ if table is plain else table, name, tensor,
                              tensor.detach().clone()))
    return saved


@torch.no_grad()
def _restore(saved: _Saved) -> None:
    """The same tensor objects in their places, with their values."""
    for table, name, tensor, values in saved:
        table[name] = tensor
        tensor.copy_(values)


def map_similarity(a: Tensor, b: Tensor, measure: str = "ssim", absolute: bool = True) -> Tensor:
    """Similarity of two batches of maps, per example.

    ``"ssim"``: each map (optionally its absolute value) is min-max normalised to [0, 1], then
    :func:`~captum_cf.metrics.ssim` with data range 1 (window shrunk to fit small maps).
    ``"spearman"``: Spearman rank correlation over pixels (tied values share their mean rank).
    A constant map ranks nothing, so the correlation is undefined there (scipy gives NaN): two
    constant maps count as the same map (1, as SSIM says), a constant map against one that is
    not as unrelated (0). A method that returns a constant map therefore fails
    :func:`randomization_test` under both measures instead of passing under Spearman.

    Args:
        a (Tensor): float maps, shape (N, H, W) or (N, C, H, W) (summed over channels), finite.
        b (Tensor): same shape as ``a``.
        measure (str): ``"ssim"`` or ``"spearman"``.
        absolute (bool): compare absolute values.

    Returns:
        Tensor: shape (N,), in [-1, 1].
    """
    for name, t in (("a", a), ("b", b)):
        if isinstance(t, Tensor) and not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point map, got dtype {t.dtype}")
    a, b = saliency_map(a, name="a"), saliency_map(b, name="b")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if absolute:
        a, b = a.abs(), b.abs()
    if measure == "spearman":
        rho = _pearson(_ranks(a.flatten(1)), _ranks(b.flatten(1)))
        flat = (_is_constant(a) & _is_constant(b)).to(rho.device)
        return torch.where(flat, torch.ones_like(rho), rho)
    if measure != "ssim":
        raise ValueError(f"measure must be 'ssim' or 'spearman', got {measure!r}")
    side = min(a.shape[-2:])
    window = min(11, side if side % 2 else side - 1)
    return ssim(_minmax(a), _minmax(b), data_range=1.0, window_size=window)


def _is_constant(m: Tensor) -> Tensor:
    """Per example: every value of the map is the same, (N,) bool."""
    flat = m.flatten(1)
    return (flat == flat[:, :1]).all(dim=1)


def _minmax(m: Tensor) -> Tensor:
    flat = m.flatten(1)
    lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp(min=1e-12)).view_as(m)


def _ranks(x: Tensor) -> Tensor:
    """Average ranks per row (ties share their mean rank), float64."""
    out = torch.empty_like(x, dtype=torch.float64)
    for i, row in enumerate(x):
        _, inverse, counts = torch.unique(row, sorted=True, return_inverse=True, return_counts=True)
        first = torch.cumsum(counts, 0) - counts
        out[i] = (first + (counts - 1) / 2.0).double()[inverse]
    return out


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)
    return ((a * b).sum(dim=1) / den).float()
