"""Reading large JPEGs from an image folder: reduced-scale decode vs the full decode.

``captum_cf.datasets.ImageFolder(root, image_size=S)`` decodes a JPEG larger than 4 S at 1/2 to
1/8 scale (Pillow's draft mode, sides kept >= 2 S) before its antialiased resize and centre
crop. The peer is the full decode followed by the same resize and crop (what the reader did
before, and what torchvision's ``ImageFolder`` loader decodes). Test image: scikit-image's
astronaut enlarged to W x H (default 6000 x 4000, 24 MP), saved as JPEG quality 90. Each mode
reads the image ``--repeat`` times in this process (one thread); the growth of peak RSS
(``VmHWM``, Linux) over one read is measured in a fresh subprocess per mode.

Run: ``OMP_NUM_THREADS=1 python benchmarks/folder_read.py [--size 224] [--repeat 5]``. Writes
``benchmarks/results/folder_read.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image

import captum_cf  # noqa: F401  (first: torchvision next to the CPU torch)
from captum_cf.datasets import ImageFolder
from captum_cf.datasets.folder import _open, _pixels, resize_center_crop

# peak RSS from /proc (VmHWM starts anew at execve; getrusage's ru_maxrss would carry the
# parent's peak over the fork)
_RSS = """
import sys
import captum_cf
from captum_cf.datasets.folder import _open, _pixels, resize_center_crop

def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))

path, size, draft = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
before = hwm()
resize_center_crop(_pixels(_open(path, 2 * size if draft else None), False), size)
print((hwm() - before) / 1024)
"""


def _full(path: str, size: int) -> torch.Tensor:
    return resize_center_crop(_pixels(_open(path), False), size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="--image-size S (default 224)")
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "folder_read.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    import skimage.data

    root = tempfile.mkdtemp()
    for cls in ("a", "b"):
        os.makedirs(os.path.join(root, cls))
    big = Image.fromarray(skimage.data.astronaut()).resize((args.width, args.height))
    path = os.path.join(root, "a", "photo.jpg")
    big.save(path, quality=90)
    big.save(os.path.join(root, "b", "photo.jpg"), quality=90)
    ds = ImageFolder(root, image_size=args.size)

    times: dict[str, list[float]] = {"draft": [], "full": []}
    for _ in range(args.repeat):
        for mode in ("draft", "full"):
            t = time.perf_counter()
            out = ds[0][0] if mode == "draft" else _full(path, args.size)
            times[mode].append(time.perf_counter() - t)
    ours, full = ds[0][0], _full(path, args.size)
    diff = (ours - full).abs()
    rss = {}
    for mode, flag in (("draft", "1"), ("full", "0")):
        res = subprocess.run([sys.executable, "-c", _RSS, path, str(args.size), flag],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        rss[mode] = float(res.stdout.strip().splitlines()[-1])
    result = {
        "image": f"skimage astronaut enlarged to {args.width}x{args.height}, JPEG quality 90",
        "image_size": args.size,
        "repeat": args.repeat,
        "seconds": {m: {"min": min(v), "median": statistics.median(v)} for m, v in times.items()},
        "speedup_median": statistics.median(times["full"]) / statistics.median(times["draft"]),
        "rss_growth_mb": rss,
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
        "shape": list(out.shape),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    s = result["seconds"]
    print(f"folder_read {args.width}x{args.height} JPEG -> {args.size}px: reduced decode "
          f"{s['draft']['median']:.3f} s (min {s['draft']['min']:.3f}) vs full decode "
          f"{s['full']['median']:.3f} s (min {s['full']['min']:.3f}), "
          f"{result['speedup_median']:.1f}x faster; RSS growth {rss['draft']:.0f} vs "
          f"{rss['full']:.0f} MB; mean |diff| {result['mean_abs_diff']:.4f}, "
          f"max {result['max_abs_diff']:.3f}")


if __name__ == "__main__":
    main()
