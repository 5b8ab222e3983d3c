"""``torchrun --nproc-per-node 2 -m captum_cf train ...`` on the CPU (gloo): every trainer.

Two launches: ``-m captum_cf train classifier`` on an image folder (checkpoint after epoch 1),
then a job running every trainer in one process group (tests/training/_torchrun_job.py): the
classifier resumes the checkpoint the first launch wrote, GANMEX trained 1 step + resumed to 2
equals 2 steps straight, each command leaves exactly its weights file (rank 0 writes) and finite
losses in its checkpoint.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2"]


def _folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(["left", "right"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            img = rng.uniform(0, 60, (20, 20))
            img[:, :10] += 150 * (label == 0)
            img[:, 10:] += 150 * (label == 1)
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def _run(args: list[str], timeout: int = 150) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(TORCHRUN + args, env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _losses(path: Path) -> list[float]:
    """Every training loss a checkpoint records: history entries and the open log window."""
    state = torch.load(path, weights_only=True)["trainer"]
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    logged = [v for e in state["history"] if "val_score" not in e
              for k, v in e.items() if k != "step"]
    return logged + [v for values in state["window"].values() for v in values]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_every_trainer_under_torchrun_with_two_cpu_processes(tmp_path: Path) -> None:
    from captum_cf import zoo
    from captum_cf.training.data import folder_split

    folder, out = _folder(tmp_path / "images"), tmp_path / "out"
    out.mkdir()
    first = _run(["-m", "captum_cf", "train", "classifier", "--data", str(folder),
                  "--image-size", "16", "--epochs", "1", "--batch-size", "4", "--no-progress",
                  "--checkpoint", str(out / "cls.ckpt"), "--out", str(out / "cls.pt")])
    assert first.stdout.count("weights written") == 1  # rank 0 alone reports and writes
    epoch_one = zoo.read_weights(out / "cls.pt")["metrics"]
    assert epoch_one["processes"] == 2 and epoch_one["train_size"] == 19  # 24 - 20 % held out

    checks, broken = tmp_path / "checks", tmp_path / "broken"
    checks.mkdir()
    shutil.copytree(folder, broken)
    # item 17 of the sorted files (left/0, 1, 10, 11, 2..9, right/0, 1, 10, 11, 2, 3): rank 1's
    # share, and past the 16 images whose modes decide the colour when the folder is listed
    (broken / "right" / "3.png").write_bytes(b"not an image")
    job = _run([str(ROOT / "tests" / "training" / "_torchrun_job.py"), str(folder), str(out),
                str(checks), str(broken)])
    assert job.stdout.count("weights written") == 9  # 7 commands, then straight.pt and cut.pt
    assert sorted(os.listdir(out)) == sorted([
        "cls.pt", "cls.ckpt", "rob.pt", "rob.ckpt", "inp.pt", "inp.pt.ckpt", "g_straight.pt",
        "g.pt", "g.ckpt", "ex.pt", "ex.pt.ckpt"])  # one weights file each, no stray files
    for ckpt in ("cls.ckpt", "rob.ckpt", "inp.pt.ckpt", "g.ckpt", "ex.pt.ckpt"):
        losses = _losses(out / ckpt)
        assert losses and all(math.isfinite(v) for v in losses), ckpt
    resumed = zoo.read_weights(out / "cls.pt")["metrics"]
    assert resumed["epochs"] == 2 and resumed["losses"][0] == epoch_one["losses"][0]
    assert zoo.read_weights(out / "rob.pt")["metrics"]["steps"] == 2
    g_straight, again = zoo.read_weights(out / "g_straight.pt"), zoo.read_weights(out / "g.pt")
    assert again["metrics"]["steps"] == 2
    for key, value in g_straight["state_dict"].items():  # exact resume under torchrun
        assert torch.equal(value, again["state_dict"][key]), key
    ex = zoo.read_weights(out / "ex.pt")
    assert ex["metrics"]["best_step"] in (1, 2) and ex["metrics"]["processes"] == 2

    # the shared decode: each rank read half the images and both hold what one process reads
    alone = folder_split(str(folder), 16, dtype=torch.uint8)
    for rank, name in ((0, "split"), (1, "split"), (0, "cached"), (1, "cached")):
        got = torch.load(checks / f"{name}_{rank}.pt", weights_only=True)
        assert got[4] == alone[4]
        for mine, want in zip(got[:4], alone[:4]):
            assert torch.equal(mine, want)
    assert len(os.listdir(checks / "cache")) == 2  # the training and the held-out split
    # an unreadable image in rank 1's share fails both ranks (none waits for the other)
    assert "cannot read image" in (checks / "error_1.txt").read_text()
    error_0 = (checks / "error_0.txt").read_text()
    assert error_0.startswith("process 1 of 2 could not read its share of the images: cannot "
                              "read image") and "3.png" in error_0
    # decoding into the cache file: each process wrote its share of the file that both map;
    # the same failure reaches both, and no temporary file is left
    cache_error_0 = (checks / "error_cache_0.txt").read_text()
    assert cache_error_0.startswith("process 1 of 2 could not read its share of the images")
    assert "cannot read image" in (checks / "error_cache_1.txt").read_text()
    assert os.listdir(checks / "broken_cache") == []
    for rank in (0, 1):
        assert len({line.split()[-1] for line in
                    (checks / f"maps_{rank}.txt").read_text().splitlines()}) == 2
    # Ctrl-C on rank 1 only: both stopped after step 1 (checked in the job), rank 0 told the
    # user once, and the resumed run equals the one never stopped
    assert job.stderr.count("interrupted (another process was signalled) after step 1 of 4") == 1
    straight, cut = (zoo.read_weights(checks / f"{n}.pt") for n in ("straight", "cut"))
    assert cut["metrics"]["losses"] == straight["metrics"]["losses"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key
