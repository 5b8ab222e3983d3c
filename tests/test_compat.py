"""captum_cf._compat: both branches, each in a fresh interpreter (torch's op registry is global)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "torchvision's compiled extension"

# Loads captum_cf/_compat.py by path (not the whole package) after replacing torch.ops.load_library
# with FAKE; the module's import-time call then goes through the fake loader.
_LOAD_WITH_FAKE = """
import importlib.util, json, warnings
import torch
calls = []
{fake}
real = torch.ops.load_library
torch.ops.load_library = fake
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    spec = importlib.util.spec_from_file_location("compat_under_test", {path!r})
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    again = compat.ensure_torchvision_importable(load_library=fake)
torch.ops.load_library = real
print(json.dumps({{
    "patched": compat.TORCHVISION_PATCHED, "again": again, "calls": calls,
    "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning],
    "schemas": [compat._has_schema("nms"), compat._has_schema("qnms")],
}}))
"""

_FAKE_HEALTHY = """
lib = torch.library.Library("torchvision", "DEF")  # what a healthy _C.so registers
def fake(path):
    calls.append(path)
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
"""

_FAKE_HEALTHY_WITHOUT_QNMS = """
lib = torch.library.Library("torchvision", "DEF")  # torchvision 0.26's _C.so: nms, no qnms
def fake(path):
    calls.append(path)
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
"""

_FAKE_BROKEN = """
def fake(path):
    calls.append(path)
    raise OSError("undefined symbol: cudaGetDeviceCount")
"""


_REAL_MACHINE = """
import importlib.util, json, os, warnings
import torch
spec = importlib.util.find_spec("torchvision")
folder = list(spec.submodule_search_locations)[0]
so = [n for n in os.listdir(folder) if n.startswith("_C") and n.endswith((".so", ".pyd"))]
try:  # is torchvision's own extension healthy here, without captum_cf?
    torch.ops.load_library(os.path.join(folder, so[0]))
    healthy = hasattr(torch.ops.torchvision, "nms")
except OSError:
    healthy = False
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import captum_cf
    from captum_cf import _compat
    second = _compat.ensure_torchvision_importable()
    import torchvision
    import lpips  # noqa: F401
    model = torchvision.models.resnet18(num_classes=3).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32))
print(json.dumps({
    "healthy": healthy, "patched": _compat.TORCHVISION_PATCHED, "second": second,
    "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning],
    "shape": list(logits.shape), "finite": bool(torch.isfinite(logits).all()),
}))
"""


def _start(code: str, **extra_env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RANK"}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="", **extra_env)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    """The three interpreters, started together (each needs a fresh torch; they run in parallel)."""
    path = str(ROOT / "captum_cf" / "_compat.py")
    procs = {
        "machine": _start(_REAL_MACHINE),
        "healthy": _start(_LOAD_WITH_FAKE.format(fake=_FAKE_HEALTHY, path=path)),
        "broken": _start(_LOAD_WITH_FAKE.format(fake=_FAKE_BROKEN, path=path)),
        "no_qnms": _start(_LOAD_WITH_FAKE.format(fake=_FAKE_HEALTHY_WITHOUT_QNMS, path=path)),
        # under torchrun every rank imports captum_cf: rank 0 says it, the others do not
        "broken_rank1": _start(_LOAD_WITH_FAKE.format(fake=_FAKE_BROKEN, path=path), RANK="1"),
    }
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {stderr[-3000:]}"
        results[name] = json.loads(stdout.strip().splitlines()[-1])
    return results


def test_this_machine_imports_torchvision_and_lpips_after_captum_cf(runs):
    out = runs["machine"]
    assert out["shape"] == [2, 3] and out["finite"]
    fix_warnings = [w for w in out["warnings"] if MESSAGE in w]
    if out["healthy"]:  # a matching torchvision: the module must stay out of the way
        assert not out["patched"] and not out["second"] and fix_warnings == []
    else:  # this project's machine: CUDA torchvision next to CPU torch
        assert out["patched"] and out["second"] and len(fix_warnings) == 1


def test_healthy_extension_is_loaded_and_nothing_is_patched(runs):
    out = runs["healthy"]
    assert len(out["calls"]) == 1  # the loader ran once, on torchvision's extension
    assert Path(out["calls"][0]).parent.name == "torchvision"
    assert Path(out["calls"][0]).name.startswith("_C")
    assert out["patched"] is False and out["again"] is False
    assert not [w for w in out["warnings"] if MESSAGE in w]
    assert out["schemas"] == [True, True]


def test_failing_extension_declares_the_schemas_and_warns_once(runs):
    out = runs["broken"]
    assert len(out["calls"]) == 1  # the second call returns early, without loading again
    assert out["patched"] is True and out["again"] is True
    said = [w for w in out["warnings"] if MESSAGE in w]
    assert len(said) == 1 and "OSError: undefined symbol: cudaGetDeviceCount" in said[0]
    assert out["schemas"] == [True, True]


def test_an_extension_that_loads_without_qnms_is_healthy(runs):
    """torchvision 0.26 (with torch 2.11 on a GPU machine) registers nms but not qnms: its
    extension loaded, yet the module declared the schemas and warned of a CUDA torchvision next
    to a CPU torch."""
    out = runs["no_qnms"]
    assert len(out["calls"]) == 1 and out["patched"] is False and out["again"] is False
    assert not [w for w in out["warnings"] if MESSAGE in w]
    assert out["schemas"] == [True, False]


def test_under_torchrun_only_rank_0_warns(runs):
    out = runs["broken_rank1"]  # (it was printed once per process of an audit under torchrun)
    assert out["patched"] is True and out["schemas"] == [True, True]
    assert not [w for w in out["warnings"] if MESSAGE in w]
