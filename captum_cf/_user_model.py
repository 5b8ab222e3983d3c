"""A user's own model from ``module:factory`` or ``path/to/file.py:factory`` and a state dict.

One loader for everything that takes a user's model by name: ``captum-cf audit --model`` and
the generator trainers' ``--classifier`` / ``--aux-classifier``. Every failure is one
:class:`ValueError` line naming the spec or the file.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator

import torch.nn as nn

from captum_cf._weights import WeightsFileError, load_state_checked, load_weights_file

__all__ = ["is_factory_spec", "build_factory_model"]

#: what a weights file for a factory model must hold, for the error messages
STATE_DICT = (
    "a state dict saved with torch.save(model.state_dict(), path) (or a dict with a "
    "'state_dict'), not a whole model"
)


def is_factory_spec(spec: str) -> bool:
    """``module:factory`` or ``file.py:factory`` (not ``zoo:NAME``, not an existing file)."""
    return ":" in spec and not spec.startswith("zoo:") and not os.path.isfile(spec)


def _import_module(name: str):  # noqa: ANN202 (a module)
    """``importlib.import_module``, also for a module in the current folder: the ``captum-cf``
    script, unlike ``python -m captum_cf``, does not have it on ``sys.path``, so ``--model
    net:make`` beside ``net.py`` would fail there; the folder is added once, when needed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        if err.name != name.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)
        return importlib.import_module(name)


@contextlib.contextmanager
def _folder_importable(path: str) -> Iterator[None]:
    """For ``path/to/file.py``: its folder first on ``sys.path`` inside the block; afterwards
    the folder leaves ``sys.path`` again and the modules imported from it leave
    ``sys.modules``, so that another model file whose folder has modules of the same names
    (``blocks.py`` beside each ``net.py``) imports its own. Anything else: nothing."""
    if not path.endswith(".py"):
        yield
        return
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    before = set(sys.modules)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None)
            where = os.path.dirname(os.path.abspath(file)) if file else None
            if where is not None and (where == folder or where.startswith(folder + os.sep)):
                del sys.modules[name]


def _spec_module(spec: str):  # noqa: ANN202 (a module)
    """Import the module of ``module:factory`` or ``path/to/file.py:factory`` (inside
    :func:`_folder_importable` for a file).

    Raises:
        ValueError: the import fails (one line).
    """
    module_name = spec.rpartition(":")[0]
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location("_captum_cf_user_model", module_name)
            if loader is None or loader.loader is None:
                raise ImportError(f"cannot import {module_name}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
            return module
        return _import_module(module_name)
    except Exception as err:  # noqa: BLE001 (the user's code: any failure is one line)
        raise ValueError(
            f"cannot build the model from {spec!r}: {type(err).__name__}: {err}"
        ) from err


def import_model_module(spec: str) -> None:
    """Import the module of a ``--model`` factory spec without building the model: what it
    registers (methods, baselines) is then listed by ``captum-cf audit --list``.

    Raises:
        ValueError: the import fails (one line).
    """
    with _folder_importable(spec.rpartition(":")[0]):
        _spec_module(spec)


def build_factory_model(spec: str, weights: str | None = None) -> nn.Module:
    """Call ``factory()`` of ``module:factory`` (or ``path/to/file.py:factory``), then load the
    state dict ``weights`` (read with ``weights_only=True``; keys and shapes checked).

    While a file runs and its factory builds the model, the file's folder is first on
    ``sys.path``, as when Python runs the file, so that it imports the modules beside it
    (:func:`_folder_importable`).

    Raises:
        ValueError: the module or factory fails, returns no ``nn.Module``, or the weights file
            is unreadable, not a state dict or does not fit (one line).
    """
    module_name, _, attr = spec.rpartition(":")
    with _folder_importable(module_name):
        module = _spec_module(spec)
        factory = getattr(module, attr, None)
        if not callable(factory):
            defined = sorted(k for k, v in vars(module).items()
                             if callable(v) and not k.startswith("_")
                             and getattr(v, "__module__", None) == module.__name__)
            raise ValueError(
                f"cannot build the model from {spec!r}: {module_name} has no function {attr!r}"
                + (f"; it defines {', '.join(defined)}" if defined else "")
            )
        try:
            model = factory()
        except Exception as err:  # noqa: BLE001 (the user's code: any failure is one line)
            raise ValueError(
                f"cannot build the model from {spec!r}: {type(err).__name__}: {err}"
            ) from err
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec} returned a {type(model).__name__}, expected a torch.nn.Module")
    if weights:
        try:
            state = load_weights_file(weights, STATE_DICT)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            load_state_checked(model, state, weights)
        except (OSError, WeightsFileError) as err:
            raise ValueError(f"cannot load weights: {err}") from err
    return model
