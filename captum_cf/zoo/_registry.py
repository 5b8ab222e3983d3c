"""The zoo's registry: name -> how to build, where the weights are, how to retrain them."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from captum_cf._weights import WeightsFileError, load_state_checked, load_weights_file

__all__ = [
    "WEIGHTS_DIR",
    "WEIGHTS_FORMAT",
    "ZooEntry",
    "register",
    "available",
    "entry",
    "load",
    "load_file",
    "read_weights",
    "save_weights",
    "trained_image_size",
]

#: folder of the shipped weights (package data ``captum_cf/zoo/weights/*.pt``)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: version of the weights-file layout (a dict with the keys in ``_KEYS``)
WEIGHTS_FORMAT = 1
_KEYS = ("format", "name", "arch", "config", "state_dict", "metrics")


@dataclass(frozen=True)
class ZooEntry:
    """One reference model of the zoo.

    Attributes:
        name (str): the name passed to :func:`load`, e.g. ``"digits-cnn"``.
        arch (str): architecture name stored in weights files; files of this ``arch`` are rebuilt
            with ``builder`` by :func:`load_file`.
        builder (Callable[[dict], nn.Module]): builds the untrained module from the file's config.
        weights (str): file name inside :data:`WEIGHTS_DIR`.
        train (Callable or None): ``train(out=path, seed=0, show_progress=True) -> metric`` that
            reproduces the weights file.
        command (str): the ``captum-cf`` command line that reproduces the weights.
        description (str): one line for listings.
        metric (str): key in the file's ``metrics`` that the tests check, e.g. ``"test_accuracy"``.
        expected (float): the bar the shipped weights meet on that metric.
        higher_is_better (bool): direction of ``metric``.
    """

    name: str
    arch: str
    builder: Callable[[dict[str, Any]], nn.Module]
    weights: str
    train: Callable[..., float] | None = None
    command: str = ""
    description: str = ""
    metric: str = "test_accuracy"
    expected: float = 0.0
    higher_is_better: bool = True

    @property
    def path(self) -> Path:
        """Full path of the shipped weights file."""
        return WEIGHTS_DIR / self.weights


_ENTRIES: dict[str, ZooEntry] = {}
_ARCHS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def register(zoo_entry: ZooEntry) -> ZooEntry:
    """Add a model to the zoo (names are unique); returns the entry."""
    if not isinstance(zoo_entry, ZooEntry):
        raise TypeError(f"zoo_entry must be a ZooEntry, got {type(zoo_entry).__name__}")
    if zoo_entry.name in _ENTRIES:
        raise ValueError(f"zoo model {zoo_entry.name!r} is already registered")
    known = _ARCHS.get(zoo_entry.arch)
    if known is not None and known is not zoo_entry.builder:
        raise ValueError(f"architecture {zoo_entry.arch!r} is registered with another builder")
    _ENTRIES[zoo_entry.name] = zoo_entry
    _ARCHS[zoo_entry.arch] = zoo_entry.builder
    return zoo_entry


def available() -> list[str]:
    """Names of the registered zoo models, sorted."""
    return sorted(_ENTRIES)


def entry(name: str) -> ZooEntry:
    """The :class:`ZooEntry` registered under ``name`` (``KeyError`` listing the known names)."""
    if not isinstance(name, str):
        raise TypeError(
            f"name must be the str name of a zoo model (one of {', '.join(available())}), "
            f"got {type(name).__name__}"
        )
    if name not in _ENTRIES:
        raise KeyError(f"unknown zoo model {name!r}; available: {', '.join(available()) or 'none'}")
    return _ENTRIES[name]


def load(name: str, device: torch.device | str | None = None) -> nn.Module:
    """Load a shipped zoo model in eval mode.

    Args:
        name (str): one of :func:`available`, e.g. ``"digits-cnn"``.
        device (torch.device or str, optional): where to put the model (default CPU).

    Returns:
        nn.Module: in eval mode; classifiers take images (N, C, H, W) in [0, 1] and return logits.

    Raises:
        TypeError: ``name`` is not a str.
        KeyError: unknown ``name`` (the message lists the available names).
        FileNotFoundError: the weights file is missing (the message names it and the command
            that reproduces it).

    Example:
        >>> from captum_cf import zoo
        >>> model = zoo.load("digits-cnn")
        >>> model(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    zoo_entry = entry(name)
    path = zoo_entry.path
    if not path.is_file():
        hint = f"; reproduce it with: {zoo_entry.command}" if zoo_entry.command else ""
        raise FileNotFoundError(f"weights of zoo model {name!r} not found: {path}{hint}")
    payload = read_weights(path)
    if payload["arch"] != zoo_entry.arch:
        raise ValueError(f"{path} holds a {payload['arch']!r} model, expected {zoo_entry.arch!r}")
    return _build(payload, zoo_entry.builder, device, str(path))


def load_file(path: str | os.PathLike, device: torch.device | str | None = None) -> nn.Module:
    """Load a weights file written by a zoo trainer (e.g. ``captum-cf train classifier --out``).

    The architecture is looked up from the file's ``arch`` among the registered entries.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: one line naming the file: not a zoo weights file (a whole pickled model,
            another pickle, a text or damaged file), an unknown architecture, or a state dict
            whose keys or shapes do not fit it (the first few are named).
    """
    payload = read_weights(path)
    builder = _ARCHS.get(payload["arch"])
    if builder is None:
        raise ValueError(
            f"{os.fspath(path)}: unknown architecture {payload['arch']!r}; known: "
            f"{', '.join(sorted(_ARCHS)) or 'none'}"
        )
    return _build(payload, builder, device, os.fspath(path))


def read_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a zoo weights file with ``torch.load(weights_only=True)``.

    Returns:
        dict: ``{"format", "name", "arch", "config", "state_dict", "metrics"}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: (one line naming the file) ``path`` is not such a file: a whole pickled
            model, another pickle, a text or damaged file, another format. Nothing is unpickled.
    """
    path = os.fspath(path)
    payload = load_weights_file(
        path, "a captum_cf zoo weights file (written by a captum-cf trainer or save_weights)"
    )
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise WeightsFileError(f"{path} is not a zoo weights file of format {WEIGHTS_FORMAT} "
                               f"(found {found!r})")
    missing = [k for k in _KEYS if k not in payload]
    if missing and "trainer" in payload:
        raise WeightsFileError(
            f"{path} is a training checkpoint ({payload.get('kind', 'a trainer')}'s), not the "
            "weights it trains: pass the file the training wrote with --out"
        )
    if missing:
        raise WeightsFileError(f"{path} lacks the keys {missing}")
    return payload


def save_weights(
    path: str | os.PathLike,
    *,
    name: str,
    arch: str,
    config: dict[str, Any],
    model: nn.Module,
    metrics: dict[str, Any],
) -> None:
    """Write ``model``'s weights in the zoo format (float32 tensors, atomically)."""
    from captum_cf.training.checkpoint import save_checkpoint

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    # save_checkpoint writes atomically; our "format" overrides the checkpoint version it adds.
    save_checkpoint(path, {"format": WEIGHTS_FORMAT, "name": name, "arch": arch,
                           "config": dict(config), "state_dict": state, "metrics": dict(metrics)})
    os.chmod(path, 0o644)  # the temporary file behind the atomic write is private (0600)


def _build(
    payload: dict[str, Any],
    builder: Callable[[dict[str, Any]], nn.Module],
    device: torch.device | str | None,
    source: str = "zoo weights",
) -> nn.Module:
    model = builder(payload["config"])
    load_state_checked(model, _float32(payload["state_dict"], source), source)
    size = payload["config"].get("image_size") if isinstance(payload["config"], dict) else None
    if isinstance(size, int) and not isinstance(size, bool):
        _IMAGE_SIZE[model] = size
    return model.to(device or "cpu").eval()


#: image side each model loaded from a weights file was trained at (its stored config)
_IMAGE_SIZE: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def trained_image_size(model: Any) -> int | None:
    """The image side ``model`` was trained at when :func:`load` or :func:`load_file` built it
    from a weights file that stores it (named in the errors of a model fed another size), else
    None."""
    try:
        return _IMAGE_SIZE.get(model)
    except TypeError:  # not weakly referenceable: not a model the zoo built
        return None


def _float32(state: Any, source: str) -> dict[str, Any]:
    """The state dict with floating tensors in float32 (zoo files may store float16)."""
    if not isinstance(state, dict):
        raise WeightsFileError(f"{source}: 'state_dict' holds a {type(state).__name__}")
    return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in state.items()}


def spec_path(spec: str, what: str = "classifier", factory: bool = False) -> Path:
    """The weights file that a model spec names: ``"zoo:<name>"`` (a registered zoo model) or
    the path of a zoo weights file.

    Raises:
        KeyError: unknown zoo name (the message lists the available names).
        ValueError: ``spec`` is neither (the message names ``what``, and ``module:factory`` as
            a third form where the caller also takes one: ``factory``).
    """
    if spec.startswith("zoo:"):
        return entry(spec[4:]).path
    if os.path.isfile(spec):
        return Path(spec)
    forms = ("'zoo:<name>', a weights file or module:factory (path/file.py:factory)" if factory
             else "'zoo:<name>' or a weights file")
    raise ValueError(f"{what} must be {forms}, got {spec!r}")
