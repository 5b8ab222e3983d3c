"""torchrun: 2 CPU processes (gloo) give the single-process report; a failing rank stops all."""

from __future__ import annotations

import subprocess

from audit_helpers import PYTHON, report_values, subprocess_env

from captum_cf.audit.distributed import in_torchrun
from captum_cf.cli import main


def _argv(model: str, root, out, *extra: str) -> list[str]:
    # --n-images, not --n: torchrun would read --n as an abbreviation of its own options
    return [
        "audit",
        "--model",
        model,
        "--data",
        str(root),
        "--n-images",
        "all",
        "--image-size",
        "16",
        "--explain-batch",
        "2",
        "--methods",
        "integrated-gradients",
        "--baselines",
        "zero",
        "--steps",
        "3",
        "--sanity-n",
        "3",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _torchrun(argv: list[str]) -> subprocess.CompletedProcess:
    cmd = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "captum_cf",
        *argv,
    ]
    return subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=150)


def test_two_processes_equal_one_and_a_failing_rank_stops_all_then_resume(
    tmp_path, image_folder, model_file, capsys
) -> None:
    assert not in_torchrun()
    root = image_folder(n_per_class=10)  # 20 images, batches of 2: batch k on rank k % 2
    model = model_file()
    assert main(_argv(model, root, tmp_path / "single")) == 0
    capsys.readouterr()
    last = root / "b" / "09.png"  # image 19, batch 9: rank 1's fifth batch
    good = last.read_bytes()
    # its header reads (every header is checked before any work, a file that is not an image
    # stops every rank there), its pixels do not: rank 1 fails part-way through its batches
    last.write_bytes(good[:60])
    out = tmp_path / "dist"
    run = _torchrun(_argv(model, root, out))
    assert run.returncode != 0
    assert "rank 1 failed: AuditInputError: cannot read image" in run.stderr
    assert "09.png" in run.stderr and "resume with --resume" in run.stderr
    # rank 0 speaks for all: rank 1 does not print its own failure a second time
    assert run.stderr.count("cannot read image") == 1, run.stderr[-3000:]
    assert not out.exists() and (tmp_path / "dist.sqlite").exists()
    last.write_bytes(good)
    run = _torchrun(_argv(model, root, out, "--resume"))
    assert run.returncode == 0, run.stderr[-2000:]
    dist, single = report_values(out), report_values(tmp_path / "single")
    assert [im["id"] for im in dist["images"]] == [
        f"{c}/{i:02d}.png" for c in "ab" for i in range(10)
    ]
    assert dist == single  # same batches, same seeds: equal, not only close
    # a refused resume (another --steps; every rank learns it from rank 0): said once
    other = _argv(model, root, out, "--resume")
    other[other.index("--steps") + 1] = "4"
    run = _torchrun(other)
    assert run.returncode != 0 and run.stderr.count("cannot resume") == 1, run.stderr[-3000:]


HANGING_MODEL = """
import os
import time

import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 3)

    def forward(self, x):
        if os.environ.get("RANK") == "1":
            time.sleep(600)  # a stuck read: neither answers nor dies
        return self.fc(x.flatten(1))


def make():
    return Net()
"""


def test_a_rank_that_hangs_stops_the_others_after_dist_timeout_in_one_line(
    tmp_path, image_folder
) -> None:
    root = image_folder(n_per_class=2)
    net = tmp_path / "hanging.py"
    net.write_text(HANGING_MODEL)
    run = _torchrun(_argv(f"{net}:make", root, tmp_path / "out", "--dist-timeout", "0.1"))
    assert run.returncode != 0
    assert ("captum-cf: error: rank 0: no answer from another process within --dist-timeout "
            "0.1 minutes" in run.stderr), run.stderr[-3000:]
    assert "[rank0]: Traceback" not in run.stderr, run.stderr[-3000:]


def test_dist_timeout_must_be_positive(tmp_path, capsys) -> None:
    for bad in ("0", "-1", "nan", "inf", "1e12"):
        assert main(["audit", "--data", "digits", "--n", "2", "--dist-timeout", bad,
                     "--out", str(tmp_path / "r")]) == 2
        assert "--dist-timeout must be > 0 minutes and at most a week" in capsys.readouterr().err
