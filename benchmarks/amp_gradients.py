"""How far bfloat16 autocast moves a frozen classifier's input gradients (the generators' signal).

GANMEX and progressive exaggeration steer their generator with the gradient of a frozen
classifier's loss with respect to the generated image. ``--amp bf16`` runs the trained networks
under bfloat16 autocast but keeps that classifier in float32. This measures what autocast would
do to the gradient: for each classifier, ``d CE(f(x), t) / d x`` towards another class ``t``
(as the generators ask) in float32 and under ``torch.autocast(dtype=torch.bfloat16)``, compared
per image by cosine similarity, relative L2 error and sign agreement. No GPU has been lent to
this project: this runs CPU autocast, whose bfloat16 format (8-bit mantissa) and lower-precision
op list (convolutions, matrix products) are CUDA's; kernels and accumulation order differ.

Run: ``python benchmarks/amp_gradients.py [--device cpu|cuda]``. Writes
``benchmarks/results/amp_gradients.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.nn.functional as F

from captum_cf import zoo
from captum_cf.datasets import SyntheticShapes, load_digits


def _gradient(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, bf16: bool) -> tuple:
    x = x.clone().requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), t, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.flatten(1).double(), logits.float().detach()


def _compare(name: str, model: torch.nn.Module, x: torch.Tensor, k: int) -> dict:
    model = model.eval().to(x.device)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % k  # towards another class, as the generators ask
    g32, l32 = _gradient(model, x, t, False)
    g16, l16 = _gradient(model, x, t, True)
    cos = F.cosine_similarity(g16, g32, dim=1)
    rel = (g16 - g32).norm(dim=1) / g32.norm(dim=1)
    sign = ((g16.sign() == g32.sign()) | (g32 == 0)).double().mean(1)
    return {
        "model": name, "images": int(x.shape[0]), "size": int(x.shape[-1]),
        "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
        "rel_l2_median": float(rel.median()), "rel_l2_max": float(rel.max()),
        "sign_agreement_mean": float(sign.mean()),
        "logit_max_abs_diff": float((l16 - l32).abs().max()),
        "argmax_agreement": float((l16.argmax(1) == l32.argmax(1)).double().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    digits = load_digits("test").tensors[0][:64].to(dev)
    shapes = SyntheticShapes(32, size=64, seed=1).to_tensor_dataset().tensors[0].to(dev)
    photos = torch.rand(8, 3, 128, 128, generator=torch.Generator().manual_seed(0)).to(dev)
    import torchvision  # after captum_cf, which makes a mismatched torchvision importable

    resnet = torchvision.models.resnet18(num_classes=10)  # random weights: no download
    rows = [
        _compare("digits-cnn", zoo.load("digits-cnn"), digits, 10),
        _compare("digits-cnn-robust", zoo.load("digits-cnn-robust"), digits, 10),
        _compare("shapes-cnn", zoo.load("shapes-cnn"), shapes, 4),
        _compare("resnet18 (random init, 128 px noise)", resnet, photos, 10),
    ]
    path = os.path.join(os.path.dirname(__file__), "results", "amp_gradients.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"device": str(dev), "torch": torch.__version__, "rows": rows}, f, indent=2)
    for r in rows:
        print(f"  {r['model']}: cosine {r['cosine_mean']:.4f} (min {r['cosine_min']:.4f}), "
              f"rel L2 {r['rel_l2_median']:.3f} (max {r['rel_l2_max']:.3f}), sign "
              f"{r['sign_agreement_mean']:.3f}, argmax {r['argmax_agreement']:.3f}")
    worst = min(rows, key=lambda r: r["cosine_min"])
    print(f"amp_gradients ({dev}): bf16 vs float32 input gradients, worst cosine "
          f"{worst['cosine_min']:.4f} ({worst['model']}), median relative L2 error "
          + ", ".join(f"{r['model'].split(' ')[0]} {r['rel_l2_median']:.3f}" for r in rows))


if __name__ == "__main__":
    main()
