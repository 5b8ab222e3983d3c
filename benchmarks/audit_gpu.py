"""The audit and SP-G on a GPU: images/s and the "limit" ratio of the default grid, and
Sliding-Patch occlusion with push-pull inpainted patches (SP-G) against Captum's Occlusion with a
zero baseline.

Issue 14's GPU benchmark. Two parts, on ``--device`` (default ``cuda``):

1. the default audit grid (the methods and baselines of ``captum-cf audit`` for a user model) on
   a generated 224 px image folder, torchvision's resnet50 (random weights, 3 classes) wrapped to
   count every image it sees: images/s, and the limit ratio = audit seconds over the time of the
   same number of bare passes (no-grad forward and forward+backward, batched, CUDA-synchronised;
   the fastest of 5), as in ``benchmarks/audit_scale.py``;
2. SP-G vs Captum's SP: ``captum_cf.attr.Occlusion`` with ``InpaintBaseline(PushPullInpainter())``
   against ``captum.attr.Occlusion`` with ``baselines=0``, resnet50 at 224 px, window 32, stride
   16 (169 windows), the same ``perturbations_per_eval``; wall seconds with synchronisation,
   interleaved repeats, the median and the ratio.

Writes ``--json`` (default ``audit_gpu.json``) and prints one summary line. Runs on the CPU as
well (``--device cpu --quick``: a check of the script, not a measurement)::

    python benchmarks/audit_gpu.py --device cuda --n 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_scale  # noqa: E402  (this folder's benchmark: model source, folder, limit ratio)

import captum_cf  # noqa: E402,F401  (first: torchvision importable next to a CPU torch)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def spg_vs_sp(device: str, images: int, repeats: int, per_eval: int, quick: bool) -> dict:
    """Median wall seconds of Captum's SP (zero) and captum_cf's SP-G (push-pull), interleaved."""
    import captum.attr
    import torchvision

    from captum_cf.attr import Occlusion
    from captum_cf.baselines import InpaintBaseline
    from captum_cf.inpainters import PushPullInpainter

    torch.manual_seed(0)
    net = torchvision.models.resnet18 if quick else torchvision.models.resnet50
    model = net(num_classes=3).eval().to(device)
    size, window, stride = (64, 16, 8) if quick else (224, 32, 16)
    x = torch.rand(images, 3, size, size).to(device)
    args = dict(sliding_window_shapes=(3, window, window), strides=(3, stride, stride), target=0,
                perturbations_per_eval=per_eval)
    peer, ours = captum.attr.Occlusion(model), Occlusion(model)
    baseline = InpaintBaseline(PushPullInpainter())
    calls = {"captum_zero": lambda: peer.attribute(x, baselines=0, **args),
             "captum_cf_spg": lambda: ours.attribute(x, baselines=baseline, **args)}
    for call in calls.values():  # warm-up: cuDNN algorithm choice, first allocations
        call()
    wall: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            _sync(device)
            t0 = time.perf_counter()
            call()
            _sync(device)
            wall[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    return {"device": device, "images": images, "size": size, "window": window,
            "stride": stride, "windows": ((size - window) // stride + 1) ** 2,
            "perturbations_per_eval": per_eval, "repeats": repeats, "wall_seconds": wall,
            "median_wall_seconds": med, "ratio": med["captum_cf_spg"] / med["captum_zero"]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--n", type=int, default=16, help="images of the audit part")
    p.add_argument("--spg-images", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--per-eval", type=int, default=64, help="perturbations_per_eval of SP/SP-G")
    p.add_argument("--skip", default="", help="comma list of parts to skip: audit,spg")
    p.add_argument("--quick", action="store_true",
                   help="a check of the script: 64 px, resnet18, tiny counts")
    p.add_argument("--json", default="audit_gpu.json")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine has no CUDA device (use --device cpu)")
    skip = set(filter(None, a.skip.split(",")))
    work = tempfile.mkdtemp(prefix="audit-gpu-")
    with open(os.path.join(work, "bench_model.py"), "w") as f:
        f.write(textwrap.dedent(audit_scale.MODEL))
    res: dict = {"device": a.device, "torch": torch.__version__,
                 "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None}
    parts = []
    if "audit" not in skip:
        size, factory = (64, "resnet18_counted") if a.quick else (224, "resnet50_counted")
        lim = audit_scale._limit(work, size, a.n, factory=factory, device=a.device, batch=64)
        lim["images_per_s"] = a.n / lim["audit_seconds"]
        res["audit"] = lim
        parts.append(f"audit {factory[:-8]} {size}px: {lim['images_per_s']:.3f} img/s, limit "
                     f"ratio {lim['limit_ratio']:.2f} ({lim['images_forward']} images through "
                     f"the model, {lim['images_with_grad']} with gradients)")
    if "spg" not in skip:
        spg = spg_vs_sp(a.device, 1 if a.quick else a.spg_images, 1 if a.quick else a.repeats,
                        a.per_eval, a.quick)
        res["spg"] = spg
        med = spg["median_wall_seconds"]
        parts.append(f"SP-G/SP {spg['ratio']:.2f}x ({med['captum_cf_spg']:.2f} s vs "
                     f"{med['captum_zero']:.2f} s, {spg['images']} images)")
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2)
    print(f"audit_gpu ({a.device}): " + "; ".join(parts))
    return res


if __name__ == "__main__":
    main()
