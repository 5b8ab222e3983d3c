"""Push-pull inpainting: speed and hole error against scikit-image's biharmonic inpainting.

Both fill the same random rectangular holes in SyntheticShapes images (64 images 64x64 RGB,
or 16 with --quick). Reported: CPU seconds per batch on one thread (``time.process_time``,
median of repeats: stable on a shared machine where wall time is not) and the mean absolute error
inside the holes against the original pixels; the grey fill (0.5) is the floor to beat.
Writes benchmarks/results/push_pull.json and prints one summary line.

    OMP_NUM_THREADS=1 python benchmarks/push_pull.py [--quick]
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

from captum_cf.datasets import SyntheticShapes
from captum_cf.inpainters import PushPullInpainter


def _holes(n: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    hole = torch.zeros(n, 1, size, size)
    for i in range(n):
        h, w = (torch.randint(size // 8, size // 3, (2,), generator=gen)).tolist()
        y, x = torch.randint(0, size - h, (1,), generator=gen).item(), torch.randint(
            0, size - w, (1,), generator=gen
        ).item()
        hole[i, :, y : y + h, x : x + w] = 1
    return hole


def _timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), out


def _biharmonic(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    outs = []
    for img, h in zip(images.numpy(), hole.numpy()):
        out = inpaint_biharmonic(img.transpose(1, 2, 0), h[0].astype(bool), channel_axis=-1)
        outs.append(out.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(outs)).float()


def _hole_mae(out: torch.Tensor, images: torch.Tensor, hole: torch.Tensor) -> float:
    mask = hole.expand_as(images).bool()
    return float((out - images).abs()[mask].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 images, fewer repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, repeats = (16, 3) if args.quick else (64, 10)
    images = SyntheticShapes(n, size=64, seed=123).images.float()
    hole = _holes(n, 64, seed=0)
    pp = PushPullInpainter()
    with torch.no_grad():
        pp(images, hole)  # warm-up
        t_pp, out_pp = _timed(lambda: pp(images, hole), repeats)
    t_bh, out_bh = _timed(lambda: _biharmonic(images, hole), 1)
    result = {
        "images": n, "size": 64, "threads": 1,
        "push_pull_s": t_pp, "biharmonic_s": t_bh, "speedup": t_bh / t_pp,
        "mae_push_pull": _hole_mae(out_pp, images, hole),
        "mae_biharmonic": _hole_mae(out_bh, images, hole),
        "mae_grey": _hole_mae(torch.full_like(images, 0.5), images, hole),
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "push_pull.json").write_text(json.dumps(result, indent=2))
    print(
        f"push_pull: {n} images 64x64: {t_pp * 1e3:.1f} ms CPU vs biharmonic {t_bh * 1e3:.0f} ms "
        f"({result['speedup']:.0f}x faster); hole MAE {result['mae_push_pull']:.4f} vs "
        f"biharmonic {result['mae_biharmonic']:.4f} (ratio "
        f"{result['mae_push_pull'] / result['mae_biharmonic']:.2f}), grey {result['mae_grey']:.4f}"
    )


if __name__ == "__main__":
    main()
