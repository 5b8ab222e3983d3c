"""Peer agreement and speed: ``deletion`` vs Quantus 0.6 PixelFlipping and RegionPerturbation.

Both remove pixels most-relevant-first into a black (0) image and score softmax(target).
Configured equivalently:

* ``PixelFlipping(features_in_step=HW / n_steps, perturb_baseline=0.0, normalise=False, abs=False)``
  returns the curve after each step: our ``deletion(..., n_steps).scores[:, 1:]``.
* ``RegionPerturbation(patch_size=1, regions_evaluation=HW, order="morf", perturb_baseline=0.0)``
  returns ``p(x) - p(x after k pixels)``: ``scores[:, :1] - scores[:, 1:]`` with ``n_steps = HW``.

Grey images (digits), attributions with ties broken (Quantus sorts with an unstable argsort).
Quantus is not a dependency; install it aside (it must not pull torch)::

    pip install --no-deps --target /tmp/quantus_env quantus==0.6.* pandas \
        opencv-python-headless cachetools

Run: ``python benchmarks/deletion_vs_quantus.py [--quick] [--quantus-path /tmp/quantus_env]``.
Writes ``benchmarks/results/deletion_vs_quantus.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import torch

import captum_cf  # noqa: F401  (before quantus: makes torchvision importable)
from captum_cf.baselines import ConstantBaseline
from captum_cf.datasets import load_digits
from captum_cf.metrics import deletion
from captum_cf.zoo import load


def _attributions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    a = IntegratedGradients(model).attribute(x, baselines=0.0, target=y, n_steps=16)
    jitter = torch.rand(a.shape, generator=torch.Generator().manual_seed(1))
    return (a + 1e-4 * a.abs().max() * jitter).detach()  # distinct values: no tie-order question


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 images instead of 64")
    parser.add_argument("--quantus-path", default="/tmp/quantus_env")
    args = parser.parse_args(argv)
    if args.quantus_path not in sys.path:
        sys.path.insert(0, args.quantus_path)
    import quantus

    torch.set_num_threads(1)
    n = 8 if args.quick else 64
    model = load("digits-cnn")
    x, y = load_digits("test").tensors
    x, y = x[:n], y[:n]
    a = _attributions(model, x, y)
    hw = x.shape[-1] * x.shape[-2]
    n_steps = 32
    ours, t_ours = _timed(lambda: deletion(model, x, a, y, ConstantBaseline(0.0), n_steps=n_steps))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf = quantus.PixelFlipping(
            features_in_step=hw // n_steps,
            perturb_baseline=0.0,
            normalise=False,
            abs=False,
            disable_warnings=True,
        )
        theirs, t_theirs = _timed(
            lambda: pf(
                model=model,
                x_batch=x.numpy(),
                y_batch=y.numpy(),
                a_batch=a.numpy(),
                device="cpu",
                softmax=True,
                batch_size=n,
            )
        )
    theirs = torch.tensor(theirs)
    diff_pf = float((ours.scores[:, 1:] - theirs).abs().max())

    m = min(n, 8)  # RegionPerturbation at one pixel per region: HW forward passes per image
    full, t_full = _timed(
        lambda: deletion(model, x[:m], a[:m], y[:m], ConstantBaseline(0.0), n_steps=hw)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rp = quantus.RegionPerturbation(
            patch_size=1,
            regions_evaluation=hw,
            order="morf",
            perturb_baseline=0.0,
            normalise=False,
            abs=False,
            disable_warnings=True,
        )
        region, t_region = _timed(
            lambda: rp(
                model=model,
                x_batch=x[:m].numpy(),
                y_batch=y[:m].numpy(),
                a_batch=a[:m].numpy(),
                device="cpu",
                softmax=True,
                batch_size=m,
            )
        )
    region = torch.tensor(region)
    diff_rp = float(((full.scores[:, :1] - full.scores[:, 1:]) - region).abs().max())

    result = {
        "images": n,
        "n_steps": n_steps,
        "quantus": quantus.__version__,
        "pixel_flipping_max_abs_diff": diff_pf,
        "region_perturbation_max_abs_diff": diff_rp,
        "seconds_ours_deletion": t_ours,
        "seconds_quantus_pixel_flipping": t_theirs,
        "seconds_ours_deletion_full": t_full,
        "seconds_quantus_region_perturbation": t_region,
        "region_images": m,
        "threads": torch.get_num_threads(),
    }
    out = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "deletion_vs_quantus.json"
    )
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"deletion vs Quantus {quantus.__version__} ({n} digits, IG maps): max |diff| "
        f"PixelFlipping "
        f"{diff_pf:.2e}, RegionPerturbation {diff_rp:.2e}; time ours/Quantus "
        f"{t_ours / t_theirs:.2f}x (PixelFlipping), {t_full / t_region:.2f}x (RegionPerturbation)"
    )
    return result


if __name__ == "__main__":
    main()
