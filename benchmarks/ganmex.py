"""GANMEX benchmark: counterfactual quality, one-vs-one relevance, randomisation, speed.

Measures, on held-out test data (``python benchmarks/ganmex.py [--quick]``):

1. flip rate of ``G(x, t)`` under the classifier over all ordered class pairs (every test image
   times every other class), and the mean L1 distance to the input, next to the MDTS baseline
   (nearest training image of class ``t``, :class:`NearestSampleBaseline`);
2. one-vs-one on SyntheticShapes ("square with dot" vs "square", both directions, held-out
   seed-8 images): the share of positive IG attribution inside the ground-truth ``parts`` with
   GANMEX, zero, blur and MDTS baselines (needs ``shapes-cnn`` and ``shapes-ganmex``; rows that
   cannot run are reported as not done; ``--shapes-only`` runs just these rows);
3. cascading randomisation (Adebayo et al., 2018): SSIM between IG maps of the trained model
   and of copies with the top k layers re-initialised, GANMEX (runner-up class, computed once
   from the trained model) vs zero baseline (lower = the map depends more on the learned
   weights), on digits and on the first SyntheticShapes test images;
4. ms per image: one generator forward pass vs the MDTS search over the training set.

Writes ``benchmarks/results/ganmex.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from captum_cf import zoo  # noqa: E402
from captum_cf.attr import IntegratedGradients  # noqa: E402
from captum_cf.baselines import (  # noqa: E402
    BlurBaseline,
    ConstantBaseline,
    GANMEXBaseline,
    NearestSampleBaseline,
)
from captum_cf.datasets import load_digits  # noqa: E402
from captum_cf.zoo.generators import all_pairs  # noqa: E402


def _load_generator(spec: str | None, name: str):
    if spec:
        return zoo.load_file(spec)
    if name in zoo.available() and zoo.entry(name).path.is_file():
        return zoo.load(name)
    return None


def flip_rates(model, generator, n_images: int) -> dict:
    x_tr, y_tr = load_digits("train").tensors
    x_te, y_te = load_digits("test").tensors
    x_te, y_te = x_te[:n_images], y_te[:n_images]
    index, targets = all_pairs(y_te, 10)
    x, t = x_te[index], targets
    with torch.no_grad():
        cf = torch.cat([generator(x[i : i + 256], t[i : i + 256]) for i in range(0, len(t), 256)])
        pred = torch.cat([model(cf[i : i + 256]).argmax(1) for i in range(0, len(t), 256)])
        ref = NearestSampleBaseline((x_tr, y_tr), counterfactual_class=t)(x)
        mdts_pred = model(ref).argmax(1)
    return {
        "pairs": int(len(t)),
        "ganmex_flip": float((pred == t).float().mean()),
        "ganmex_l1": float((cf - x).abs().mean()),
        "mdts_flip": float((mdts_pred == t).float().mean()),
        "mdts_l1": float((ref - x).abs().mean()),
        "ganmex_flip_per_target": {c: float((pred[t == c] == c).float().mean()) for c in range(10)},
    }


def timing(generator, n: int = 64, repeats: int = 3) -> dict:
    x_tr, y_tr = load_digits("train").tensors
    x = load_digits("test").tensors[0][:n]
    mdts = NearestSampleBaseline((x_tr, y_tr), counterfactual_class=8)
    gan = GANMEXBaseline(generator, 8)

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * min(times) / n

    return {"ganmex_ms_per_image": best(lambda: gan(x)), "mdts_ms_per_image": best(lambda: mdts(x))}


def _layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def _ig_maps(model, x, target, baseline) -> np.ndarray:
    attr = IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=32)
    maps = attr.detach().abs().sum(1)
    maps = maps / maps.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return maps.numpy()


def randomisation(model, generator, n_images: int, images=None) -> dict:
    x = load_digits("test").tensors[0] if images is None else images
    x = x[:n_images]
    with torch.no_grad():
        logits = model(x)
    target = logits.argmax(1)
    runner_up = logits.clone()
    runner_up[torch.arange(len(x)), target] = -float("inf")
    # the counterfactual is fixed from the trained model, so only the model changes below
    baselines = {"ganmex": GANMEXBaseline(generator, runner_up.argmax(1))(x),
                 "zero": torch.zeros_like(x)}
    originals = {k: _ig_maps(model, x, target, b) for k, b in baselines.items()}
    layers = _layers(model)
    out = {k: [] for k in baselines}
    for k in range(1, len(layers) + 1):
        randomised = copy.deepcopy(model)
        torch.manual_seed(k)
        for layer in _layers(randomised)[-k:]:
            layer.reset_parameters()
        for name, base in baselines.items():
            maps = _ig_maps(randomised, x, target, base)
            ssim = [structural_similarity(originals[name][i], maps[i], data_range=1.0)
                    for i in range(len(x))]
            out[name].append(float(np.mean(ssim)))
    return {"layers_randomised": list(range(1, len(layers) + 1)),
            **{f"{k}_ssim": v for k, v in out.items()},
            **{f"{k}_mean_ssim": float(np.mean(v)) for k, v in out.items()}}


def shapes_relevance(generator, n_images: int) -> dict:
    """One-vs-one relevance mass on SyntheticShapes, both directions of the part pair.

    For each class ``c`` of the pair (``a``, ``b``) = (square, square with dot): ``n_images``
    held-out test images of ``c`` (seed 8: neither ``shapes-cnn`` nor the generator saw it),
    IG (32 steps) of target ``c`` with each baseline towards the other class ``c'``; the score is
    the share of positive attribution inside the ``parts`` mask (the dot, or where it would be).
    """
    if "shapes-cnn" not in zoo.available() or not zoo.entry("shapes-cnn").path.is_file():
        return {"done": False, "why": "shapes-cnn weights are not in this checkout"}
    from captum_cf.datasets import SyntheticShapes

    model = zoo.load("shapes-cnn")
    train = SyntheticShapes(2000, size=64, seed=0)
    test = SyntheticShapes(max(8 * n_images, 400), size=64, seed=8)
    pair = test.part_pairs[0]
    out = {"done": True, "test_data": f"SyntheticShapes({len(test.labels)}, size=64, seed=8)",
           "images_per_class": n_images, "pair": list(pair)}
    if generator is not None:  # cascading randomisation on shapes too (all classes, runner-up)
        out["randomisation"] = randomisation(model, generator, n_images, test.images)
    masses: dict[str, list] = {}
    for cls, other in (pair, pair[::-1]):
        sel = (test.labels == cls).nonzero().flatten()[:n_images]
        x, parts = test.images[sel], test.parts[sel]
        baselines = {
            "zero": ConstantBaseline(0.0),
            "blur": BlurBaseline(6.4),
            "mdts": NearestSampleBaseline((train.images, train.labels), other),
        }
        if generator is not None:
            baselines["ganmex"] = GANMEXBaseline(generator, other)
        for name, base in baselines.items():
            ref = base(x)
            with torch.no_grad():
                out[f"{name}_flip_{cls}_to_{other}"] = float((model(ref).argmax(1) == other)
                                                             .float().mean())
            attr = IntegratedGradients(model).attribute(x, baselines=ref, target=cls,
                                                        n_steps=32).detach().sum(1, keepdim=True)
            pos = attr.clamp_min(0)
            mass = (pos * parts).flatten(1).sum(1) / pos.flatten(1).sum(1).clamp_min(1e-12)
            out[f"{name}_relevance_mass_{cls}_vs_{other}"] = float(mass.mean())
            masses.setdefault(name, []).append(mass)
    for name, parts_mass in masses.items():
        out[f"{name}_relevance_mass"] = float(torch.cat(parts_mass).mean())
    if generator is None:
        out["ganmex_relevance_mass"] = None
        out["why_no_ganmex"] = "no shapes GANMEX generator (shapes-ganmex not shipped)"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (about a minute)")
    parser.add_argument("--generator", default=None, help="digits generator file (default zoo)")
    parser.add_argument("--shapes-generator", default=None, help="shapes generator file")
    parser.add_argument("--shapes-only", action="store_true",
                        help="only the SyntheticShapes one-vs-one rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n_flip, n_rand, n_shapes = (60, 8, 16) if args.quick else (360, 32, 64)
    if args.shapes_only:
        shapes = shapes_relevance(_load_generator(args.shapes_generator, "shapes-ganmex"),
                                  n_shapes)
        out = ROOT / "benchmarks" / "results" / "ganmex_shapes.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"quick": args.quick, "shapes": shapes}, indent=2))
        print(f"ganmex shapes: {_shapes_line(shapes)}; -> {out.relative_to(ROOT)}")
        return 0
    model = zoo.load("digits-cnn")
    generator = _load_generator(args.generator, "digits-ganmex")
    if generator is None:
        print("no digits GANMEX generator: ship digits-ganmex.pt or pass --generator")
        return 1
    results = {
        "quick": args.quick,
        "flip": flip_rates(model, generator, n_flip),
        "timing": timing(generator),
        "randomisation": randomisation(model, generator, n_rand),
        "shapes": shapes_relevance(_load_generator(args.shapes_generator, "shapes-ganmex"),
                                   n_shapes),
    }
    out = ROOT / "benchmarks" / "results" / "ganmex.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    f, t, r = results["flip"], results["timing"], results["randomisation"]
    print(
        f"ganmex: flip {f['ganmex_flip']:.3f} over {f['pairs']} pairs (bar 0.90); "
        f"L1 {f['ganmex_l1']:.3f} vs MDTS {f['mdts_l1']:.3f} "
        f"(ratio {f['ganmex_l1'] / f['mdts_l1']:.2f}); randomisation SSIM "
        f"ganmex {r['ganmex_mean_ssim']:.3f} vs zero {r['zero_mean_ssim']:.3f}; "
        f"{t['ganmex_ms_per_image']:.2f} ms/img vs MDTS {t['mdts_ms_per_image']:.2f} "
        f"(x{t['mdts_ms_per_image'] / t['ganmex_ms_per_image']:.1f}); "
        f"shapes: {_shapes_line(results['shapes'])}; -> {out.relative_to(ROOT)}"
    )
    return 0


def _shapes_line(s: dict) -> str:
    if not s.get("done"):
        return "not done (" + s["why"] + ")"
    names = ("ganmex", "zero", "blur", "mdts")
    line = ", ".join(f"{n} {s[f'{n}_relevance_mass']:.3f}" if s.get(f"{n}_relevance_mass")
                     is not None else f"{n} not done" for n in names)
    if "randomisation" in s:
        r = s["randomisation"]
        line += (f"; shapes randomisation SSIM ganmex {r['ganmex_mean_ssim']:.3f} vs zero "
                 f"{r['zero_mean_ssim']:.3f}")
    return line


if __name__ == "__main__":
    sys.exit(main())
