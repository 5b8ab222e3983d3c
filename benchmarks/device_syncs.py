"""Device-to-host reads of the default audit, counted on the simulated device (no GPU needed).

A read of a device tensor by the host (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``, or
``.cpu()``) makes a CUDA stream wait. The audit runs on ``tests/simulated_device.py``, which
labels CPU data with another device and applies CUDA's placement rules; every such read is
counted and attributed to the innermost ``captum_cf`` or ``captum`` source line. The counts are
exact and machine independent (they do not depend on timing).

Run: ``python benchmarks/device_syncs.py [--n 4]``. Writes ``benchmarks/results/device_syncs.json``
and prints one summary line.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import simulated_device as sim  # noqa: E402

from captum_cf import zoo  # noqa: E402
from captum_cf.audit import audit  # noqa: E402
from captum_cf.datasets import load_digits  # noqa: E402


def _source_line() -> str:
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace(os.sep, "/")
        for root in ("captum_cf/", "captum/"):
            if f"/{root}" in path and "simulated_device" not in path:
                return f"{root}{path.split(f'/{root}', 1)[1]}:{frame.lineno}"
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="test digits (default 4)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = zoo.load("digits-cnn")
    x = load_digits("test").tensors[0][: args.n]
    reads: collections.Counter[tuple[str, str]] = collections.Counter()

    def record(kind: str) -> None:
        reads[(kind, _source_line())] += 1

    sim.HOST_READ_HOOK = record
    try:
        with sim.simulated_device() as device:
            result = audit(model, x, data_name="digits", train_data=load_digits("train"),
                           device=device, n_examples=0)
    finally:
        sim.HOST_READ_HOOK = None
    cells = len(result.cells)
    total = {kind: sum(v for (k, _), v in reads.items() if k == kind) for kind in ("scalar",
                                                                                  "tensor")}
    by_captum = sum(v for (_, line), v in reads.items() if line.startswith("captum/"))
    out = {
        "images": args.n, "cells": cells, "reads": total, "captums_own": by_captum,
        "per_cell_and_image": (total["scalar"] + total["tensor"]) / (cells * args.n),
        "top": [{"kind": k, "line": line, "count": v} for (k, line), v in reads.most_common(15)],
    }
    path = os.path.join(os.path.dirname(__file__), "results", "device_syncs.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    top = out["top"][0]
    print(f"device_syncs: {args.n} images x {cells} cells: {total['scalar']} scalar reads, "
          f"{total['tensor']} tensor copies to the host ({out['per_cell_and_image']:.1f} per cell "
          f"and image; {by_captum} inside Captum); most from {top['line']} ({top['count']})")


if __name__ == "__main__":
    main()
