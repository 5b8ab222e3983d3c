"""Sub-commands of ``captum-cf train``; each registers itself in ``cli.TRAIN_COMMANDS``."""

from __future__ import annotations

import argparse

from captum_cf.cli import TRAIN_COMMANDS, CLIError

# --- train classifier (zoo: digits-cnn, shapes-cnn) ---------------------------------------------


def _classifier_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, choices=["digits", "shapes"],
                        help="data set: digits (-> digits-cnn) or shapes (-> shapes-cnn)")
    parser.add_argument("--out", required=True, help="weights file to write (.pt)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training set (default: 30 digits, 12 shapes)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="per-epoch checkpoint file; an existing one is resumed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    # For quick runs and tests: train and test on the first N images only.
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)


def _classifier_run(args: argparse.Namespace) -> int:
    from captum_cf.zoo.train import train_classifier

    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be >= 1, got {args.limit}")
    acc = train_classifier(args.data, out=args.out, epochs=args.epochs, seed=args.seed,
                           limit=args.limit, checkpoint=args.checkpoint,
                           show_progress=not args.no_progress)
    print(f"test accuracy {acc:.4f}; weights written to {args.out}")
    return 0


TRAIN_COMMANDS["classifier"] = (
    "train a zoo classifier (digits-cnn or shapes-cnn)",
    _classifier_args,
    _classifier_run,
)


# --- train inpainter (zoo: digits-inpainter, shapes-inpainter) ----------------------------------


def _inpainter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, choices=["digits", "shapes"],
                        help="data set: digits (-> digits-inpainter) or shapes "
                             "(-> shapes-inpainter)")
    parser.add_argument("--out", required=True, help="weights file to write (.pt)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimisation steps (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file, written every 200 steps (default: OUT.ckpt)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and held-out images (quick runs)")


def _inpainter_run(args: argparse.Namespace) -> int:
    from captum_cf.zoo.inpainters import train_inpainter

    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be >= 1, got {args.limit}")
    checkpoint = args.checkpoint or f"{args.out}.ckpt"
    l1 = train_inpainter(args.data, out=args.out, steps=args.steps, seed=args.seed,
                         limit=args.limit, checkpoint=checkpoint, resume=args.resume,
                         show_progress=not args.no_progress)
    print(f"held-out hole L1 {l1:.4f}; weights written to {args.out}")
    return 0


TRAIN_COMMANDS["inpainter"] = (
    "train a zoo inpainter (digits-inpainter or shapes-inpainter)",
    _inpainter_args,
    _inpainter_run,
)
