"""The ``captum-cf audit`` command: its options and what it runs."""

from __future__ import annotations

from typing import Any

import torch

from captum_cf.audit.errors import AuditInputError
from captum_cf.audit.result import DEFAULT_METHODS
from captum_cf.audit.runner import _methods, audit
from captum_cf.baselines import BASELINES

__all__ = ["DEFAULT_OUT", "add_arguments", "run_cli"]

DEFAULT_OUT = "audit-report"


def add_arguments(parser: Any) -> None:
    """Options of ``captum-cf audit``."""
    parser.add_argument(
        "--model",
        default=None,
        help="zoo:NAME, module:factory or path/file.py:factory (factory() returns the "
        "nn.Module; default: the zoo model of --data)",
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
    parser.add_argument("--n", type=int, default=32, help="number of images (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"report folder (default ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="images per forward pass (default 256)"
    )
    parser.add_argument(
        "--steps", type=int, default=16, help="deletion/insertion steps (default 16)"
    )
    parser.add_argument(
        "--removal",
        default=None,
        help="baseline that removes pixels in deletion/insertion (default: RISE's black/blur)",
    )
    parser.add_argument(
        "--sanity-n",
        type=int,
        default=8,
        help="images for the randomisation check (default 8; 0: skip)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the registered methods and baselines and exit"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _names(option: str | None) -> list[str] | None:
    return None if option is None else [s.strip() for s in option.split(",") if s.strip()]


def _list_registered() -> str:
    lines = ["methods (--methods):"]
    reg = _methods()
    lines += [
        f"  {n:24s} {'(default) ' if n in DEFAULT_METHODS else ''}{reg.describe(n)}" for n in reg
    ]
    lines += ["baselines (--baselines, --removal):"]
    lines += [f"  {n:24s} {BASELINES.describe(n)}" for n in BASELINES]
    return "\n".join(lines)


def run_cli(args: Any) -> int:
    """Run ``captum-cf audit``; raises ``AuditInputError`` for user errors."""
    if args.list:
        print(_list_registered())
        return 0
    for opt in ("n", "batch_size", "steps"):
        if getattr(args, opt) < 1:
            raise AuditInputError(
                f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}"
            )
    if args.sanity_n < 0:
        raise AuditInputError(f"--sanity-n must be >= 0, got {args.sanity_n}")
    device = _device(args.device)
    from captum_cf.audit.data import load_data
    from captum_cf.audit.model import load_model

    data = load_data(args.data, args.n, args.seed)
    model, model_name = load_model(args.model, data.name, args.weights, str(device))
    extras = {"zoo_name": model_name[4:]} if model_name.startswith("zoo:") else {}
    result = audit(
        model,
        data.images.to(device),
        masks=None if data.masks is None else data.masks.to(device),
        methods=_names(args.methods),
        baselines=_names(args.baselines),
        data_name=data.name,
        train_data=data.train,
        removal=args.removal,
        n_steps=args.steps,
        batch_size=args.batch_size,
        sanity_n=args.sanity_n,
        seed=args.seed,
        extras=extras,
        show_progress=not args.no_progress,
    )
    result.config["model"] = model_name
    print(result.table())
    written = result.write(args.out)
    print(
        f"\n{len(result.cells)} cells on {data.images.shape[0]} images in "
        f"{result.seconds:.1f} s; report: {written[2]}"
    )
    return 0


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise AuditInputError(f"--device: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AuditInputError("--device cuda requested but CUDA is not available")
    return device
