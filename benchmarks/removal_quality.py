"""SP vs SP-G and LIME vs LIME-G on SyntheticShapes: deletion AUC and pointing game.

Agarwal & Nguyen (ACCV 2020) report that removing features by inpainting instead of a grey fill
makes Sliding-Patch occlusion (SP) and LIME more accurate. This benchmark reproduces the
comparison with ``shapes-cnn`` on a held-out ``SyntheticShapes`` seed, all four rows in one run:

* ``SP``: ``captum_cf.attr.Occlusion``, window 8, stride 4, grey patches
  (``ConstantBaseline(0.5)``);
* ``SP-G``: the same windows inpainted (``InpaintBaseline(PushPullInpainter())``);
* ``LIME`` / ``LIME-G``: ``captum_cf.attr.Lime`` on 50 SLIC superpixels, 300 samples, grey resp.
  inpainted superpixels (same superpixels, same random samples).

Metrics, per image, for the true class ``t``:

* deletion AUC (lower is better): pixels ranked by attribution (summed over channels, most
  important first) are removed in 16 steps of 1/16 of the image; the score is
  ``softmax(model(x))[t]``; AUC = trapezoid mean over the removed fraction. The removal itself
  needs a fill, and a method scores best when the metric removes the way it was computed, so
  three removal operators are reported: grey (favours SP/LIME), push-pull inpainting (favours
  the -G rows) and a Gaussian blur (sigma 4, neither);
* pointing game (higher is better): a hit when at least half of the pixels of maximal attribution
  lie in the object mask dilated by 3 px (Zhang et al. 2016 use 15 px at 224 px);
* on-object share: the share of positive attribution on the object mask (higher is better);
* diagnostic: the mean target probability the classifier gives to the perturbed samples each
  method fed it (one patch / random superpixels removed): the further below the clean
  probability, the more the removal itself, not the missing evidence, moves the classifier.

Writes ``benchmarks/results/removal_quality.json`` and prints one summary line.

Usage::

    python benchmarks/removal_quality.py [--quick] [--images N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import captum_cf  # noqa: F401  (first: makes torchvision importable next to the CPU torch)
from captum_cf.attr import Lime, Occlusion, superpixels
from captum_cf.baselines import BlurBaseline, ConstantBaseline, InpaintBaseline
from captum_cf.inpainters import PushPullInpainter

RESULTS = Path(__file__).resolve().parent / "results" / "removal_quality.json"
HELD_OUT_SEED = 1234
GREY = ConstantBaseline(0.5)


def deletion_auc(
    model: Any,
    x: torch.Tensor,
    attr: torch.Tensor,
    target: torch.Tensor,
    removal: Any,
    steps: int = 16,
) -> torch.Tensor:
    """Deletion AUC per image, (N,): mean of softmax target scores along the deletion path.

    Ties in the ranking (patch- and superpixel-constant attributions) are broken by a fixed
    random order, the same for every method.
    """
    n, _, h, w = x.shape
    score = attr.sum(1).flatten(1)  # (N, HW)
    jitter = torch.rand(h * w, generator=torch.Generator().manual_seed(0)) * 1e-6
    order = (score / score.abs().amax(1, keepdim=True).clamp(min=1e-12) + jitter).argsort(
        1, descending=True
    )
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(h * w).expand(n, -1))
    fractions = torch.linspace(0, 1, steps + 1)
    keeps = torch.stack(
        [(rank >= round(f.item() * h * w)).float() for f in fractions], 1
    )  # (N, S+1, HW)
    keeps = keeps.view(n * (steps + 1), 1, h, w)
    images = removal.fill(x.repeat_interleave(steps + 1, 0), keeps)
    with torch.no_grad():
        probs = F.softmax(model(images), 1)
    p = probs.gather(1, target.repeat_interleave(steps + 1).view(-1, 1)).view(n, steps + 1)
    return torch.trapezoid(p, fractions, dim=1)


def pointing_game(attr: torch.Tensor, masks: torch.Tensor, tolerance: int = 3) -> torch.Tensor:
    """1.0 where at least half of the maximal-attribution pixels fall in the dilated mask, (N,)."""
    heat = attr.sum(1)  # (N, H, W)
    top = heat >= heat.flatten(1).amax(1).view(-1, 1, 1) - 1e-9
    grown = F.max_pool2d(masks.float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0
    inside = (top & grown).flatten(1).sum(1).float() / top.flatten(1).sum(1).float()
    return (inside >= 0.5).float()


def on_object_share(attr: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    pos = attr.sum(1).clamp(min=0)
    return (pos * masks[:, 0]).flatten(1).sum(1) / pos.flatten(1).sum(1).clamp(min=1e-12)


class _Spy(torch.nn.Module):
    """Records the target probability of every perturbed sample the method feeds the model."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model, self.probs, self.target = model, [], None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.target is not None and x.shape[0] > 1:
            t = self.target.repeat(x.shape[0] // self.target.shape[0])
            self.probs.append(F.softmax(out, 1).gather(1, t.view(-1, 1)).flatten())
        return out


def explain(
    name: str, model: _Spy, x: torch.Tensor, target: torch.Tensor, baseline: Any, lime_samples: int
) -> torch.Tensor:
    if name.startswith("SP"):
        return Occlusion(model).attribute(
            x,
            sliding_window_shapes=(3, 8, 8),
            strides=(3, 4, 4),
            baselines=baseline,
            target=target,
            perturbations_per_eval=32,
        )
    out = []
    for i in range(x.shape[0]):  # LIME fits one interpretable model per image anyway
        xi, ti = x[i : i + 1], target[i : i + 1]
        model.target = ti
        torch.manual_seed(1000 + i)  # LIME and LIME-G draw the same samples
        out.append(
            Lime(model).attribute(
                xi,
                baselines=baseline,
                target=ti,
                feature_mask=superpixels(xi, n_segments=50),
                n_samples=lime_samples,
                perturbations_per_eval=100,
            )
        )
    return torch.cat(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 images, 100 LIME samples")
    parser.add_argument("--images", type=int, default=None, help="number of images (default 64)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from captum_cf import zoo
    from captum_cf.datasets import SyntheticShapes

    n = args.images or (12 if args.quick else 64)
    lime_samples = 100 if args.quick else 300
    data = SyntheticShapes(n, size=64, seed=HELD_OUT_SEED)
    x, target, masks = data.images, data.labels.long(), data.masks
    base = zoo.load("shapes-cnn")
    with torch.no_grad():
        clean = F.softmax(base(x), 1).gather(1, target.view(-1, 1)).flatten()
    inpaint = InpaintBaseline(PushPullInpainter())
    removals = {"grey": GREY, "inpaint": inpaint, "blur": BlurBaseline(4.0)}
    rows = {}
    for name, baseline in (("SP", GREY), ("SP-G", inpaint), ("LIME", GREY), ("LIME-G", inpaint)):
        spy = _Spy(base)
        spy.target = target
        start = time.perf_counter()
        attr = explain(name, spy, x, target, baseline, lime_samples)
        seconds = time.perf_counter() - start
        rows[name] = {
            **{
                f"deletion_auc_{r}": float(deletion_auc(base, x, attr, target, fill).mean())
                for r, fill in removals.items()
            },
            "pointing_game": float(pointing_game(attr, masks).mean()),
            "on_object_share": float(on_object_share(attr, masks).mean()),
            "mean_prob_of_perturbed_samples": float(torch.cat(spy.probs).mean()),
            "seconds": seconds,
        }
    result = {
        "images": n,
        "seed": HELD_OUT_SEED,
        "lime_samples": lime_samples,
        "quick": args.quick,
        "clean_mean_prob": float(clean.mean()),
        "clean_accuracy": float((base(x).argmax(1) == target).float().mean()),
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(_summary(result))
    return result


def _summary(result: dict) -> str:
    r = result["rows"]

    def pair(a: str, b: str) -> str:
        auc = ", ".join(
            f"{k} {r[b][f'deletion_auc_{k}']:.3f}/{r[a][f'deletion_auc_{k}']:.3f}"
            for k in ("grey", "blur", "inpaint")
        )
        return (
            f"{b}/{a}: deletion AUC (lower is better) {auc}; "
            f"pointing {r[b]['pointing_game']:.2f}/{r[a]['pointing_game']:.2f}"
        )

    head = f"removal_quality [{result['images']} images]"
    return f"{head}: {pair('SP', 'SP-G')} | {pair('LIME', 'LIME-G')}"


if __name__ == "__main__":
    main()
