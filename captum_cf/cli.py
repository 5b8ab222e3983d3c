"""The ``captum-cf`` command.

``captum-cf audit ...`` explains a model with every registered method x baseline and writes a
report (:mod:`captum_cf.audit`).

``captum-cf train <what> ...`` trains (and reproduces) the reference models of ``captum_cf.zoo``.
Each trainable thing registers a sub-command in :data:`TRAIN_COMMANDS`: a function that adds its
arguments to a parser and a function that runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import captum_cf

__all__ = ["main", "build_parser", "TRAIN_COMMANDS", "CLIError"]


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


#: name -> (help, add_arguments(parser), run(args) -> exit code)
TRAIN_COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {}


def _register_train_commands() -> None:
    # Imported lazily so that ``captum-cf --version`` stays instant.
    from captum_cf import _cli_train  # noqa: F401


def _add_audit_args(parser: argparse.ArgumentParser) -> None:
    from captum_cf.audit.cli import add_arguments

    add_arguments(parser)


def _run_audit(args: argparse.Namespace) -> int:
    from captum_cf.audit.cli import AuditInputError, run_cli
    from captum_cf.audit.errors import AuditDtypeError

    try:
        return run_cli(args)
    except AuditDtypeError as err:  # the images can only be converted in Python
        raise CLIError(f"{err.args[0].split(': convert')[0]}: the command reads the images as "
                       "float32, so return the model in float32 from the --model factory "
                       "(model.float()), or call captum_cf.audit.audit from Python") from err
    except AuditInputError as err:
        raise CLIError(str(err)) from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-cf",
        description="Realistic counterfactual baselines and explanation metrics for Captum.",
    )
    parser.add_argument("--version", action="version", version=f"captum-cf {captum_cf.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    audit = sub.add_parser(
        "audit",
        help="explain a model with every method x baseline, score the maps, write a report",
        description="Explain a model with every registered attribution method x baseline, score "
        "each explanation (the symmetric relevance gain of MoRF and LeRF removal curves under "
        "each --removals, pointing game, randomisation sanity), test which baselines are "
        "significantly best, and write OUT/results.csv, OUT/results.json and OUT/report.html.",
    )
    _add_audit_args(audit)
    audit.set_defaults(_run=_run_audit)
    train = sub.add_parser("train", help="train a reference model of captum_cf.zoo")
    train_sub = train.add_subparsers(dest="what", metavar="WHAT", required=True)
    _register_train_commands()
    for name, (help_text, add_args, run) in TRAIN_COMMANDS.items():
        p = train_sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """captum_cf's own warnings as one line each, ``captum-cf: warning: <message>``, above any
    progress bar (not Python's two lines naming a source file and quoting a line of it); other
    packages' warnings are shown as Python shows them."""
    package = os.path.dirname(os.path.abspath(captum_cf.__file__)) + os.sep
    shown = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if not os.path.abspath(filename).startswith(package):
            shown(message, category, filename, lineno, file, line)
            return
        from tqdm.auto import tqdm

        tqdm.write(f"captum-cf: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def _launcher() -> tuple[str, str]:
    """How this command was started, and a note for several machines: ``captum-cf``, or
    torchrun with this run's processes per node (a checkpoint resumes only with the same number
    of processes)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return "captum-cf ", ""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world) or world)
    note = "" if local == world else " (on each node, with this run's --nnodes and rendezvous)"
    return f"torchrun --nproc-per-node {local} -m captum_cf ", note


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 success, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # the command, for reports
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    from captum_cf._weights import WeightsFileError
    from captum_cf.training.loop import TrainingInterrupted

    try:
        with _one_line_warnings():
            return int(args._run(args) or 0)
    except (CLIError, WeightsFileError) as err:
        # a bad --weights / --checkpoint / --init file is a user error too: one line, exit 2;
        # a DataLoader worker's error (--workers) carries its traceback: its last line only
        from captum_cf._validation import first_line

        message = str(err)
        print(f"captum-cf: error: {first_line(err) if message.startswith('Caught ') else message}",
              file=sys.stderr)
        return 2
    except TrainingInterrupted as err:  # Ctrl-C in a train command: a line, not a traceback
        if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 speaks for all
            return 130
        print(f"captum-cf: {err}", file=sys.stderr)
        if err.checkpoint is not None:
            argv = list(args._argv)
            if hasattr(args, "resume") and not args.resume:
                argv.append("--resume")
            launcher, note = _launcher()
            print("captum-cf: to continue exactly where it stopped: " + launcher
                  + " ".join(shlex.quote(a) for a in argv) + note, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
