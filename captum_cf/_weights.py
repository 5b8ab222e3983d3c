"""Read weights files safely, with one-line errors that name the file and what it must be.

Every file captum_cf reads back (zoo weights, training checkpoints, a user's ``--weights`` state
dict) goes through :func:`load_weights_file`: ``torch.load(..., weights_only=True)``, so no
arbitrary object is ever unpickled, and anything that is not such a file (a pickled model, a
pickle of another object, a text file, a truncated download) is a :class:`WeightsFileError` (a
``ValueError``) of one line instead of torch's ``UnpicklingError`` or ``KeyError``. A state dict
whose keys or shapes do not fit a module is refused by :func:`load_state_checked` before any
tensor is copied, naming the first few missing, unexpected and mismatched keys.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf._validation import first_line

__all__ = ["WeightsFileError", "file_digest", "load_weights_file", "load_state_checked"]

#: how many key names an error message lists per kind
_SHOW = 4

#: what torch's weights-only unpickler names when it meets a class it will not rebuild
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class WeightsFileError(ValueError):
    """A file that cannot be read as the weights or checkpoint it should be (one-line message).

    The CLI prints it as ``captum-cf: error: <message>`` and exits with status 2.
    """


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-1 hex digest of a file's bytes, read in 1 MiB blocks: how a resume knows that a
    weights file read under the same name (the audit's ``--baseline-weights``, a trainer's
    classifier) is still the same file."""
    import hashlib

    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_weights_file(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with one-line errors.

    Args:
        path (str or PathLike): the file.
        what (str): what the file must be, for the messages, e.g.
            ``"a state dict (torch.save(model.state_dict(), path))"``.
        map_location: as in :func:`torch.load`.

    Returns:
        The loaded object (tensors and plain containers only).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        WeightsFileError: (a ``ValueError``) ``path`` is a folder, a pickle of objects other
            than tensors and plain containers (a whole model saved with ``torch.save(model)``,
            say), a text file or a damaged file; the message names the file and ``what``.

    Example:
        >>> torch.save({"w": torch.ones(2)}, "w.pt")  # doctest: +SKIP
        >>> load_weights_file("w.pt", "a state dict")["w"]  # doctest: +SKIP
        tensor([1., 1.])
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found; it must be {what}")
    if not os.path.isfile(path):
        raise WeightsFileError(f"{path} is not a file; it must be {what}")
    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive ("PK"), or a pickle (protocol >= 2 starts with 0x80)
    if head != b"PK" and head[:1] != b"\x80":
        raise WeightsFileError(
            f"{path} is not a file written by torch.save (it starts with {head!r}); it must be "
            f"{what}"
        )
    try:
        with warnings.catch_warnings():
            # torch's advice on plain pickles; the error below says what the file must be
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        held = (
            f"a pickled {found.group(1)} object"
            if found
            else "a pickle of objects other than tensors and plain containers"
        )
        raise WeightsFileError(
            f"{path} holds {held}, which captum_cf does not unpickle (weights_only=True); "
            f"it must be {what}"
        ) from None
    except (OSError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 (KeyError, EOFError, RuntimeError: not torch.save's)
        line = first_line(err, 200)
        detail = f" ({type(err).__name__}: {line})" if line else ""
        raise WeightsFileError(
            f"{path} is not a file written by torch.save, or it is damaged{detail}; "
            f"it must be {what}"
        ) from None


def _prefix_hint(own: list[str], theirs: list[str]) -> str:
    """A hint when the file's keys are the model's under a prefix, or the reverse: the weights of
    a wrapped model loaded into the bare one, or the bare network's into a wrapper
    (``Normalized(net)`` holds ``model.*`` beside its ``mean`` and ``std``; ``DataParallel``
    saves ``module.*``). The side with the prefix may hold keys of its own besides."""
    for prefixed, bare, in_file in ((theirs, own, True), (own, theirs, False)):
        heads = Counter(k.split(".", 1)[0] for k in prefixed if "." in k)
        if not bare:
            continue
        head = next((h + "." for h, _ in heads.most_common()
                     if {k[len(h) + 1:] for k in prefixed if k.startswith(h + ".")} == set(bare)),
                    None)
        if head is not None:
            if in_file:
                return (f" (the file's keys are the model's under {head!r}: strip it, e.g. "
                        f"weights saved from DataParallel or a wrapper)")
            return (f" (the model's keys are the file's under {head!r}: the file holds the "
                    f"inner network's weights; load them into it before wrapping it, e.g. in "
                    f"your factory, or save the wrapped model's state_dict())")
    if any(k.startswith("module.") for k in theirs) and not any(k.startswith("module.")
                                                                for k in own):
        return " (keys start with 'module.': strip it, e.g. saved from DataParallel)"
    return ""


def load_state_checked(module: nn.Module, state: Any, source: str) -> None:
    """``module.load_state_dict(state)``, refusing a state that does not fit before any copy.

    Args:
        module (nn.Module): the module to fill.
        state (Mapping[str, Tensor]): its state dict.
        source (str): where ``state`` comes from (a file name), for the message.

    Raises:
        WeightsFileError: ``state`` is not a mapping of names to tensors, or its keys or shapes
            do not match ``module``'s (the first few missing, unexpected and mismatched keys are
            named in one line).
    """
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise WeightsFileError(
            f"{source} holds a {type(state).__name__}, expected a state dict "
            f"(a dict of parameter names to tensors)"
        )
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and isinstance(state[k], Tensor) and state[k].shape != v.shape
    ]
    problems = [
        f"{label} {_some(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (file vs model)", mismatched),
        )
        if keys
    ]
    if problems:
        hint = _prefix_hint(list(own), list(state))
        raise WeightsFileError(
            f"{source} does not fit {type(module).__name__}: {'; '.join(problems)}{hint}"
        )
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise WeightsFileError(
            f"{source}: cannot load the state dict: {first_line(err, 200)}") from err


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")

