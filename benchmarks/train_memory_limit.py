"""Training from a memory-mapped ``--cache-dir`` under a memory limit smaller than the set.

``--cache-dir`` returns a folder's training set memory-mapped from its cache file (copy-on-write),
and the README says that such a set need not fit in memory: its pages are page cache, which the
operating system drops and reads again under memory pressure, where a set held in the process's
own memory gets the process killed. Measured here with a Linux memory cgroup (v1,
``memory.limit_in_bytes``; no swap on this machine), each run in a fresh subprocess:

* ``base``: the same training on the first 64 images, held (the process without the set): its
  anonymous memory (``RssAnon``, what cannot be dropped) sets the limit, ``base + --share x the
  set's bytes``, which leaves the file pages (the set's and the libraries' code) that share;
* ``held``: the set copied into the process's memory (what a trainer holds without
  ``--cache-dir``), then the training;
* ``mapped``: the set as ``folder_images(..., cache_dir=...)`` returns it (the map), then the
  training; the trainer advises the kernel of random reads (``MADV_RANDOM``) because the set is
  larger than half the memory available to it;
* ``mapped-readahead`` (the peer): the same without that advice (the kernel's default reads
  the read-ahead window, 8 MB here, around each page a batch touches).

And without a limit (the set fits), what the advice would cost there: ``mapped`` (the rule
leaves the default read-ahead) vs ``mapped-random`` (the advice forced), the file's pages cold.

The training: ``ClassifierTrainer`` (the zoo classifier's loop), a small CNN, ``--epochs`` epochs
of batches of 64, one thread. Before each run the cache file's pages are dropped from the page
cache (``posix_fadvise(DONTNEED)``) so that the run reads them itself and they count against its
limit. Recorded per run: exit status (-9: killed by the cgroup's out-of-memory killer), seconds,
the cgroup's peak usage, anonymous memory at the end, bytes read from storage
(``/proc/self/io`` ``read_bytes``; more than the set's bytes means pages were dropped and read
again).

The folder is generated: ``--n`` RGB JPEGs (sides around 1.2 S, seeded) in 4 class folders.

Run (root, Linux with a writable cgroup v1 memory hierarchy):
``OMP_NUM_THREADS=1 python benchmarks/train_memory_limit.py [--n 6000] [--size 128]``.
Writes ``benchmarks/results/train_memory_limit.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

import captum_cf  # noqa: F401  (first: torchvision next to the CPU torch)
from captum_cf.training.data import folder_images

_CHILD = """
import sys, time
import torch
from torch import nn
import captum_cf
from captum_cf.training.data import folder_images
from captum_cf.zoo.train import ClassifierTrainer

mode, root, size, cache, epochs = sys.argv[1:6]
torch.set_num_threads(1)
if mode == "mapped-readahead":  # the map without the random-read advice (the peer)
    captum_cf.training.data.available_memory = lambda: None
elif mode == "mapped-random":  # the advice whatever the memory
    captum_cf.training.data.available_memory = lambda: 0
x, y, _ = folder_images(root, int(size), dtype=torch.uint8, cache_dir=cache)
if mode == "held":  # the set in the process's own memory, as without --cache-dir
    x = x.clone()
elif mode == "base":
    x, y = x[:64].clone(), y[:64]
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                      nn.Flatten(), nn.Linear(128, int(y.max()) + 1))
trainer = ClassifierTrainer(model, x, y, epochs=int(epochs), batch_size=64, max_shift=0)
began = time.perf_counter()
trainer.fit(trainer.total_steps, show_progress=False)
seconds = time.perf_counter() - began
with open("/proc/self/status") as f:
    anon = next(int(line.split()[1]) for line in f if line.startswith("RssAnon"))
with open("/proc/self/io") as f:
    read = next(int(line.split()[1]) for line in f if line.startswith("read_bytes"))
print("done", trainer.total_steps, seconds, anon, read, trainer.epoch_losses[-1])
"""


def _memory_cgroup() -> str:
    """This process's cgroup v1 memory folder."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.strip().split(":", 2)
            if "memory" in controllers.split(","):
                return os.path.join("/sys/fs/cgroup/memory", path.lstrip("/"))
    raise RuntimeError("no cgroup v1 memory controller for this process")


def _drop_page_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _run(mode: str, args: argparse.Namespace, root: str, cache: str, cache_file: str,
         limit: int | None) -> dict:
    group = os.path.join(_memory_cgroup(), f"captum_cf_bench_{os.getpid()}_{mode}")
    os.mkdir(group)
    try:
        if limit is not None:
            with open(os.path.join(group, "memory.limit_in_bytes"), "w") as f:
                f.write(str(limit))
        _drop_page_cache(cache_file)
        script = os.path.join(root, "child.py")
        with open(script, "w") as f:
            f.write(_CHILD)
        cmd = (f'echo $$ > {group}/cgroup.procs && exec "{sys.executable}" {script} {mode} '
               f"{root} {args.size} {cache} {args.epochs}")
        res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        with open(os.path.join(group, "memory.max_usage_in_bytes")) as f:
            peak = int(f.read())
        row = {"mode": mode, "limit_mb": None if limit is None else round(limit / 2**20, 1),
               "returncode": res.returncode, "peak_cgroup_mb": round(peak / 2**20, 1)}
        line = next((x for x in res.stdout.splitlines() if x.startswith("done")), None)
        if line is not None:
            _, steps, seconds, anon, read, loss = line.split()
            row.update(steps=int(steps), seconds=round(float(seconds), 2),
                       anonymous_mb=round(int(anon) / 1024, 1),
                       read_from_disk_mb=round(int(read) / 2**20, 1),
                       last_epoch_loss=round(float(loss), 4))
        else:
            row["stderr_tail"] = res.stderr.strip().splitlines()[-1:] or ["(killed)"]
        return row
    finally:
        try:
            with open(os.path.join(group, "memory.force_empty"), "w") as f:
                f.write("0")
        except OSError:
            pass
        os.rmdir(group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="images in the folder")
    parser.add_argument("--size", type=int, default=128, help="--image-size S")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--share", type=float, default=0.5,
                        help="the limit leaves this share of the set's bytes above the base")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "train_memory_limit.json"))
    args = parser.parse_args()
    try:
        _memory_cgroup()
    except (OSError, RuntimeError) as err:
        sys.exit(f"train_memory_limit needs a writable cgroup v1 memory hierarchy: {err}")
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(__file__))
    from train_data_memory import _make_folder

    root, cache = tempfile.mkdtemp(), tempfile.mkdtemp()
    try:
        _make_folder(root, args.n, args.size)
        x, _, _ = folder_images(root, args.size, dtype=torch.uint8, cache_dir=cache)
        set_bytes = x.numel() * x.element_size()
        cache_file = x._cache_file
        del x
        base = _run("base", args, root, cache, cache_file, None)
        limit = int(base["anonymous_mb"] * 2**20 + args.share * set_bytes)
        rows = [base] + [_run(mode, args, root, cache, cache_file, limit)
                         for mode in ("held", "mapped-readahead", "mapped")]
        free = [_run(mode, args, root, cache, cache_file, None)
                for mode in ("mapped", "mapped-random")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    result = {"folder": f"{args.n} generated RGB JPEGs, 4 classes, at {args.size} px",
              "set_mb": round(set_bytes / 2**20, 1), "epochs": args.epochs,
              "limit": f"base anonymous memory + {args.share} x the set",
              "cpu_count": os.cpu_count(), "runs": rows, "runs_without_limit": free}
    slow, fast = rows[2], rows[3]
    if "seconds" in fast and "seconds" in slow:
        result["readahead_over_random"] = {
            "seconds": round(slow["seconds"] / fast["seconds"], 2),
            "read_from_disk": round(slow["read_from_disk_mb"] / fast["read_from_disk_mb"], 1)}
    result["random_over_readahead_without_limit"] = round(free[1]["seconds"]
                                                          / free[0]["seconds"], 2)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    def say(r: dict) -> str:
        if "seconds" not in r:
            return f"{r['mode']} killed (exit {r['returncode']}, peak {r['peak_cgroup_mb']} MB)"
        return (f"{r['mode']} trained {r['steps']} steps in {r['seconds']} s (peak "
                f"{r['peak_cgroup_mb']} MB, anonymous {r['anonymous_mb']} MB, "
                f"{r['read_from_disk_mb']} MB read from disk)")

    ratio = result.get("readahead_over_random")
    print(f"train_memory_limit {args.n} images at {args.size} px ({result['set_mb']} MB), "
          f"limit {rows[1]['limit_mb']} MB (base {base['anonymous_mb']} MB + "
          f"{args.share} x set): " + "; ".join(say(r) for r in rows)
          + (f"; MADV_RANDOM {ratio['seconds']}x faster, {ratio['read_from_disk']}x less read"
             if ratio else "")
          + f"; without a limit: {free[0]['seconds']} s with read-ahead, {free[1]['seconds']} s "
          f"with MADV_RANDOM forced ({result['random_over_readahead_without_limit']}x)")


if __name__ == "__main__":
    main()
