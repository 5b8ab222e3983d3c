"""Progressive exaggeration on digits ("is it an 8" against digits-cnn): the issue's bars.

On held-out test digits (load_digits("test"); 100 images with --quick, all 360 otherwise):

* compatibility (the paper's main plot): desired bin centre vs the classifier's achieved
  posterior of class 8 over all 10 bins and images, Pearson r and mean absolute error
  (bars: r >= 0.9, MAE <= 0.15), plus the share of monotone series;
* identity: mean L1 of G(x, c_x) to x, c_x the bin of the classifier's own posterior (<= 0.05);
* cost: CPU milliseconds (one thread, ``time.process_time``) per 10-step series.

Peer measured in the same run: a pixel blend from the input to its nearest (L2) training image
on the other side of the decision (an 8 for non-8s, a non-8 for 8s), with blend weights that
walk from "not 8" to "8" in 10 even steps; it needs no generator but is not steered by the
classifier. Writes benchmarks/results/exaggeration.json and prints one summary line.

    OMP_NUM_THREADS=1 python benchmarks/exaggeration.py [--quick] [--weights FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from captum_cf import zoo
from captum_cf.attr import ProgressiveExaggeration
from captum_cf.datasets import load_digits
from captum_cf.generative.conditional import bin_centers
from captum_cf.generative.exaggeration_trainer import evaluate_exaggeration, positive_posterior


def _compat(desired: torch.Tensor, achieved: torch.Tensor) -> dict[str, float]:
    d = desired.expand_as(achieved)
    r = torch.corrcoef(torch.stack([d.flatten(), achieved.flatten()]))[0, 1]
    monotone = (achieved.diff(dim=1) >= -0.02).all(dim=1).float().mean()
    return {"r": float(r), "mae": float((d - achieved).abs().mean()),
            "monotone": float(monotone)}


@torch.no_grad()
def blend_walk(model, x: torch.Tensor, positive: int) -> torch.Tensor:
    """The peer's walks, (N, 10, C, H, W): each input blended to its nearest (L2) training
    digit across ``model``'s decision, from "not ``positive``" to ``positive`` in 10 even
    steps (``benchmarks/judge_panel.py`` reads them as its control walk)."""
    x_tr, y_tr = load_digits("train").tensors
    log_p, _ = positive_posterior(model(x), positive)
    is_pos = log_p.exp() >= 0.5
    other = torch.where(is_pos[:, None], (y_tr != positive)[None], (y_tr == positive)[None])
    dist = torch.cdist(x.flatten(1), x_tr.flatten(1)).masked_fill(~other, float("inf"))
    nearest = x_tr[dist.argmin(1)]
    neg_end = torch.where(is_pos[:, None, None, None], nearest, x)
    pos_end = torch.where(is_pos[:, None, None, None], x, nearest)
    alphas = torch.linspace(0, 1, 10)
    return torch.stack([(1 - a) * neg_end + a * pos_end for a in alphas], 1)


@torch.no_grad()
def _blend_peer(model, x: torch.Tensor, positive: int) -> dict[str, float]:
    series = blend_walk(model, x, positive)
    log_p, _ = positive_posterior(model(series.flatten(0, 1)), positive)
    return _compat(bin_centers(10), log_p.exp().view(x.shape[0], 10))


def _series_cost(pe: ProgressiveExaggeration, x: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        pe.explain(x, target=8, n_steps=10)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times) / x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 test images instead of 360")
    parser.add_argument("--weights", default=None, help="generator file (default: the zoo's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = zoo.load("digits-cnn")
    gen = zoo.load_file(args.weights) if args.weights else zoo.load("digits-exaggeration")
    x, y = load_digits("test").tensors
    if args.quick:
        x, y = x[:100], y[:100]
    positive = gen.config.positive_class
    pe = ProgressiveExaggeration(model, gen)
    out = pe.explain(x, target=positive, n_steps=10)
    ours = _compat(out.desired, out.achieved)
    ours["identity"] = evaluate_exaggeration(gen, model, x)["identity"]
    ours["ms_per_series_batch"] = _series_cost(pe, x[:32], 3)
    ours["ms_per_series_single"] = _series_cost(pe, x[:1], 5)
    peer = _blend_peer(model, x, positive)
    per_bin = out.achieved.mean(0).tolist()
    result = {"images": x.shape[0], "positive_class": positive, "ours": ours,
              "peer_blend_to_nearest": peer, "achieved_mean_per_bin": per_bin,
              "bars": {"r": 0.9, "mae": 0.15, "identity": 0.05}}
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/exaggeration.json").write_text(json.dumps(result, indent=2))
    print(f"exaggeration ({x.shape[0]} test digits, class {positive}): r {ours['r']:.3f} "
          f"(blend peer {peer['r']:.3f}, x{ours['r'] / peer['r']:.2f}), MAE {ours['mae']:.3f} "
          f"(peer {peer['mae']:.3f}, x{ours['mae'] / peer['mae']:.2f}), monotone "
          f"{ours['monotone']:.2f} (peer {peer['monotone']:.2f}), identity L1 "
          f"{ours['identity']:.4f}, {ours['ms_per_series_single']:.1f} ms per 10-step series "
          f"(1 image; {ours['ms_per_series_batch']:.1f} ms each in a batch of 32)")


if __name__ == "__main__":
    main()
