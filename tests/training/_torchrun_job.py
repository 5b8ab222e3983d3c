"""Run by ``torchrun`` in tests/training/test_torchrun.py: several ``captum-cf train`` commands
in one process group (each rank runs this script). Usage:
``_torchrun_job.py FOLDER OUT CHECKS BROKEN``: first each rank reads FOLDER with the shared
decode (``folder_split``) and saves what it got to ``CHECKS/split_<rank>.pt`` (and, read a
second time from ``--cache-dir CHECKS/cache``, to ``CHECKS/cached_<rank>.pt``, and the lines of
``/proc/self/maps`` naming the cache to ``CHECKS/maps_<rank>.txt``), and reads the
folder BROKEN (an unreadable image in one rank's share) and saves its error message to
``CHECKS/error_<rank>.txt``; then the train commands write into OUT."""

from __future__ import annotations

import os
import signal
import sys

import torch

from captum_cf.cli import main
from captum_cf.training.data import folder_images, folder_split
from captum_cf.training.distributed import distributed_context
from captum_cf.zoo.train import ClassifierTrainer

folder, out, checks, broken = sys.argv[1:5]


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
distributed_context()
rank = torch.distributed.get_rank()
torch.save(folder_split(folder, 16, dtype=torch.uint8), os.path.join(checks, f"split_{rank}.pt"))
# with a cache: the first call decodes into the files (each process its share), the second
# maps them
cache = os.path.join(checks, "cache")
folder_split(folder, 16, dtype=torch.uint8, cache_dir=cache)
cached = folder_split(folder, 16, dtype=torch.uint8, cache_dir=cache)
torch.save(cached, os.path.join(checks, f"cached_{rank}.pt"))
try:
    folder_images(broken, 16, dtype=torch.uint8)
    message = "no error"
except ValueError as err:
    message = str(err)
with open(os.path.join(checks, f"error_{rank}.txt"), "w") as f:
    f.write(message)
# decoded into a cache file by both processes (each its share): the error reaches both, and
# the temporary file is removed
try:
    folder_images(broken, 16, dtype=torch.uint8, cache_dir=os.path.join(checks, "broken_cache"))
    message = "no error"
except ValueError as err:
    message = str(err)
with open(os.path.join(checks, f"error_cache_{rank}.txt"), "w") as f:
    f.write(message)
# the cached training split is memory-mapped from its file in both processes
with open("/proc/self/maps") as maps, open(os.path.join(checks, f"maps_{rank}.txt"), "w") as f:
    f.write("".join(line for line in maps if cache in line))

for command in commands:
    code = main(["train", command[0], *common, *command[1:]])
    if code:
        raise SystemExit(f"{command[0]} exited with {code}")

# Ctrl-C reaching one process: rank 1 is signalled during step 1, both stop after step 1 with
# one checkpoint; the same command then resumes, and the result equals a run never stopped
straight = ["train", "classifier", *common, "--epochs", "2", "--out",
            os.path.join(checks, "straight.pt")]
cut = ["train", "classifier", *common, "--epochs", "2", "--checkpoint",
       os.path.join(checks, "cut.ckpt"), "--out", os.path.join(checks, "cut.pt")]
if main(straight):
    raise SystemExit("the straight classifier run failed")
real_step = ClassifierTrainer.train_step


def signalled_step(self):
    losses = real_step(self)
    if rank == 1 and self.step + 1 == 1:
        os.kill(os.getpid(), signal.SIGINT)
    return losses


ClassifierTrainer.train_step = signalled_step
code = main(cut)
ClassifierTrainer.train_step = real_step
saved = torch.load(os.path.join(checks, "cut.ckpt"), weights_only=True)["trainer"]["step"]
if code != 130 or saved != 1:
    raise SystemExit(f"rank {rank}: the interrupted run exited with {code}, checkpoint step "
                     f"{saved} (expected 130 and 1)")
if main(cut):
    raise SystemExit("resuming the interrupted run failed")
