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
   and of copies with the top k layers re-initialised (lower = the map depends more on the
   learned weights), zero baseline vs GANMEX towards the runner-up class in two protocols:
   "fixed" (the counterfactual of the trained model's generator, kept while the model is
   randomised) and "regenerated" (the generator adapted to each randomised model with
   :func:`~captum_cf.generative.adapt_ganmex`, ``--adapt-steps`` steps from the trained
   generator, because a GANMEX baseline is defined by the classifier in the loop); the flip
   rate of both counterfactuals under each randomised model is reported beside the SSIM.
   On digits and on the first SyntheticShapes test images; the regenerated protocol costs
   about 3 minutes per layer on digits (one CPU thread, 150 steps);
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
from captum_cf.generative import GANMEXTrainConfig, adapt_ganmex  # noqa: E402
from captum_cf.zoo.generators import GANMEX_SETUPS, _ganmex_data, all_pairs  # noqa: E402


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


def randomisation(model, generator, n_images: int, images=None, data: str = "digits",
                  adapt_steps: int = 0) -> dict:
    x = load_digits("test").tensors[0] if images is None else images
    x = x[:n_images]
    with torch.no_grad():
        logits = model(x)
    target = logits.argmax(1)
    runner_up = logits.clone()
    runner_up[torch.arange(len(x)), target] = -float("inf")
    runner_up = runner_up.argmax(1)
    with torch.no_grad():
        fixed = GANMEXBaseline(generator, runner_up)(x)
    baselines = {"ganmex": fixed, "zero": torch.zeros_like(x)}
    originals = {k: _ig_maps(model, x, target, b) for k, b in baselines.items()}
    if adapt_steps:
        setup = GANMEX_SETUPS[data]
        x_tr, y_tr, x_val, y_val, *_ = _ganmex_data(data, setup, 0)
        # the data set's training settings; no mask warm-up: it exists for the identity start
        adapt_config = GANMEXTrainConfig(**{**setup.get("train_config", {}), "mask_warmup": 0})
    layers = _layers(model)
    out: dict = {k: [] for k in (*baselines, "ganmex_regenerated")}
    flips: dict = {"ganmex_fixed_flip": [], "ganmex_regenerated_flip": [],
                   "ganmex_regenerated_l1": []}
    for k in range(1, len(layers) + 1):
        randomised = copy.deepcopy(model)
        torch.manual_seed(k)
        for layer in _layers(randomised)[-k:]:
            layer.reset_parameters()
        current = dict(baselines)
        with torch.no_grad():
            flips["ganmex_fixed_flip"].append(
                float((randomised(fixed).argmax(1) == runner_up).float().mean()))
        if adapt_steps:  # the GANMEX baseline of the randomised model: its own generator
            adapted = adapt_ganmex(generator, randomised, x_tr, y_tr, adapt_steps,
                                   val_images=x_val, val_labels=y_val, config=adapt_config,
                                   seed=k, show_progress=False)
            with torch.no_grad():
                current["ganmex_regenerated"] = adapted(x, runner_up)
                flips["ganmex_regenerated_flip"].append(float(
                    (randomised(current["ganmex_regenerated"]).argmax(1) == runner_up)
                    .float().mean()))
            flips["ganmex_regenerated_l1"].append(
                float((current["ganmex_regenerated"] - x).abs().mean()))
        for name, base in current.items():
            maps = _ig_maps(randomised, x, target, base)
            reference = originals["zero" if name == "zero" else "ganmex"]
            ssim = [structural_similarity(reference[i], maps[i], data_range=1.0)
                    for i in range(len(x))]
            out[name].append(float(np.mean(ssim)))
    out = {k: v for k, v in out.items() if v}
    return {"layers_randomised": list(range(1, len(layers) + 1)), "adapt_steps": adapt_steps,
            **{f"{k}_ssim": v for k, v in out.items()},
            **{f"{k}_mean_ssim": float(np.mean(v)) for k, v in out.items()},
            **{k: v for k, v in flips.items() if v}}


def shapes_relevance(generator, n_images: int, adapt_steps: int = 0) -> dict:
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
        out["randomisation"] = randomisation(model, generator, n_images, test.images,
                                             data="shapes", adapt_steps=adapt_steps)
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
    parser.add_argument("--adapt-steps", type=int, default=None,
                        help="steps of adapt_ganmex per randomised model in the regenerated "
                        "randomisation protocol (default 150, --quick 40; 0 skips it)")
    parser.add_argument("--shapes-only", action="store_true",
                        help="only the SyntheticShapes one-vs-one rows")
    parser.add_argument("--digits-only", action="store_true",
                        help="only the digits rows (flip, timing, randomisation)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n_flip, n_rand, n_shapes = (60, 8, 16) if args.quick else (360, 32, 64)
    adapt_steps = args.adapt_steps if args.adapt_steps is not None else (40 if args.quick else 150)
    if adapt_steps < 0:
        parser.error(f"--adapt-steps must be >= 0, got {adapt_steps}")
    if args.shapes_only and args.digits_only:
        parser.error("--shapes-only and --digits-only exclude each other")
    if args.shapes_only:
        shapes = shapes_relevance(_load_generator(args.shapes_generator, "shapes-ganmex"),
                                  n_shapes, adapt_steps)
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
        "randomisation": randomisation(model, generator, n_rand, adapt_steps=adapt_steps),
        "shapes": {"done": False, "why": "--digits-only"} if args.digits_only else
        shapes_relevance(_load_generator(args.shapes_generator, "shapes-ganmex"), n_shapes,
                         adapt_steps),
    }
    out = ROOT / "benchmarks" / "results" / "ganmex.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    f, t, r = results["flip"], results["timing"], results["randomisation"]
    print(
        f"ganmex: flip {f['ganmex_flip']:.3f} over {f['pairs']} pairs (bar 0.90); "
        f"L1 {f['ganmex_l1']:.3f} vs MDTS {f['mdts_l1']:.3f} "
        f"(ratio {f['ganmex_l1'] / f['mdts_l1']:.2f}); randomisation SSIM "
        f"{_randomisation_line(r)}; "
        f"{t['ganmex_ms_per_image']:.2f} ms/img vs MDTS {t['mdts_ms_per_image']:.2f} "
        f"(GANMEX/MDTS {t['ganmex_ms_per_image'] / t['mdts_ms_per_image']:.0f}x); "
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
        line += f"; shapes randomisation SSIM {_randomisation_line(s['randomisation'])}"
    return line


def _randomisation_line(r: dict) -> str:
    line = f"ganmex fixed {r['ganmex_mean_ssim']:.3f}"
    if "ganmex_regenerated_mean_ssim" in r:
        verdict = "met" if r["ganmex_regenerated_mean_ssim"] < r["zero_mean_ssim"] else "not met"
        line += (f", regenerated {r['ganmex_regenerated_mean_ssim']:.3f} (flip under the "
                 f"randomised models {np.mean(r['ganmex_regenerated_flip']):.2f}, {verdict})")
    return line + f" vs zero {r['zero_mean_ssim']:.3f}"


if __name__ == "__main__":
    sys.exit(main())
