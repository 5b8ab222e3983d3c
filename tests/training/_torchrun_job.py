"""Run by ``torchrun`` in tests/training/test_torchrun.py: several ``captum-cf train`` commands
in one process group (each rank runs this script). Usage: ``_torchrun_job.py FOLDER OUT``."""

from __future__ import annotations

import os
import sys

from captum_cf.cli import main

folder, out = sys.argv[1], sys.argv[2]


def path(name: str) -> str:
    return os.path.join(out, name)


common = ["--data", folder, "--image-size", "16", "--batch-size", "4", "--no-progress"]
commands = [
    # resumes the checkpoint the first torchrun launch wrote after epoch 1
    ["classifier", "--epochs", "2", "--checkpoint", path("cls.ckpt"), "--out", path("cls.pt")],
    ["robust", "--steps", "2", "--attack-steps", "1", "--eps", "0.5", "--checkpoint",
     path("rob.ckpt"), "--checkpoint-every", "1", "--out", path("rob.pt")],
    ["inpainter", "--steps", "2", "--out", path("inp.pt")],
    ["ganmex", "--classifier", path("cls.pt"), "--steps", "2", "--test-images", "3",
     "--out", path("g_straight.pt")],
    ["ganmex", "--classifier", path("cls.pt"), "--steps", "1", "--test-images", "3",
     "--checkpoint", path("g.ckpt"), "--checkpoint-every", "1", "--out", path("g.pt")],
    ["ganmex", "--classifier", path("cls.pt"), "--steps", "2", "--test-images", "3",
     "--checkpoint", path("g.ckpt"), "--checkpoint-every", "1", "--resume",
     "--out", path("g.pt")],
    ["exaggeration", "--classifier", path("cls.pt"), "--positive", "1", "--steps", "2",
     "--validate-every", "2", "--out", path("ex.pt")],
]
for command in commands:
    code = main(["train", command[0], *common, *command[1:]])
    if code:
        raise SystemExit(f"{command[0]} exited with {code}")
