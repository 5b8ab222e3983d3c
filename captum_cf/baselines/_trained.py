"""The trained model behind a learned baseline of the audit.

``ganmex``, ``exaggeration``, ``inpaint-learned`` and ``sparse-counterfactual`` need a
generator, an inpainter or a robust classifier trained for the model and images at hand: by
default the data set's zoo model (``digits-ganmex``, ...), or a weights file the user trained
for their own model and folder (``captum-cf train ganmex|exaggeration|inpainter|robust``),
given to the audit as ``baseline_weights={"ganmex": "g.pt"}`` (``captum-cf audit
--baseline-weights ganmex=g.pt``), which the registries read from
``ctx.extras["baseline_weights"]``. ``inpaint-learned`` also takes an inpainting network of the
user's own (LaMa, ...) saved with ``torch.export.save`` or ``torch.jit.save``.
"""

from __future__ import annotations

import os
from typing import Any

import torch.nn as nn

__all__ = ["LEARNED", "check_baseline_weights", "load_trained", "trained_available"]

#: learned baseline -> (the zoo name suffix of its model, the architecture its file must hold,
#: the ``captum-cf train`` command that writes it)
LEARNED = {
    "ganmex": ("ganmex", "ganmex-generator", "ganmex"),
    "exaggeration": ("exaggeration", "exaggeration-generator", "exaggeration"),
    "inpaint-learned": ("inpainter", "gated-unet", "inpainter"),
    "sparse-counterfactual": ("cnn-robust", "small-cnn", "robust"),
}
#: the learned baseline whose file may also hold a network of the user's own (TorchScript or
#: ``torch.export``, e.g. LaMa), adapted to the images by ``inpainters.inpainter_from_file``
NETWORK_BASELINE = "inpaint-learned"
#: the ``ctx.extras`` key of the networks loaded for one audit
_LOADED_NETWORKS = "_loaded_inpainting_networks"


def _user_file(ctx: Any, baseline: str) -> str | None:
    given = ctx.extras.get("baseline_weights") or {}
    return None if given.get(baseline) is None else os.fspath(given[baseline])


def _zoo_name(ctx: Any, baseline: str) -> str:
    suffix = LEARNED[baseline][0]
    # ctx.extras[baseline] may name another zoo model (e.g. extras={"ganmex": "digits-ganmex"})
    return str(ctx.extras.get(baseline, f"{ctx.data_name}-{suffix}"))


def _mismatch(config: dict[str, Any], ctx: Any) -> str | None:
    """Why a trained model's config does not fit the audited images and model (None: it fits)."""
    c, h, w = ctx.image_shape
    # image channels: "in_channels" of a classifier, "channels" of a generator or inpainter
    channels = config.get("in_channels", config.get("channels"))
    if isinstance(channels, int) and channels != c:
        return f"it is built for {channels}-channel images, the images have {c}"
    size = config.get("image_size")
    if size is not None and (size, size) != (h, w):
        return f"it is built for {size}x{size} images, the images are {h}x{w}"
    classes = config.get("num_classes")
    if classes is not None and classes != ctx.num_classes:
        return f"it is built for {classes} classes, the model has {ctx.num_classes}"
    return None


def _network(ctx: Any, baseline: str) -> str | None:
    """The user's file for ``inpaint-learned`` when it holds an inpainting network of their own
    (TorchScript or ``torch.export``) instead of ``captum-cf train inpainter`` weights."""
    from captum_cf.inpainters.network import network_file_kind

    path = _user_file(ctx, baseline)
    if baseline != NETWORK_BASELINE or path is None or network_file_kind(path) is None:
        return None
    return path


def _adapted_network(ctx: Any, path: str) -> nn.Module:
    """The network in ``path`` adapted to the audited images on ``ctx.device``, loaded once per
    audit (the check before the audit and the baseline share it through ``ctx.extras``, which
    lives as long as the audit)."""
    from captum_cf.inpainters import inpainter_from_file

    loaded = ctx.extras.setdefault(_LOADED_NETWORKS, {})
    key = (os.path.realpath(path), tuple(ctx.image_shape), str(ctx.device))
    if key not in loaded:
        loaded[key] = inpainter_from_file(path, ctx.image_shape, device=ctx.device)
    return loaded[key]


def trained_available(ctx: Any, baseline: str) -> bool:
    """A model for ``baseline`` exists (the user's file or the data set's zoo model) and fits."""
    from captum_cf import zoo

    if _network(ctx, baseline) is not None:
        return True  # checked, with a clear error, by check_baseline_weights before the audit
    path = _user_file(ctx, baseline)
    if path is None:
        name = _zoo_name(ctx, baseline)
        if name not in zoo.available() or not zoo.entry(name).path.is_file():
            return False
        path = os.fspath(zoo.entry(name).path)
    try:
        payload = zoo.read_weights(path)
    except (OSError, ValueError):
        return False
    return payload["arch"] == LEARNED[baseline][1] and _mismatch(payload["config"], ctx) is None


def load_trained(ctx: Any, baseline: str) -> nn.Module:
    """The model for ``baseline`` on ``ctx.device``, in eval mode."""
    from captum_cf import zoo

    network = _network(ctx, baseline)
    if network is not None:
        return _adapted_network(ctx, network)
    path = _user_file(ctx, baseline)
    if path is not None:
        return zoo.load_file(path, device=ctx.device)
    return zoo.load(_zoo_name(ctx, baseline), device=ctx.device)


def check_baseline_weights(ctx: Any, used: set[str] | None = None) -> None:
    """Every file in ``ctx.extras["baseline_weights"]`` (keys of :data:`LEARNED`, checked by
    ``Settings.validate`` and the CLI) is a model of its baseline's kind that fits the images
    and the model. An inpainting network of the user's own is loaded and adapted (dry runs) only
    when ``used`` (the baselines the audit names; None: all) holds its baseline.

    Raises:
        ValueError: one line naming the baseline, the file and what is wrong.
    """
    from captum_cf import zoo

    for baseline, path in (ctx.extras.get("baseline_weights") or {}).items():
        where = f"baseline weights {baseline}={path}"
        if _network(ctx, baseline) is not None:
            if used is not None and baseline not in used:
                continue  # a network is loaded and tried only for an audit that uses it
            try:
                _adapted_network(ctx, path)
            except (OSError, ValueError, TypeError) as err:
                raise ValueError(f"{where}: {err}") from err
            continue
        try:
            payload = zoo.read_weights(path)
        except (OSError, ValueError) as err:
            also = (f"; {NETWORK_BASELINE} also takes an inpainting network of your own saved "
                    "with torch.export.save or torch.jit.save (forward(image, mask))"
                    if baseline == NETWORK_BASELINE else "")
            raise ValueError(f"{where}: {err}{also}") from err
        arch = LEARNED[baseline][1]
        if payload["arch"] != arch:
            raise ValueError(
                f"{where}: the file holds a model of architecture {payload['arch']!r}, {baseline} "
                f"needs {arch!r} (captum-cf train {LEARNED[baseline][2]})"
            )
        why = _mismatch(payload["config"], ctx)
        if why is not None:
            raise ValueError(f"{where}: {why}")
