"""Does the verdict hinge on the removal? Deletion vs ROAD/SRG vs R-OMS on the digits.

Integrated Gradients explains test digits with four baselines (zero, blur, push-pull inpainting,
ROAD's noisy linear imputation). Each map is scored by RISE's black deletion and, under four
removals (black, blur, push-pull, ROAD), by MoRF and LeRF curves and their symmetric relevance
gain; ``captum_cf.audit.stats`` gives the verdict per metric and Kendall's tau of the baselines'
SRG rankings across removals. R-OMS of each removal uses push-pull inpainting as reference.
These are the numbers of README's "Reading an audit".

Run: ``python benchmarks/removal_bias.py [--n 32]``. Writes
``benchmarks/results/removal_bias.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from captum_cf._registry import AuditContext
from captum_cf.attr import IntegratedGradients
from captum_cf.audit.stats import ranking_consistency, verdict
from captum_cf.baselines import BASELINES, ConstantBaseline, NoisyLinearImputation
from captum_cf.datasets import load_digits
from captum_cf.metrics import deletion, r_oms, removal_curves, symmetric_relevance_gain
from captum_cf.zoo import load

BASELINE_NAMES = ("zero", "blur", "inpaint-pushpull", "road")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="test digits (default 32)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load("digits-cnn").eval()
    x, y = load_digits("test").tensors
    x, y = x[: args.n], y[: args.n]
    ctx = AuditContext(model, "digits", None, 10, tuple(x.shape[1:]))
    baselines = {name: BASELINES.create(name, ctx) for name in BASELINE_NAMES}
    removals = {"zero": ConstantBaseline(0.0), "blur": baselines["blur"],
                "pushpull": baselines["inpaint-pushpull"], "road": NoisyLinearImputation()}
    own = {"deletion": "zero", "srg-zero": "zero", "srg-blur": "blur",
           "srg-pushpull": "inpaint-pushpull", "srg-road": "road"}
    start = time.perf_counter()
    values = {}
    for name, baseline in baselines.items():
        attr = IntegratedGradients(model).attribute(x, baselines=baseline, target=y)
        values[("ig", name, "deletion")] = deletion(model, x, attr, y, n_steps=16).auc
        for removal, (morf, lerf) in removal_curves(model, x, attr, y, removals).items():
            values[("ig", name, f"srg-{removal}")] = symmetric_relevance_gain(morf, lerf)
    higher = {"deletion": False} | {f"srg-{r}": True for r in removals}
    judged = verdict(values, higher, own_removal=own)["ig"]
    means = {metric: {b: float(values[("ig", b, metric)].mean()) for b in BASELINE_NAMES}
             for metric in higher}
    tau = ranking_consistency({r: means[f"srg-{r}"] for r in removals})
    roms = {r: float(r_oms(model, x, rem, baselines["inpaint-pushpull"], n_draws=2).auc.mean())
            for r, rem in removals.items() if r != "pushpull"}
    seconds = time.perf_counter() - start
    result = {
        "n": args.n,
        "means": means,
        "verdict": judged.sentences,
        "kendall_tau_srg": {f"{a}/{b}": t for (a, b), t in tau.pairs.items()},
        "r_oms_vs_pushpull": roms,
        "seconds": seconds,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        "removal_bias.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"removal_bias: deletion best {judged.metrics['deletion'].best} "
        f"(zero {means['deletion']['zero']:.3f}), SRG under ROAD best "
        f"{judged.metrics['srg-road'].best} (zero {means['srg-road']['zero']:.2f}, blur "
        f"{means['srg-road']['blur']:.2f}), mean tau {tau.mean_tau:.2f}, R-OMS "
        + ", ".join(f"{r} {v:.2f}" for r, v in roms.items())
        + f"; {seconds:.0f} s -> {path}"
    )


if __name__ == "__main__":
    main()
