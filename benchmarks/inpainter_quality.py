"""Learned inpainter quality: hole L1 of the zoo inpainters vs push-pull vs mean-colour fill.

For digits (``load_digits('test')``, 360 images 1x32x32) and shapes (``SyntheticShapes(500,
size=64, seed=1)``, never used in training), every image gets random holes covering 10-25 % of
it (free-form strokes and boxes, ``random_holes`` with a fixed seed; ``--seeds`` repeats with other
hole seeds). Reported: the mean absolute error inside the holes of the learned zoo inpainter,
``PushPullInpainter``, ``BiharmonicInpainter`` (the learned shapes inpainter's prefill) and the
mean-colour fill (mean colour of each image's known pixels), their
ratios (bar: learned <= 0.8 x push-pull <= 0.8 x mean-colour), scikit-image's biharmonic
inpainting as a slow classical reference, and the CPU time on one thread of
one batch of 32 images for each inpainter and for the data set's zoo classifier (median of
repeats, ``time.process_time``: stable on a shared machine). Writes
benchmarks/results/inpainter_quality.json and prints one summary line.

    OMP_NUM_THREADS=1 python benchmarks/inpainter_quality.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from captum_cf import zoo
from captum_cf.inpainters import BiharmonicInpainter, PushPullInpainter, random_holes
from captum_cf.zoo.inpainters import inpainter_data, inpainter_quality

BAR = 0.8


def _biharmonic(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """scikit-image's biharmonic inpainting, image by image (a slow classical reference)."""
    outs = [inpaint_biharmonic(img.transpose(1, 2, 0), h[0] > 0.5, channel_axis=-1)
            for img, h in zip(images.numpy(), hole.numpy())]
    return torch.from_numpy(np.stack(outs).transpose(0, 3, 1, 2)).float()


def _cpu_ms(fn, repeats: int) -> float:
    with torch.no_grad():
        fn()
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def _one(data: str, n: int | None, seeds: list[int], repeats: int) -> dict:
    _, test, desc = inpainter_data(data)
    test = test[:n] if n else test
    learned = zoo.load(f"{data}-inpainter")
    fns = {"learned": learned, "push-pull": PushPullInpainter(),
           "biharmonic (ours)": BiharmonicInpainter()}
    with_reference = {**fns, "biharmonic (skimage)": _biharmonic}
    per_seed = [inpainter_quality(with_reference, test, seed=s) for s in seeds]
    l1 = {k: statistics.mean(r[k] for r in per_seed) for k in per_seed[0]}
    batch = test[:32]
    hole = random_holes(len(batch), *batch.shape[-2:], coverage=(0.1, 0.25),
                        generator=torch.Generator().manual_seed(0))
    times = {name: _cpu_ms(lambda f=f: f(batch, hole), repeats) for name, f in fns.items()}
    clf_name = f"{data}-cnn"
    if clf_name in zoo.available() and zoo.entry(clf_name).path.is_file():
        clf = zoo.load(clf_name)
        times[clf_name] = _cpu_ms(lambda: clf(batch), repeats)
    return {
        "data": desc, "images": len(test), "hole_seeds": seeds, "coverage": [0.10, 0.25],
        "hole_l1": l1, "hole_l1_per_seed": per_seed,
        "ratio_learned_pushpull": l1["learned"] / l1["push-pull"],
        "ratio_pushpull_mean_colour": l1["push-pull"] / l1["mean-colour"],
        "bar_met": l1["learned"] <= BAR * l1["push-pull"]
        and l1["push-pull"] <= BAR * l1["mean-colour"],
        "cpu_ms_batch32": times,
        "learned_params": sum(p.numel() for p in learned.parameters()),
        "weights_bytes": zoo.entry(f"{data}-inpainter").path.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 images per set, one hole seed")
    parser.add_argument("--seeds", type=int, default=3, help="hole seeds (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, seeds, repeats = (100, [0], 3) if args.quick else (None, list(range(args.seeds)), 10)
    results = {"threads": 1, "bar": BAR, "quick": args.quick,
               "sets": {data: _one(data, n, seeds, repeats) for data in ("digits", "shapes")}}
    out = Path(__file__).resolve().parent / "results" / "inpainter_quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    parts = []
    for data, r in results["sets"].items():
        l1, t = r["hole_l1"], r["cpu_ms_batch32"]
        parts.append(
            f"{data}: hole L1 learned {l1['learned']:.4f} / push-pull {l1['push-pull']:.4f} / "
            f"mean-colour {l1['mean-colour']:.4f} (biharmonic ours {l1['biharmonic (ours)']:.4f}, "
            f"skimage {l1['biharmonic (skimage)']:.4f}; "
            f"ratios {r['ratio_learned_pushpull']:.2f}, "
            f"{r['ratio_pushpull_mean_colour']:.2f}; bar {'met' if r['bar_met'] else 'MISSED'}); "
            f"batch-32 CPU ms learned {t['learned']:.0f}, push-pull {t['push-pull']:.0f}, "
            f"biharmonic {t['biharmonic (ours)']:.0f}"
            + (f", {data}-cnn {t[f'{data}-cnn']:.0f}" if f"{data}-cnn" in t else "")
        )
    print("inpainter_quality | " + " | ".join(parts) + f" -> {out}")


if __name__ == "__main__":
    main()
