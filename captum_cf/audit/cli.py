"""The ``captum-cf audit`` command: its options and what it runs.

Output: the report folder ``OUT`` (``results.csv``, ``results.json``, ``report.html``,
``maps.png``, ``counterfactuals.png``), replaced atomically at the end of each run, and beside it
the results store ``OUT.sqlite`` (every per-image score, kept across runs for ``--resume``).
Under ``torchrun`` the images are sharded across the ranks (:mod:`captum_cf.audit.distributed`)
and rank 0 writes both.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from typing import Any

import torch

from captum_cf.audit.distributed import TIMEOUT_S
from captum_cf.audit.errors import AuditInputError, AuditInterrupted
from captum_cf.audit.result import DEFAULT_METHODS
from captum_cf.audit.runner import Settings, _methods, make_source, run_audit
from captum_cf.baselines import BASELINES

__all__ = ["DEFAULT_OUT", "add_arguments", "run_cli", "store_path"]

DEFAULT_OUT = "audit-report"


def store_path(out: str) -> str:
    """The results store of the report folder ``out``: ``OUT.sqlite`` beside it."""
    return os.path.abspath(out).rstrip(os.sep) + ".sqlite"


def add_arguments(parser: Any) -> None:
    """Options of ``captum-cf audit``."""
    parser.add_argument(
        "--model",
        default=None,
        help="zoo:NAME, module:factory or path/file.py:factory (a function returning the "
        "nn.Module), or a weights file of captum-cf train classifier|robust (default: the zoo "
        "model of --data)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="weights for --model: a state dict saved with torch.save(model.state_dict(), "
        "path), read with weights_only=True (not a whole pickled model)",
    )
    parser.add_argument(
        "--data",
        default="digits",
        help="digits (default: test digits), shapes (has object masks: adds the pointing game) "
        "or an image folder DIR/<class>/<image> (masks: <image>_mask.png beside each image)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated method names, or all (default: " + ",".join(DEFAULT_METHODS) + ")",
    )
    parser.add_argument(
        "--baselines",
        default=None,
        help="comma-separated baseline names, or all (default: all available)",
    )
    parser.add_argument(
        "--n",
        "--n-images",
        dest="n",
        default="32",
        help="number of images, or all (default 32; a seeded subset). Under torchrun write "
        "--n-images (torchrun reads --n as an abbreviation of its own options)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image folders: resize the shorter side to S and centre-crop S x S (masks follow); "
        "default: keep the files' size (which must then be equal)",
    )
    parser.add_argument(
        "--resize",
        type=int,
        default=None,
        metavar="R",
        help="image folders, with --image-size S: resize the shorter side to R >= S before the "
        "centre S x S crop, as torchvision's Resize(R) + CenterCrop(S) evaluation transform "
        "(e.g. --resize 256 --image-size 224); default S",
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="image folders: 1 reads every image as greyscale, 3 as RGB; default: 1 when the "
        "first images are greyscale, else 3",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader processes reading images (default 0)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the audit recorded in OUT.sqlite (a killed run): only the missing "
        "(image, cell) pairs are computed",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device (default cpu); under torchrun, cuda means cuda:LOCAL_RANK",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"report folder (default ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=TIMEOUT_S / 60,
        metavar="MINUTES",
        help="under torchrun: how long the processes wait for one that neither answers nor "
        f"dies (a stuck read) before all stop (default {TIMEOUT_S // 60:g})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per no-grad forward pass (default: sized by memory from the image size)",
    )
    parser.add_argument(
        "--explain-batch",
        type=int,
        default=None,
        help="images per explanation call and per streamed batch (default: sized by memory)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=10,
        help="MoRF/LeRF curve steps (default 10: 10 %% of the pixels each)",
    )
    parser.add_argument(
        "--removals",
        "--removal",
        dest="removals",
        default=None,
        help="comma-separated baselines that remove pixels in the MoRF/LeRF curves, each scored "
        "separately (default: zero,blur,inpaint-pushpull,road; all: every baseline)",
    )
    parser.add_argument(
        "--sanity-n",
        type=int,
        default=8,
        help="images for the randomisation check (default 8; 0: skip)",
    )
    parser.add_argument(
        "--train-data",
        default=None,
        metavar="DIR",
        help="image folder of training images (the classes of --data) for the nearest-sample "
        "baseline (MDTS); read with --image-size and the channels of --data, held in memory",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="decode the --train-data images into a file in DIR and read them memory-mapped "
        "from it (they need not fit in memory); a resumed audit, or another audit of the "
        "same folder, maps the file instead of decoding again",
    )
    parser.add_argument(
        "--baseline-weights",
        default=None,
        metavar="NAME=FILE[,NAME=FILE]",
        help="weights of a learned baseline trained for --model and --data (captum-cf train "
        "ganmex|exaggeration|inpainter|robust), in place of the data set's zoo model: "
        "ganmex=FILE, exaggeration=FILE, inpaint-learned=FILE, sparse-counterfactual=FILE; "
        "inpaint-learned=FILE also takes an inpainting network of your own, forward(image, "
        "mask) saved with torch.export.save or torch.jit.save (e.g. LaMa)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the registered methods and baselines and exit"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _names(option: str | None) -> list[str] | None:
    return None if option is None else [s.strip() for s in option.split(",") if s.strip()]


def parse_baseline_weights(option: str | None) -> dict[str, str] | None:
    """``"ganmex=g.pt,inpaint-learned=i.pt"`` -> ``{"ganmex": "g.pt", ...}``; files must exist."""
    from captum_cf.baselines._trained import LEARNED

    if option is None:
        return None
    out: dict[str, str] = {}
    for item in _names(option) or []:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise AuditInputError(f"--baseline-weights takes NAME=FILE pairs, got {item!r}")
        if name not in LEARNED:
            raise AuditInputError(
                f"--baseline-weights: {name!r} takes no weights; the learned baselines are "
                f"{', '.join(LEARNED)}"
            )
        if name in out:
            raise AuditInputError(f"--baseline-weights names {name!r} twice")
        if not os.path.isfile(path):
            raise AuditInputError(f"--baseline-weights {name}={path}: no such file")
        out[name] = path
    if not out:
        raise AuditInputError("--baseline-weights is empty")
    return out


def _list_registered() -> str:
    lines = ["methods (--methods):"]
    reg = _methods()
    lines += [
        f"  {n:24s} {'(default) ' if n in DEFAULT_METHODS else ''}{reg.describe(n)}" for n in reg
    ]
    lines += ["baselines (--baselines, --removals):"]
    lines += [f"  {n:24s} {BASELINES.describe(n)}" for n in BASELINES]
    return "\n".join(lines)


def run_cli(args: Any) -> int:
    """Run ``captum-cf audit``; raises ``AuditInputError`` for user errors."""
    if args.list:
        from captum_cf._user_model import import_model_module, is_factory_spec

        if args.model and is_factory_spec(args.model):  # its module may register entries
            try:
                import_model_module(args.model)
            except ValueError as err:
                raise AuditInputError(str(err)) from err
        print(_list_registered())
        return 0
    from captum_cf.audit.data import parse_n

    n = parse_n(args.n)
    for opt in ("batch_size", "explain_batch", "steps", "image_size"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise AuditInputError(f"--{opt.replace('_', '-')} must be >= 1, got {value}")
    args.baseline_weights = parse_baseline_weights(args.baseline_weights)
    if not 0 < args.dist_timeout <= 10080:  # also NaN and inf
        raise AuditInputError(f"--dist-timeout must be > 0 minutes and at most a week (10080), "
                              f"got {args.dist_timeout}")
    for opt in ("sanity_n", "workers"):
        if getattr(args, opt) < 0:
            raise AuditInputError(
                f"--{opt.replace('_', '-')} must be >= 0, got {getattr(args, opt)}"
            )
    if args.cache_dir is not None and args.train_data is None:
        raise AuditInputError("--cache-dir keeps the decoded --train-data images: give "
                              "--train-data DIR with it (the audited images are streamed)")
    from captum_cf.audit.report import check_out

    try:
        out = check_out(args.out)  # before any work
    except (NotADirectoryError, FileExistsError) as err:
        raise AuditInputError(str(err)) from err
    for option in ("data", "train_data"):
        folder = getattr(args, option)
        if folder and os.path.isdir(folder):
            root, real_out = os.path.realpath(folder), os.path.realpath(out)
            if os.path.commonpath([root, real_out]) == root:
                raise AuditInputError(
                    f"--out {out} lies inside --{option.replace('_', '-')} {folder}: the "
                    "report's images would be read as a class folder by the next audit or "
                    "training; name a folder outside it"
                )
    from captum_cf.audit import distributed

    comm = distributed.from_environment(args.device, timeout_s=args.dist_timeout * 60)
    try:
        return _run(args, n, out, comm)
    finally:
        if comm is not None:
            comm.close()


def _run(args: Any, n: int | None, out: str, comm: Any) -> int:
    rank = 0 if comm is None else comm.rank
    device = comm.device if comm is not None else _device(args.device)
    from captum_cf.audit.data import load_data
    from captum_cf.audit.model import load_model

    data = load_data(args.data, n, args.seed, args.image_size, args.channels, args.resize)
    if args.train_data is not None:
        from captum_cf.audit.data import load_train_folder

        data.train = load_train_folder(
            args.train_data, data, args.image_size, show_progress=not args.no_progress,
            cache_dir=args.cache_dir,
        )
    model, model_name = load_model(args.model, data.name, args.weights, str(device))
    extras = {"zoo_name": model_name[4:]} if model_name.startswith("zoo:") else {}
    settings = Settings(
        methods=_names(args.methods),
        baselines=_names(args.baselines),
        # the preprocessing is part of what was audited (the report, the resume identity)
        data_name=data.name if args.resize is None
        else f"{data.name} (shorter side {args.resize}, centre crop {args.image_size})",
        train_data=data.train,
        removals=_names(args.removals),
        n_steps=args.steps,
        batch_size=args.batch_size,
        sanity_n=args.sanity_n,
        seed=args.seed,
        extras=extras,
        show_progress=not args.no_progress,
        workers=args.workers,
        explain_batch=args.explain_batch,
        model_name=model_name,
        baseline_weights=args.baseline_weights,
    )
    try:
        source = make_source(data.dataset, ids=data.ids)  # reads the first image
    except ValueError as err:  # e.g. an image whose pixels Pillow cannot decode
        raise AuditInputError(str(err)) from err
    path = store_path(out)
    if args.resume and rank == 0 and not os.path.isfile(path):
        print(f"nothing to resume in {path}: starting the audit", file=sys.stderr)
    began = time.perf_counter()
    try:
        result = run_audit(model, source, settings, path, device, resume=args.resume, comm=comm)
    except AuditInterrupted as stop:
        if rank == 0:
            print(f"\n{stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # outside the grid's steps (planning, probes, the last reads)
        if rank == 0:
            print(f"\ninterrupted; {path} keeps whatever was stored: rerun the same command "
                  "with --resume to continue", file=sys.stderr)
        return 130
    except sqlite3.Error as err:  # the store: locked, disk full, damaged
        raise AuditInputError(_store_failure(path, err)) from err
    except AuditInputError as err:
        if rank != 0 and getattr(err, "told_by_rank_0", False):
            return 2  # rank 0 prints the failure (its own or this rank's), once
        raise
    if result is None:  # not rank 0: rank 0 writes the report
        return 0
    import shlex

    result.command = "captum-cf " + shlex.join(getattr(args, "_argv", ["audit"]))
    try:
        print(result.table())
        written = result.write(out)
    except (NotADirectoryError, FileExistsError) as err:  # --out changed while the audit ran
        raise AuditInputError(f"{err}; the results are kept in {path}: rerun the same command "
                              "with --resume to write the report") from err
    except KeyboardInterrupt:  # Ctrl-C while the report is written: every pair is stored
        print(f"\ninterrupted while writing the report; every result is kept in {path}: rerun "
              "the same command with --resume to write it", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a folder that cannot be renamed
        raise AuditInputError(f"writing the report {out} failed: {err.strerror or err}; every "
                              f"result is kept in {path}: fix that, then rerun the same command "
                              "with --resume to write the report") from err
    # a resumed audit's time is its work summed over its runs (as in the report); this run's
    # wall time (reading the model and data included) is added
    this_run = (f"; this run {time.perf_counter() - began:.1f} s, setup included"
                if args.resume else "")
    print(
        f"\n{len(result.cells)} cells on {len(source)} images in {result.seconds:.1f} s"
        f"{this_run}; report: {written[2]}; results store: {path}"
    )
    return 0


def _store_failure(path: str, err: sqlite3.Error) -> str:
    """One line for an error of the results store during the audit, with what to do."""
    text = str(err)
    if "locked" in text:
        return (f"the results store {path} is locked by another program (an sqlite3 shell, a "
                f"viewer holding a transaction: {text}); what was stored is kept: close it, then "
                "rerun with --resume")
    if "full" in text or "I/O" in text:
        return (f"writing the results store {path} failed ({text}: a full disk or a file size "
                "limit?); every step stored before is kept: free space, then rerun with --resume")
    if "malformed" in text or "not a database" in text:
        return (f"the results store {path} is damaged ({text}): delete it (or choose another "
                "--out) and run again")
    return f"the results store {path} failed: {text}"


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise AuditInputError(f"--device: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AuditInputError("--device cuda requested but CUDA is not available")
    return device
