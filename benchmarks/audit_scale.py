"""The audit at scale on the CPU: images/s, 1 vs 2 processes, the "limit" ratio, peak memory.

Measures, on a generated image folder and a small ResNet-like model (random weights, 3 classes):

1. images/s of the default grid (DEFAULT_METHODS x every baseline available for a user model:
   zero, blur, noise, inpaint-pushpull) at 64 and 224 px, for 1 process and for 2 processes
   under torchrun (gloo), one thread each; the scaling efficiency is
   (images/s of 2) / (2 x images/s of 1). Times are the audits' own (``results.json`` seconds:
   planning, every cell, the store), without the interpreter's start.
2. the "limit" ratio: audit time over the time of the same number of bare model passes. A
   wrapper of the model counts every image it sees, with and without gradients; the bare time is
   those counts times the per-image time of a batched forward (no grad) and forward+backward.
   Measured with the small model at 64 px (default and without ROAD's removal) and with
   torchvision's resnet18 (random weights) at 224 px, the issue's "new user" setting; for the
   latter also against bare passes interleaved with the audit (``--probe-every``), free of the
   machine's drift between the audit and a separate bare phase.
3. peak RSS of ``--n 2000`` vs ``--n 100`` (32 px folder, integrated-gradients x zero, 4 steps):
   streaming keeps memory flat (goal: within 1.3x).
4. peak RSS of the 224 px audit on one full explanation batch (41 images, IG x zero: IG's
   internal batch is the memory peak) with the small model and with torchvision's resnet18,
   and DeepLift x zero with resnet18 (its passes carry inputs and references together).

Writes ``audit_scale.json`` (or ``--json``) and prints a one-line summary. Example::

    OMP_NUM_THREADS=1 python benchmarks/audit_scale.py --n64 8 --n224 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL = '''
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

COUNTS = {"fwd": 0, "grad": 0}
#: seconds inside the model: forward calls, and backward from the output's gradient to the input's
TIMES = {"fwd": 0.0, "bwd": 0.0}
#: bare passes interleaved with the audit (``every``: seconds between two, None: off): a batch of
#: ``batch`` random images through the bare net, no grad, then forward + backward to the images
#: with the net frozen, each the faster of two runs; per-image seconds in ``fwd`` / ``grad``,
#: the probes' total time in ``seconds``
PROBE = {"every": None, "batch": 16, "last": 0.0, "fwd": [], "grad": [], "seconds": 0.0}


def bare_times(net, x, repeats, warm_up=False, sync=lambda: None):
    """Seconds per image of the fastest of ``repeats`` bare passes of the batch ``x`` through
    ``net`` (each after one untimed pass with ``warm_up``; ``sync`` around every timed one, e.g.
    ``torch.cuda.synchronize``): a forward without gradients, and a forward+backward to the
    images with ``net`` frozen, i.e. no parameter gradients, the gradient of one class score
    with respect to the images, as the audit's gradient methods run it."""
    from captum_cf._model_state import frozen

    def fastest(fn):
        if warm_up:
            fn()
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return min(times) / len(x)

    with torch.inference_mode(False):
        with torch.no_grad():
            t_fwd = fastest(lambda: net(x))
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad(), frozen(net):
            t_grad = fastest(lambda: torch.autograd.grad(net(xg)[:, 0].sum(), xg))
    return t_fwd, t_grad


def _probe(net, like):
    """One interleaved bare measurement (CPU), at the shape of the images the audit passes; the
    faster of two passes each (the second has its memory allocated, as the audit's passes)."""
    t_start = time.perf_counter()
    x = torch.rand(PROBE["batch"], *like.shape[1:], dtype=like.dtype)
    t_fwd, t_grad = bare_times(net, x, 2)
    PROBE["fwd"].append(t_fwd)
    PROBE["grad"].append(t_grad)
    PROBE["last"] = time.perf_counter()
    PROBE["seconds"] += PROBE["last"] - t_start


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.r1, self.r2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        y = self.r1(self.b1(self.c1(x)))
        return self.r2(self.b2(self.c2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """A resnet-like classifier: stem, 3 residual stages (16, 32, 64), global pool, 3 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


def make():
    return Counted(SmallResNet()).eval()


def resnet18():
    import torchvision

    return torchvision.models.resnet18(num_classes=3).eval()


class Counted(nn.Module):
    """``net``, counting every image it sees (``COUNTS``: all, and those with gradients) and
    timing it on the CPU (``TIMES``): each forward call, and each backward pass through it (from
    the gradient of its output to the gradient of its input, by tensor hooks, counted once).
    With ``PROBE["every"]`` set, a bare measurement runs before a call at most that often."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if (PROBE["every"] is not None and not x.is_cuda
                and time.perf_counter() - PROBE["last"] >= PROBE["every"]):
            _probe(self.net, x)
        COUNTS["fwd"] += len(x)
        grad = torch.is_grad_enabled() and x.requires_grad
        if grad:
            COUNTS["grad"] += len(x)
        if x.is_cuda:  # asynchronous: timing it would need a sync per call
            return self.net(x)
        t0 = time.perf_counter()
        out = self.net(x)
        TIMES["fwd"] += time.perf_counter() - t0
        if grad and out.requires_grad:
            mark = {}

            def started(g):
                mark.setdefault("t", time.perf_counter())

            def reached_input(g):
                if "t" in mark and "done" not in mark:
                    mark["done"] = True
                    TIMES["bwd"] += time.perf_counter() - mark["t"]

            out.register_hook(started)
            x.register_hook(reached_input)
        return out


def resnet18_counted():
    torch.manual_seed(0)
    return Counted(resnet18()).eval()


def resnet50_counted():
    import torchvision

    torch.manual_seed(0)
    return Counted(torchvision.models.resnet50(num_classes=3)).eval()
'''


def _folder(root: str, n: int, size: int) -> str:
    """``n`` smooth random RGB images of ``size`` px in 3 class folders (generated once)."""
    from PIL import Image

    if os.path.isdir(root) and sum(len(f) for _, _, f in os.walk(root)) >= n:
        return root
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        low = torch.rand(3, 1, 8, 8, generator=gen)
        img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")[:, 0]
        cls = os.path.join(root, f"c{i % 3}")
        os.makedirs(cls, exist_ok=True)
        arr = (img.permute(1, 2, 0).clamp(0, 1) * 255).byte().numpy()
        Image.fromarray(arr).save(os.path.join(cls, f"{i:05d}.png"))
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(args: list[str], procs: int = 1) -> tuple[dict, float]:
    """Run the audit CLI (1 process or torchrun); ``(results.json, peak RSS MB of children)``."""
    if procs == 1:
        cmd = [sys.executable, "-m", "captum_cf", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={procs}", "-m", "captum_cf", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = args[args.index("--out") + 1]
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f), max(rss, before) / 1024


def _grid_speed(work: str, model: str, size: int, n: int, procs: int) -> dict:
    folder = _folder(os.path.join(work, f"img{size}"), n, size)
    out = os.path.join(work, f"out{size}_{procs}")
    # two batches at least, so that 2 processes have one each
    args = ["audit", "--model", model, "--data", folder, "--n-images", str(n),
            "--explain-batch", str(max(1, n // 2)), "--no-progress", "--out", out]
    report, _ = _cli(args, procs)
    seconds = report["seconds"]
    return {"size": size, "n": n, "processes": procs, "seconds": seconds,
            "images_per_s": n / seconds, "cells": len(report["cells"])}


def _limit(work: str, size: int, n: int, removals: list[str] | None = None,
           factory: str = "make", device: str = "cpu", batch=(16, 32),
           warm_size: int | None = None, probe_every: float | None = None) -> dict:
    """In-process audit with counted model passes, then the bare passes' time.

    A 2-image audit runs first, uncounted, so that one-off costs (first imports of the method
    modules, first calls) do not count: at users' scale (thousands of images) they vanish. The
    counted audit explains all ``n`` images in one batch. ``factory``: ``make`` (the small
    ResNet-like model), ``resnet18_counted`` or ``resnet50_counted`` (torchvision's, random
    weights). The bare per-image times are the fastest of 5 batched passes at each batch size of
    ``batch`` (an int or a tuple; on CUDA synchronised), the fastest batch size kept, measured
    before and after the audit, the faster of the two kept: noise on the machine and the batch
    sizes the audit uses make the ratio larger, not smaller.
    ``warm_size``: image size of the warm-up audit (default ``size``; a small one keeps the
    warm-up of a slow 224 px model short: it only has to import and call everything once).
    ``probe_every`` (seconds, CPU): also time bare passes (batches of 16, forward and
    forward+backward) interleaved with the audit about that often, so that the machine's speed
    during the audit itself is the reference: ``limit_ratio_interleaved`` is the audit's time
    without the probes over the counted passes at the probes' mean per-image times (drift
    between the audit and separate bare passes does not enter it)."""
    sys.path.insert(0, work)
    import bench_model  # noqa: E402  (written by main)

    from captum_cf.audit import audit
    from captum_cf.datasets import ImageFolder

    folder = _folder(os.path.join(work, f"img{size}"), max(n, 2), size)
    ds = ImageFolder(folder, files=list(range(n)))
    model = getattr(bench_model, factory)()
    kw = {} if removals is None else {"removals": removals}
    warm = folder if warm_size in (None, size) else _folder(
        os.path.join(work, f"img{warm_size}"), 2, warm_size)
    audit(model, ImageFolder(warm, files=[0, 1]), explain_batch=2, data_name=warm,
          show_progress=False, device=device, **kw)
    before = _bare_times(model, size, batch, device)
    bench_model.COUNTS.update(fwd=0, grad=0)
    bench_model.TIMES.update(fwd=0.0, bwd=0.0)
    probe = bench_model.PROBE
    probe.update(every=probe_every, last=time.perf_counter(), fwd=[], grad=[], seconds=0.0)
    res = audit(model, ds, explain_batch=n, data_name=folder, show_progress=False,
                device=device, **kw)
    probe["every"] = None
    own = res.seconds - probe["seconds"]  # the audit's time without the interleaved probes
    fwd, grad = bench_model.COUNTS["fwd"], bench_model.COUNTS["grad"]
    # on CUDA the wrapper does not time its (asynchronous) calls
    inside = bench_model.TIMES["fwd"] + bench_model.TIMES["bwd"] or math.nan
    after = _bare_times(model, size, batch, device)
    # the fastest of both measurements: load on the machine can only raise the ratio
    t_fwd, t_grad = min(before[0], after[0]), min(before[1], after[1])
    bare = (fwd - grad) * t_fwd + grad * t_grad
    return {"size": size, "n": n, "model": factory, "device": device, "batch": batch,
            "removals": removals or "default",
            "audit_seconds": res.seconds, "audit_seconds_without_probes": own,
            "images_forward": fwd,
            "images_with_grad": grad, "forward_ms_per_image": 1e3 * t_fwd,
            "grad_ms_per_image": 1e3 * t_grad,
            "bare_ms_before_audit": [1e3 * v for v in before],
            "bare_ms_after_audit": [1e3 * v for v in after], "bare_seconds": bare,
            "limit_ratio": own / bare,
            # the ratio's two factors, the first measured in the audit's own time window (the
            # machine's drift between the audit and the bare passes does not enter it)
            "model_seconds_in_audit": inside,
            "model_forward_seconds_in_audit": bench_model.TIMES["fwd"],
            "around_model_ratio": own / inside,
            "passes_over_bare_ratio": inside / bare,
            **_interleaved(probe, own, fwd, grad, inside)}


def _interleaved(probe: dict, own: float, fwd: int, grad: int, inside: float) -> dict:
    """The limit ratio against the bare passes interleaved with the audit (empty when off);
    ``own``: the audit's seconds without the probes."""
    if not probe["fwd"]:
        return {}
    n = len(probe["fwd"])
    t_fwd, t_grad = sum(probe["fwd"]) / n, sum(probe["grad"]) / n
    bare = (fwd - grad) * t_fwd + grad * t_grad
    return {"probes": n, "probe_seconds": probe["seconds"],
            "probe_forward_ms_per_image": [1e3 * v for v in probe["fwd"]],
            "probe_grad_ms_per_image": [1e3 * v for v in probe["grad"]],
            "bare_seconds_interleaved": bare, "limit_ratio_interleaved": own / bare,
            "passes_over_interleaved_bare_ratio": inside / bare}


def _bare_times(model, size: int, batch, device: str) -> tuple[float, float]:
    """Seconds per image of a batched no-grad forward and of a forward+backward to the images
    (the model frozen, as the audit's methods run it: no parameter gradients): the fastest of 5
    passes after a warm-up one at each batch size in ``batch`` (an int or a tuple), the fastest
    batch size kept (the counting wrapper's own cost is included, as in the audit);
    ``bench_model.bare_times`` (imported by ``_limit``) times each batch."""
    import bench_model  # noqa: E402  (written by main, on the path since _limit)

    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    model = model.to(device)
    t_fwd = t_grad = math.inf
    for b in (batch,) if isinstance(batch, int) else batch:
        x = torch.rand(b, 3, size, size, device=device)
        f, g = bench_model.bare_times(model, x, 5, warm_up=True, sync=sync)
        t_fwd, t_grad = min(t_fwd, f), min(t_grad, g)
    return t_fwd, t_grad


def _rss(work: str, model: str, n: int, size: int, extra: list[str],
         method: str = "integrated-gradients") -> float:
    folder = _folder(os.path.join(work, f"img{size}"), n, size)
    out = os.path.join(work, f"rss{size}_{n}")
    args = ["audit", "--model", model, "--data", folder, "--n-images", str(n),
            "--methods", method, "--baselines", "zero", "--steps", "4",
            "--sanity-n", "0", "--no-progress", "--out", out, *extra]
    # each measurement in a fresh child: ru_maxrss of children is the largest child so far,
    # so run the measurement through a small wrapper that reports its own child's peak
    code = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    run = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "captum_cf", *args],
                         env=_env(), capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return int(run.stdout.strip()) / 1024


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n64", type=int, default=8, help="images of the 64 px grid runs")
    p.add_argument("--n224", type=int, default=2, help="images of the 224 px grid runs")
    p.add_argument("--skip", default="",
                   help="comma list of parts to skip: speed,limit,limit224,rss,mem224")
    p.add_argument("--n-limit224", type=int, default=2,
                   help="images of the resnet18 224 px limit run")
    p.add_argument("--probe-every", type=float, default=30.0,
                   help="seconds between bare passes interleaved with the resnet18 224 px "
                        "limit audit (0: none)")
    p.add_argument("--sizes", default="64,224", help="image sizes of the speed runs")
    p.add_argument("--work", default=None, help="folder for generated images (default: temp)")
    p.add_argument("--json", default="audit_scale.json")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    work = a.work or tempfile.mkdtemp(prefix="audit-scale-")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "bench_model.py"), "w") as f:
        f.write(textwrap.dedent(MODEL))
    model = os.path.join(work, "bench_model.py") + ":make"
    torch.set_num_threads(1)
    res: dict = {"threads": 1, "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    if "speed" not in skip:
        sizes = [int(v) for v in a.sizes.split(",")]
        counts = {64: a.n64, 224: a.n224}
        runs = [_grid_speed(work, model, s, counts.get(s, a.n64), k) for s in sizes
                for k in (1, 2)]
        res["speed"] = runs
        res["scaling"] = {
            str(s): next(r for r in runs if r["size"] == s and r["processes"] == 2)["images_per_s"]
            / (2 * next(r for r in runs if r["size"] == s and r["processes"] == 1)["images_per_s"])
            for s in sizes
        }
    if "limit" not in skip:
        res["limit"] = [_limit(work, 64, a.n64),
                        _limit(work, 64, a.n64, ["zero", "blur", "inpaint-pushpull"])]
    if "limit224" not in skip:
        res["limit224"] = _limit(work, 224, a.n_limit224, factory="resnet18_counted",
                                 warm_size=32, probe_every=a.probe_every or None)
    if "rss" not in skip:
        res["rss_mb"] = {str(n): _rss(work, model, n, 32, []) for n in (100, 2000)}
        res["rss_ratio_2000_vs_100"] = res["rss_mb"]["2000"] / res["rss_mb"]["100"]
    if "mem224" not in skip:
        # IG's internal batch (41 images with gradients) and DeepLift's passes (inputs and
        # references together) are the grid's largest passes with gradients
        res["rss_224_mb"] = {
            name: _rss(work, os.path.join(work, "bench_model.py") + f":{fn}", 41, 224, [],
                       method)
            for name, fn, method in (
                ("small-resnet", "make", "integrated-gradients"),
                ("resnet18", "resnet18", "integrated-gradients"),
                ("resnet18 deeplift", "resnet18", "deeplift"),
            )
        }
    res["load_avg_end"] = os.getloadavg()
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2)
    parts = []
    if "speed" in res:
        for r in res["speed"]:
            parts.append(f"{r['size']}px x{r['processes']}: {r['images_per_s']:.2f} img/s")
        parts.append("efficiency " + ", ".join(f"{k}px {v:.2f}" for k, v in res["scaling"].items()))
    if "limit" in res:
        parts.append(f"limit ratio {res['limit'][0]['limit_ratio']:.2f} "
                     f"({res['limit'][1]['limit_ratio']:.2f} without ROAD's removal)")
    if "limit224" in res:
        lim = res["limit224"]
        parts.append(f"limit ratio resnet18 224px {lim['limit_ratio']:.2f} (audit / model time "
                     f"in the audit {lim['around_model_ratio']:.2f} x those passes / bare "
                     f"{lim['passes_over_bare_ratio']:.2f})")
        if "limit_ratio_interleaved" in lim:
            parts.append(f"against {lim['probes']} interleaved bare passes "
                         f"{lim['limit_ratio_interleaved']:.2f}")
    if "rss_mb" in res:
        parts.append(f"RSS n=2000/n=100 {res['rss_ratio_2000_vs_100']:.2f}")
    if "rss_224_mb" in res:
        parts.append(", ".join(f"224px {k} {v:.0f} MB" for k, v in res["rss_224_mb"].items()))
    print("audit_scale: " + "; ".join(parts))
    return res


if __name__ == "__main__":
    main()
