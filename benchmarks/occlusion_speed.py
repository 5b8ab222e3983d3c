"""Speed of Sliding-Patch occlusion with inpainted patches (SP-G) against Captum's grey/zero SP.

Measures, side by side in one run (interleaved repeats, median CPU time of the process on one
thread; wall time recorded too):

* ``captum.attr.Occlusion`` with ``baselines=0`` (the peer), and
* ``captum_cf.attr.Occlusion`` with ``InpaintBaseline(<inpainter>)``,

with the same windows, strides and ``perturbations_per_eval=32``, on

* ``shapes-cnn`` (zoo), 64x64 SyntheticShapes images: window 8, stride 4 (225 windows);
  target: SP-G time <= 1.5x SP time with the push-pull inpainter (<= 3x with a learned one);
* a torchvision resnet18 with random weights, 224x224: window 32, stride 16 (169 windows);
  the ratio is reported.

Writes ``benchmarks/results/occlusion_speed_<inpainter>.json`` and prints one summary line.

Usage::

    python benchmarks/occlusion_speed.py [--quick] [--inpainter pushpull|learned|biharmonic]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import captum.attr
import torch

import captum_cf  # noqa: F401  (first: makes torchvision importable next to the CPU torch)
from captum_cf.attr import Occlusion
from captum_cf.baselines import InpaintBaseline

RESULTS = Path(__file__).resolve().parent / "results" / "occlusion_speed_{}.json"
# biharmonic has no target of its own (None: the ratio is reported): it is the learned shapes
# inpainter's prefill, timed alone
TARGET_RATIO = {"pushpull": 1.5, "learned": 3.0, "biharmonic": None}


def make_inpainter(name: str) -> Any:
    """The inpainter under test; add new names here (``learned`` is the zoo's shapes inpainter)."""
    if name == "pushpull":
        from captum_cf.inpainters import PushPullInpainter

        return PushPullInpainter()
    if name == "biharmonic":
        from captum_cf.inpainters import BiharmonicInpainter

        return BiharmonicInpainter()
    if name == "learned":
        from captum_cf import zoo

        if "shapes-inpainter" not in zoo.available():
            raise SystemExit(
                "--inpainter learned needs the zoo model 'shapes-inpainter' (issue 3, i3b)"
            )
        return zoo.load("shapes-inpainter")
    raise SystemExit(f"unknown --inpainter {name!r}; choose one of {sorted(TARGET_RATIO)}")


def time_pair(
    model: Any, x: torch.Tensor, window: int, stride: int, baseline: Any, repeats: int
) -> dict:
    """Median CPU and wall seconds of Captum SP (zero) and captum_cf SP-G, interleaved.

    One thread, so the process's CPU time is the work done; it is the number compared (the
    machine is shared, so wall time also counts waiting for the CPU). Wall time is recorded too.
    """
    c = x.shape[1]
    args = dict(
        sliding_window_shapes=(c, window, window),
        strides=(c, stride, stride),
        target=0,
        perturbations_per_eval=32,
    )
    names = ("captum_zero", "captum_cf_inpaint")
    cpu: dict[str, list[float]] = {k: [] for k in names}
    wall: dict[str, list[float]] = {k: [] for k in names}
    peer, ours = captum.attr.Occlusion(model), Occlusion(model)
    for _ in range(repeats):
        for name, call in (
            ("captum_zero", lambda: peer.attribute(x, baselines=0, **args)),
            ("captum_cf_inpaint", lambda: ours.attribute(x, baselines=baseline, **args)),
        ):
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            call()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    return {
        "images": x.shape[0],
        "size": x.shape[-1],
        "window": window,
        "stride": stride,
        "windows": ((x.shape[-1] - window) // stride + 1) ** 2,
        "repeats": repeats,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "median_cpu_seconds": med_cpu,
        "median_wall_seconds": med_wall,
        "ratio": med_cpu["captum_cf_inpaint"] / med_cpu["captum_zero"],
        "wall_ratio": med_wall["captum_cf_inpaint"] / med_wall["captum_zero"],
    }


def shapes_case(baseline: Any, quick: bool) -> dict:
    from captum_cf import zoo
    from captum_cf.datasets import SyntheticShapes

    model = zoo.load("shapes-cnn")
    x = SyntheticShapes(4 if quick else 16, size=64, seed=1234).images
    return time_pair(model, x, window=8, stride=4, baseline=baseline, repeats=3 if quick else 5)


def resnet_case(baseline: Any, quick: bool) -> dict:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    window, stride = (56, 28) if quick else (32, 16)
    return time_pair(
        model, x, window=window, stride=stride, baseline=baseline, repeats=1 if quick else 2
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, windows and repeats")
    parser.add_argument("--inpainter", default="pushpull", choices=sorted(TARGET_RATIO))
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    baseline = InpaintBaseline(make_inpainter(args.inpainter))
    with torch.no_grad():
        result = {
            "inpainter": args.inpainter,
            "quick": args.quick,
            "threads": 1,
            "target_ratio": TARGET_RATIO[args.inpainter],
            "shapes-cnn-64": shapes_case(baseline, args.quick),
        }
        if not args.skip_resnet:
            result["resnet18-224"] = resnet_case(baseline, args.quick)
    target = result["target_ratio"]
    result["meets_target"] = None if target is None else result["shapes-cnn-64"]["ratio"] <= target
    out = Path(str(RESULTS).format(args.inpainter))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    shapes = result["shapes-cnn-64"]
    seconds = shapes["median_cpu_seconds"]
    line = (
        f"occlusion_speed [{args.inpainter}{', quick' if args.quick else ''}]: "
        f"shapes-cnn 64px SP-G/SP(zero) CPU time = {shapes['ratio']:.2f}x "
        + (f"(target <= {target}x: {'met' if result['meets_target'] else 'NOT met'}; "
           if target is not None else "(no target: reported; ")
        + f"{seconds['captum_cf_inpaint']:.2f}s vs {seconds['captum_zero']:.2f}s; "
        f"wall {shapes['wall_ratio']:.2f}x)"
    )
    if "resnet18-224" in result:
        r = result["resnet18-224"]
        line += f" | resnet18 224px = {r['ratio']:.2f}x (wall {r['wall_ratio']:.2f}x, "
        line += f"{r['windows']} windows)"
    print(line)
    return result


if __name__ == "__main__":
    main()
