"""The audit on several processes, GPUs or machines, as launched by ``torchrun``.

``torchrun --nproc-per-node K -m captum_cf audit ...`` (or ``captum-cf audit`` under any launcher
that sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``) starts K copies of the audit. Each joins
the process group (``env://`` rendezvous; gloo on the CPU, nccl with ``--device cuda``, whose
device becomes ``cuda:LOCAL_RANK``), and they share the work:

* the images are cut into the same batches as a single process would (batch ``k`` = images
  ``k*B ... (k+1)*B - 1``, seeded with ``seed + k``); the batches that still miss some
  (image, cell) pair are dealt round-robin to the ranks (rank r takes the r-th, (r+K)-th, ...),
  so every per-image value equals the single-process one;
* after each step (one batch per rank) the per-image records are gathered to every rank
  (``all_gather_object``) and rank 0 writes them to the results store, one transaction each;
* a rank that fails (a Python error, an unreadable image, Ctrl-C) tells the others in that same
  gather: every rank stops with ``rank R failed: <message>; resume with --resume``. A rank that
  dies without a word (killed, out of memory) is noticed by torchrun, which stops the others;
  the store holds every step completed before, and ``--resume`` continues from there;
* with ``--resume`` rank 0 reads what is done and broadcasts it;
* rank 0 renders the one report.

Several machines: run the same command on each node with torchrun's rendezvous flags, e.g. on
2 nodes of 4 GPUs::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\
        --rdzv-endpoint HOST0:29500 --rdzv-id audit1 \\
        -m captum_cf audit --model net.py:make --weights w.pt --data /shared/images \\
        --image-size 224 --n all --device cuda --out /shared/report

(the data folder must be visible to every node, the report is written by rank 0's node).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from captum_cf.audit.errors import AuditInputError

__all__ = ["Communicator", "from_environment", "in_torchrun"]

#: seconds a collective waits for a silent rank before every rank gives up
TIMEOUT_S = 1800


def in_torchrun() -> bool:
    """True when ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` describe more than one process."""
    env = os.environ
    return all(k in env for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK")) and (
        int(env["WORLD_SIZE"]) > 1
    )


class Communicator:
    """The audit's view of the process group: rank, world size, device, two collectives."""

    def __init__(self, device: str = "cpu", timeout_s: float = TIMEOUT_S) -> None:
        self.rank = int(os.environ["RANK"])
        self.world = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        kind = torch.device(device).type
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise AuditInputError("--device cuda requested but CUDA is not available")
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            backend = "nccl"
        elif kind == "cpu":
            self.device = torch.device("cpu")
            backend = "gloo"
        else:
            raise AuditInputError(f"--device {device}: torchrun audits run on cpu or cuda")
        self.timeout_s = timeout_s
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        with self._told():
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        with self._told():
            dist.all_gather_object(out, obj)
        return out

    @contextlib.contextmanager
    def _told(self) -> Iterator[None]:
        """A collective that fails because another process is silent or gone: one line."""
        try:
            yield
        except RuntimeError as err:
            text = str(err).lower()
            if "timed out" in text or "timeout" in text:
                why = (f"no answer from another process within --dist-timeout "
                       f"{self.timeout_s / 60:g} minutes (one is stuck, e.g. in a read)")
            elif "connection closed" in text or "connection reset" in text:
                why = "another process left the group (killed or failed: see torchrun's summary)"
            else:
                raise
            raise AuditInputError(f"rank {self.rank}: {why}; the steps gathered before, if any, "
                                  "are in the results store: resume with --resume") from err

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()


def from_environment(device: str = "cpu", timeout_s: float = TIMEOUT_S) -> Communicator | None:
    """A :class:`Communicator` under torchrun (more than one process), else None.

    Args:
        device (str): ``cpu`` (gloo) or ``cuda`` (nccl, ``cuda:LOCAL_RANK``).
        timeout_s (float): how long a collective waits for a silent rank (``--dist-timeout``).
    """
    return Communicator(device, timeout_s) if in_torchrun() else None
