"""Make ``import torchvision`` (and so ``import lpips``) work next to a CPU-only torch.

The torchvision wheel that matches torch 2.13 on PyPI is a CUDA build. With the CPU torch its
C extension cannot load, and torchvision's fake-op registration then dies with
``RuntimeError: operator torchvision::nms does not exist``. This module runs before anything
imports torchvision: it first tries to load the extension the normal way and, only when that
fails, declares the schemas of the two operators that torchvision registers fake kernels for
(``nms`` and ``qnms``) so that the import succeeds. Models, transforms and pure-Python ops then
work; the compiled ops (``nms``, ``roi_align``, the image codecs) do not, which is why captum_cf
reads images with Pillow.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable

import torch

__all__ = ["ensure_torchvision_importable", "TORCHVISION_PATCHED"]

#: True when the schemas had to be declared because torchvision's extension could not load.
TORCHVISION_PATCHED = False
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY = None  # keeps the fragment alive: dropping it would unregister the schemas


def _extension_path() -> str | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    for name in sorted(os.listdir(folder)):
        if name.startswith("_C") and name.endswith((".so", ".pyd")):
            return os.path.join(folder, name)
    return None


def _has_schema(op: str) -> bool:
    try:
        getattr(torch.ops.torchvision, op).default  # noqa: B018 - raises when undefined
    except (AttributeError, RuntimeError):
        return False
    return True


def _declare_schemas() -> None:
    global _LIBRARY
    _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    for op, schema in _SCHEMAS.items():
        if not _has_schema(op):
            _LIBRARY.define(schema)


def ensure_torchvision_importable(load_library: Callable[[str], None] | None = None) -> bool:
    """Prepare torch so that ``import torchvision`` succeeds.

    Args:
        load_library (callable, optional): loader of torchvision's compiled extension, called
            with its path; default ``torch.ops.load_library``, looked up at call time so that
            tests can replace it before the import-time call and exercise both branches.

    Returns:
        bool: True when the fallback had to step in (a warning is issued once), False when
        torchvision is healthy or not installed.
    """
    global TORCHVISION_PATCHED
    if TORCHVISION_PATCHED or _has_schema("nms"):  # declared, or torchvision's extension loaded
        return TORCHVISION_PATCHED
    path = _extension_path()
    if path is None:
        return False
    loader = torch.ops.load_library if load_library is None else load_library
    try:
        loader(path)
    except (OSError, RuntimeError, ImportError) as err:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}" if str(err) else ""
    else:
        # loaded: torchvision is healthy (0.26 registers nms but no longer qnms)
        if _has_schema("nms"):
            return False
        reason = "it loads but registers no torchvision::nms"
    _declare_schemas()
    TORCHVISION_PATCHED = True
    if os.environ.get("RANK", "0") != "0":  # under torchrun: said by rank 0, not by every rank
        return True
    warnings.warn(
        "torchvision's compiled extension is unusable with the installed torch "
        f"{torch.__version__} ({reason + '; ' if reason else ''}typically a CUDA torchvision next "
        "to a CPU torch); captum_cf declared the missing operator schemas so that torchvision "
        "imports. Models and transforms work; torchvision.ops.nms/roi_align and its image codecs "
        "do not.",
        RuntimeWarning,
        stacklevel=2,
    )
    return True


ensure_torchvision_importable()
