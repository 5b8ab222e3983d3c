"""Memory of a trainer's image-folder training set: uint8 split decode vs the float32 reader.

``captum-cf train ... --data DIR`` decodes the folder once and holds it in memory (trainers draw
random batches, GANMEX real images of a given class, many times per epoch). Measured here, each
in a fresh subprocess, the growth of peak RSS (``VmHWM``, Linux) while
:func:`captum_cf.training.data.folder_split` builds the training and held-out tensors:

* ``uint8``: what the trainers use now (``dtype=torch.uint8``: each split decoded into one
  preallocated tensor, ``N x C x S x S`` bytes);
* ``float32``: the same reader with ``dtype=torch.float32`` (4 bytes per value);
* ``float32-cat`` (the peer, the reader before this change, reproduced here): float batches
  collected in a list, concatenated, and the held-out share taken by indexing (copies);
* ``uint8-mapped``: with ``cache_dir``: decoded into the cache file and memory-mapped from it.

After reading, every image is read once (an epoch), and the growth of anonymous memory
(``RssAnon``: what the process holds that the system cannot drop; file-backed pages of a mapped
cache are page cache, dropped and read again under memory pressure) is recorded too.

The folder is generated: ``--n`` RGB JPEGs (quality 90) of random sizes around 1.2 S, in 4 class
folders, seeded. Decoding time of the whole folder with ``--workers`` decoding processes vs
one process is timed in this process, and under ``torchrun --nproc-per-node 2`` (the two
processes share the decode and exchange the parts; rank 0's time), ``--repeat`` times each (the
machine's cores bound the gain); and with ``cache_dir``: the first read (decode and write the
``.npy``) and the next one (read from the cache).

Run: ``OMP_NUM_THREADS=1 python benchmarks/train_data_memory.py [--n 2000] [--size 128]``.
Writes ``benchmarks/results/train_data_memory.json`` and prints one summary line.
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

import numpy as np
import torch
from PIL import Image

import captum_cf  # noqa: F401  (first: torchvision next to the CPU torch)
from captum_cf.training.data import folder_images

_RSS = """
import sys
import torch
import captum_cf
from torch.utils.data import DataLoader
from captum_cf.datasets import ImageFolder
from captum_cf.training.data import folder_split

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))

root, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
before, anon = status("VmHWM"), status("RssAnon")
if mode == "float32-cat":  # the reader before: list of float batches, cat, index the split
    ds = ImageFolder(root, size)
    parts = [b[0].float() for b in DataLoader(ds, batch_size=64, shuffle=False)]
    images = torch.cat(parts)
    del parts
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = int(round(0.2 * len(images)))
    x_tr, x_te = images[order[n_test:]], images[order[:n_test]]
elif mode == "uint8-mapped":  # decoded into the cache file and mapped from it
    x_tr, _, x_te, _, _ = folder_split(root, size, dtype=torch.uint8, cache_dir=sys.argv[4])
else:
    x_tr, _, x_te, _, _ = folder_split(root, size, dtype=getattr(torch, mode))
for x in (x_tr, x_te):  # an epoch reads every image
    max(int(x[i : i + 256].max()) for i in range(0, len(x), 256))
print((status("VmHWM") - before) / 1024, (x_tr.numel() * x_tr.element_size()
                                         + x_te.numel() * x_te.element_size()) / 2**20,
      (status("RssAnon") - anon) / 1024)
"""

# rank 0 times folder_images under torchrun (the processes share the decode)
_SHARED = """
import sys, time
import torch
import captum_cf
from captum_cf.training.data import folder_images
from captum_cf.training.distributed import distributed_context

torch.set_num_threads(1)
context = distributed_context()
context.barrier()
t = time.perf_counter()
x, _, _ = folder_images(sys.argv[1], int(sys.argv[2]), dtype=torch.uint8)
seconds = time.perf_counter() - t
if context.is_main:
    print("seconds", seconds, tuple(x.shape))
"""


def _make_folder(root: str, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = os.path.join(root, f"class{i % 4}")
        os.makedirs(cls, exist_ok=True)
        h, w = (int(size * rng.uniform(1.1, 1.5)) for _ in range(2))
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BILINEAR)  # smooth, JPEG-like content
        img.save(os.path.join(cls, f"{i:05d}.jpg"), quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images in the folder")
    parser.add_argument("--size", type=int, default=128, help="--image-size S")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes timed")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "train_data_memory.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = tempfile.mkdtemp()
    _make_folder(root, args.n, args.size)

    rss, held, anon = {}, {}, {}
    for mode in ("uint8", "float32", "float32-cat", "uint8-mapped"):
        res = subprocess.run([sys.executable, "-c", _RSS, root, str(args.size), mode,
                              tempfile.mkdtemp()],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        grown, size_mb, anon_mb = res.stdout.strip().splitlines()[-1].split()
        rss[mode], held[mode], anon[mode] = float(grown), float(size_mb), float(anon_mb)

    times: dict[str, list[float]] = {"workers_0": [], f"workers_{args.workers}": []}
    for _ in range(args.repeat):
        for workers in (0, args.workers):
            t = time.perf_counter()
            folder_images(root, args.size, dtype=torch.uint8, workers=workers)
            times[f"workers_{workers}"].append(time.perf_counter() - t)
    cache = tempfile.mkdtemp()
    times["cache_first"], times["cache_again"] = [], []
    for _ in range(args.repeat):
        for f in os.listdir(cache):
            os.remove(os.path.join(cache, f))
        for key in ("cache_first", "cache_again"):
            t = time.perf_counter()
            folder_images(root, args.size, dtype=torch.uint8, cache_dir=cache)
            times[key].append(time.perf_counter() - t)
    script = os.path.join(root, "shared_decode.py")
    with open(script, "w") as f:
        f.write(_SHARED)
    times["torchrun_2"] = []
    for _ in range(args.repeat):
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc-per-node", "2", script, root, str(args.size)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        line = next(x for x in res.stdout.splitlines() if x.startswith("seconds"))
        times["torchrun_2"].append(float(line.split()[1]))
    key = f"workers_{args.workers}"
    result = {
        "folder": f"{args.n} generated RGB JPEGs (quality 90, sides 1.1-1.5 S, seed 0), "
                  "4 classes, held-out share 0.2",
        "image_size": args.size,
        "cpu_count": os.cpu_count(),
        "rss_growth_mb": rss,
        "tensors_mb": held,
        "anonymous_memory_growth_mb": anon,
        "ratio_peer_over_uint8": rss["float32-cat"] / rss["uint8"],
        "decode_seconds": {k: {"min": min(v), "median": statistics.median(v)}
                           for k, v in times.items()},
        "decode_speedup_median": statistics.median(times["workers_0"])
        / statistics.median(times[key]),
        "torchrun_2_speedup_median": statistics.median(times["workers_0"])
        / statistics.median(times["torchrun_2"]),
        "cache_speedup_median": statistics.median(times["workers_0"])
        / statistics.median(times["cache_again"]),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    d = result["decode_seconds"]
    print(f"train_data_memory {args.n} images at {args.size}px: peak RSS growth uint8 "
          f"{rss['uint8']:.0f} MB (tensors {held['uint8']:.0f}), float32 {rss['float32']:.0f} "
          f"MB, float32-cat (before) {rss['float32-cat']:.0f} MB: "
          f"{result['ratio_peer_over_uint8']:.1f}x less; held as anonymous memory after an "
          f"epoch: uint8 {anon['uint8']:.0f} MB, mapped from --cache-dir "
          f"{anon['uint8-mapped']:.0f} MB; decode {d['workers_0']['median']:.1f} s "
          f"with 0 workers vs {d[key]['median']:.1f} s with {args.workers} "
          f"({result['decode_speedup_median']:.2f}x) or shared by 2 torchrun processes "
          f"{d['torchrun_2']['median']:.1f} s ({result['torchrun_2_speedup_median']:.2f}x), "
          f"{os.cpu_count()} cores; --cache-dir: first read {d['cache_first']['median']:.1f} s, "
          f"again {d['cache_again']['median']:.3f} s ({result['cache_speedup_median']:.0f}x)")


if __name__ == "__main__":
    main()
