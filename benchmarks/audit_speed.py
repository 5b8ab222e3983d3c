"""CPU time of the default ``captum-cf audit`` (digits) before and after the removals of issue 15.

Runs the command line in fresh processes (one thread each, ``OMP_NUM_THREADS=1``) and reads each
child's CPU time (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``), start-up included:

* ``after``: this tree's default audit: MoRF, LeRF and SRG under four removals (zero, blur,
  push-pull inpainting, ROAD's noisy linear imputation), R-OMS once;
* ``after --removals zero``: this tree with one removal (the passes the old deletion/insertion
  pair cost, plus R-OMS);
* ``before`` (``--before REV``, default the commit before the removals): that revision's tree,
  exported with ``git archive`` into a temporary folder, same command: RISE deletion and
  insertion only.

Each configuration runs ``--repeat`` times, alternating, and its minimum CPU time counts (the
machine may be shared: CPU time grows with contention). The goal is ``after / before <= 1.5``.
Writes ``audit_speed.json`` (or ``--json``) and prints a
one-line summary. Example::

    OMP_NUM_THREADS=1 python benchmarks/audit_speed.py --n 32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the last commit whose audit scored RISE deletion/insertion only (the base of issue 15)
BEFORE = "f4f9fa0"


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(root: str, extra: list[str], n: int, out: str) -> dict[str, float]:
    """One ``python -m captum_cf audit`` in ``root``: CPU seconds, wall seconds, audit seconds."""
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "captum_cf", "audit", "--n", str(n), "--no-progress",
           "--out", out, *extra]
    cpu0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        seconds = json.load(f)["seconds"]
    return {"cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "audit_s": seconds}


def export(rev: str, into: str) -> str:
    """``git archive rev`` of this repository unpacked into ``into``."""
    os.makedirs(into, exist_ok=True)
    data = subprocess.run(["git", "-C", ROOT, "archive", rev], capture_output=True, check=True)
    path = os.path.join(into, "tar")
    with open(path, "wb") as f:
        f.write(data.stdout)
    with tarfile.open(path) as t:
        t.extractall(into, filter="data")
    os.remove(path)
    return into


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=32, help="images (default 32, the CLI's default)")
    p.add_argument("--before", default=BEFORE, help="revision of the 'before' audit ('' skips)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs of each, alternating before/after; the minimum CPU time counts")
    p.add_argument("--zero", action="store_true", help="also time --removals zero (once)")
    p.add_argument("--json", default="audit_speed.json")
    args = p.parse_args()
    out: dict[str, object] = {"n": args.n, "before_rev": args.before, "load": os.getloadavg()}
    runs: dict[str, list[dict[str, float]]] = {"after": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = export(args.before, os.path.join(tmp, "before")) if args.before else None
        for k in range(args.repeat):
            runs["after"].append(run(ROOT, [], args.n, os.path.join(tmp, f"a{k}")))
            print("after:", runs["after"][-1], flush=True)
            if old is not None:
                runs["before"].append(run(old, [], args.n, os.path.join(tmp, f"b{k}")))
                print("before:", runs["before"][-1], flush=True)
        if args.zero or old is None:
            out["after_removals_zero"] = run(ROOT, ["--removals", "zero"], args.n,
                                             os.path.join(tmp, "z"))
    out["runs"] = runs
    out["load_after"] = os.getloadavg()
    best = {k: min(v, key=lambda r: r["cpu_s"]) for k, v in runs.items() if v}
    out.update(best)
    base_name = "before" if "before" in best else "after_removals_zero"
    base = out[base_name]
    ratio = best["after"]["cpu_s"] / base["cpu_s"]  # type: ignore[index]
    out["ratio_cpu"] = round(ratio, 2)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(
        f"default audit on {args.n} digits, min CPU of {args.repeat} runs: "
        f"{best['after']['cpu_s']} s after (4 removals) vs {base['cpu_s']} s {base_name}: "  # type: ignore[index]
        f"{ratio:.2f}x (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
