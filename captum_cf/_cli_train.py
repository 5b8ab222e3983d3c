"""Sub-commands of ``captum-cf train``; each registers itself in ``cli.TRAIN_COMMANDS``."""

from __future__ import annotations

import argparse

from captum_cf.cli import TRAIN_COMMANDS, CLIError

_DATA_HELP = ("training images: digits, shapes or an image folder DIR/<class>/<image> "
              "(DIR/train and DIR/test when both exist, else a held-out share of DIR is the test "
              "split)")


def _common_args(parser: argparse.ArgumentParser, batch_default: str,
                 checkpoint_every: int | None, checkpoint_every_help: str) -> None:
    """Options every ``captum-cf train`` command shares (data, device, precision, cadence)."""
    parser.add_argument("--image-size", type=int, default=None, metavar="S",
                        help="resize the shorter side to S and centre-crop S x S (folders; "
                             "digits and shapes are generated at S); default: the data's own")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None,
                        help="image folders: 1 reads every image as greyscale, 3 as RGB "
                             "(default: 1 when the first images are greyscale, else 3)")
    parser.add_argument("--workers", type=int, default=0, metavar="K",
                        help="image folders: processes decoding the images before training "
                             "(default 0: this one)")
    parser.add_argument("--resize", type=int, default=None, metavar="R",
                        help="image folders, with --image-size S: resize the shorter side to "
                             "R >= S before the centre S x S crop (as torchvision's Resize(R) + "
                             "CenterCrop(S)); default S")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="image folders: decode the images into a file in DIR and train "
                             "from it memory-mapped (the set need not fit in memory; under "
                             "torchrun a machine's processes share it); the next command on "
                             "the same folder, or a resumed run, maps it instead of decoding")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where to train (default cpu; under torchrun cuda means "
                             "cuda:LOCAL_RANK)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"images per step, per process under torchrun ({batch_default})")
    parser.add_argument("--checkpoint-every", type=int, default=checkpoint_every,
                        help=f"steps between checkpoints ({checkpoint_every_help})")
    parser.add_argument("--amp", choices=["bf16"], default=None,
                        help="mixed precision: bfloat16 autocast of the trained networks "
                             "(CUDA only; a frozen classifier in the loop stays float32)")


def _reading(args: argparse.Namespace) -> dict:
    """The image-folder reading options of :func:`_common_args`, as the trainers' keywords."""
    return {"image_size": args.image_size, "channels": args.channels, "workers": args.workers,
            "cache_dir": args.cache_dir, "resize": args.resize}


def _check_resume(checkpoint: str | None, resume: bool) -> None:
    """The generator and inpainter commands start anew only without a checkpoint file and
    continue one only with ``--resume``: a rerun never replaces a checkpoint without a word."""
    import os

    if resume and not checkpoint:
        raise CLIError("--resume needs --checkpoint FILE: the checkpoint of the run to continue")
    if resume and not os.path.isfile(checkpoint):  # type: ignore[arg-type]
        raise CLIError(f"--resume: the checkpoint {checkpoint} does not exist (nothing to "
                       "continue: leave out --resume to start anew)")
    if not resume and checkpoint and os.path.isfile(checkpoint):
        raise CLIError(f"{checkpoint} exists: pass --resume to continue it or remove it")


def _check_common(args: argparse.Namespace) -> None:
    """Reject bad shared options before any data is read."""
    from captum_cf.training.data import check_data
    from captum_cf.training.distributed import check_amp, resolve_device

    for name in ("image_size", "batch_size", "checkpoint_every"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    try:
        check_data(args.data, args.image_size, args.channels, args.workers, args.resize)
        check_amp(args.amp, resolve_device(args.device))
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise CLIError(_message(err)) from err
    for option in ("out", "checkpoint"):
        if getattr(args, option, None):
            _check_writable(getattr(args, option), f"--{option}")


def _check_writable(path: str, option: str) -> None:
    """A file the run will write must be writable, checked before any data is read: a folder
    or an unwritable place failed after the whole training, with a traceback (the trained
    model lost when no checkpoint was kept)."""
    import os
    import tempfile

    if os.path.isdir(path):
        raise CLIError(f"{option} {path} is a folder: name the file to write (e.g. "
                       f"{os.path.join(path, 'model.pt')})")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise CLIError(f"{option} {path}: cannot write there ({err.strerror or err})") from err


def _message(err: BaseException) -> str:
    """A user error's message: a KeyError's own text, without the quotes ``str()`` adds."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err)


def _say(message: str) -> None:
    """Print the result line once (rank 0 under torchrun)."""
    import os

    if os.environ.get("RANK", "0") == "0":
        print(message)


# --- train classifier (zoo: digits-cnn, shapes-cnn) ---------------------------------------------


def _classifier_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help=_DATA_HELP + "; digits -> digits-cnn, shapes -> shapes-cnn")
    parser.add_argument("--out", required=True, help="weights file to write (.pt)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training set (default: 30 digits, 10 shapes and "
                             "folders)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file; an existing one is resumed exactly")
    parser.add_argument("--misplaced-dots", type=int, default=0, metavar="K",
                        help="shapes only: add K copies of every square with a dot painted away "
                             "from its place, labelled square (-> shapes-cnn-strict; default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _common_args(parser, "default 64", None, "default: one epoch")
    # For quick runs and tests: train and test on the first N images only.
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)


def _classifier_run(args: argparse.Namespace) -> int:
    from captum_cf.zoo.train import train_classifier

    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be >= 1, got {args.limit}")
    _check_common(args)
    try:
        acc = train_classifier(args.data, out=args.out, epochs=args.epochs, seed=args.seed,
                               limit=args.limit, checkpoint=args.checkpoint,
                               show_progress=not args.no_progress, **_reading(args),
                               batch_size=args.batch_size or 64, device=args.device,
                               amp=args.amp, checkpoint_every=args.checkpoint_every,
                               misplaced_dots=args.misplaced_dots)
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise CLIError(_message(err)) from err
    _say(f"test accuracy {acc:.4f}; weights written to {args.out}")
    return 0


TRAIN_COMMANDS["classifier"] = (
    "train a classifier (zoo: digits-cnn, shapes-cnn; or on an image folder)",
    _classifier_args,
    _classifier_run,
)


# --- train robust (zoo: digits-cnn-robust) ------------------------------------------------------


def _robust_args(parser: argparse.ArgumentParser) -> None:
    from captum_cf.zoo.robust import ROBUST_SETUP

    parser.add_argument("--data", required=True,
                        help=_DATA_HELP + "; digits -> digits-cnn-robust")
    parser.add_argument("--out", required=True, help="weights file to write (.pt)")
    parser.add_argument("--eps", type=float, default=ROBUST_SETUP["eps"],
                        help=f"L2 radius of the PGD attack (default {ROBUST_SETUP['eps']})")
    parser.add_argument("--steps", type=int, default=ROBUST_SETUP["steps"],
                        help=f"optimiser steps, batch 64 (default {ROBUST_SETUP['steps']})")
    parser.add_argument("--attack-steps", type=int, default=ROBUST_SETUP["attack_steps"],
                        help=f"PGD iterations per batch (default {ROBUST_SETUP['attack_steps']})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file; an existing one is resumed exactly")
    parser.add_argument("--init", default=None, metavar="MODEL",
                        help="start from a trained classifier of the same architecture "
                             "(zoo:<name> or a weights file): adversarial fine-tuning, "
                             "e.g. zoo:shapes-cnn -> shapes-cnn-robust")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    _common_args(parser, "default 64", 50, "default 50")


def _robust_run(args: argparse.Namespace) -> int:
    from captum_cf.zoo.robust import train_robust_classifier

    for name in ("steps", "attack_steps", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not args.eps > 0:
        raise CLIError(f"--eps must be > 0, got {args.eps}")
    _check_common(args)
    try:
        clean, robust = train_robust_classifier(
            args.data, out=args.out, eps=args.eps, steps=args.steps,
            attack_steps=args.attack_steps, seed=args.seed, limit=args.limit,
            checkpoint=args.checkpoint, show_progress=not args.no_progress,
            **_reading(args), batch_size=args.batch_size or 64,
            checkpoint_every=args.checkpoint_every, device=args.device, amp=args.amp,
            init=args.init)
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise CLIError(_message(err)) from err
    _say(f"clean test accuracy {clean:.4f}, L2-PGD robust accuracy (eps {args.eps}) {robust:.4f}; "
          f"weights written to {args.out}")
    return 0


TRAIN_COMMANDS["robust"] = (
    "adversarially train a robust classifier (zoo: digits-cnn-robust), L2 PGD",
    _robust_args,
    _robust_run,
)


# --- train ganmex (zoo: digits-ganmex) ----------------------------------------------------------


def _aux_args(parser: argparse.ArgumentParser, default: str = "") -> None:
    parser.add_argument("--aux-classifier", default=None, metavar="MODEL",
                        help="second frozen classifier (as --classifier) the "
                             f"generator must also move, e.g. zoo:digits-cnn-robust{default}")
    parser.add_argument("--aux-weight", type=float, default=None, metavar="W",
                        help="weight of the auxiliary classifier's loss (default 1 with "
                             "--aux-classifier)")


def _weights_args(parser: argparse.ArgumentParser) -> None:
    """State dicts for a --classifier / --aux-classifier given as module:factory."""
    parser.add_argument("--classifier-weights", default=None, metavar="FILE",
                        help="state dict of a --classifier given as module:factory or "
                             "path/file.py:factory (your own architecture, as in captum-cf "
                             "audit --model/--weights)")
    parser.add_argument("--aux-classifier-weights", default=None, metavar="FILE",
                        help="the same for --aux-classifier")


def _train_kwargs(args: argparse.Namespace) -> dict:
    """The keyword arguments both generator commands pass alike."""
    return {"classifier_weights": args.classifier_weights,
            "aux_classifier_weights": args.aux_classifier_weights}


def _check_aux(args: argparse.Namespace) -> None:
    if args.aux_weight is not None and args.aux_classifier is None:
        raise CLIError("--aux-weight needs --aux-classifier")
    if args.aux_weight is not None and not args.aux_weight > 0:
        raise CLIError(f"--aux-weight must be > 0, got {args.aux_weight}")


def _ganmex_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help=_DATA_HELP)
    parser.add_argument("--classifier", default=None,
                        help="classifier to explain: zoo:<name>, a weights file of captum-cf "
                             "train classifier, or module:factory with --classifier-weights "
                             "(default zoo:digits-cnn resp. zoo:shapes-cnn; required for DIR)")
    parser.add_argument("--out", required=True, help="generator weights file to write (.pt)")
    parser.add_argument("--steps", type=int, default=None,
                        help="generator steps in total (default 600 digits, 1200 shapes)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file written every --checkpoint-every steps")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint (must exist) instead of starting anew")
    _common_args(parser, "default 64, shapes 32", 50, "default 50")
    parser.add_argument("--lambda-cls", type=float, default=None, help="class loss weight (1)")
    parser.add_argument("--lambda-sim", type=float, default=None, help="L1 similarity weight (5)")
    parser.add_argument("--lambda-rec", type=float, default=None, help="cycle loss weight (0)")
    parser.add_argument("--edit", choices=["full", "mask"], default=None,
                        help="generator edit: full image or attention-masked "
                             "(default full for digits, mask for shapes)")
    parser.add_argument("--lambda-mask", type=float, default=None,
                        help="mask sparsity weight, --edit mask only (default per data set)")
    parser.add_argument("--init", default=None,
                        help="start from a trained generator (zoo:<name> or a weights file), "
                             "e.g. to follow a fine-tuned classifier in a few hundred steps")
    _aux_args(parser, " (--data shapes: default zoo:shapes-cnn-strict, 'none' drops it)")
    _weights_args(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--test-images", type=int, default=None, help=argparse.SUPPRESS)


def _ganmex_run(args: argparse.Namespace) -> int:

    from captum_cf.generative import GANMEXTrainConfig
    from captum_cf.zoo.generators import train_ganmex

    for name in ("steps", "limit", "checkpoint_every", "test_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    _check_resume(args.checkpoint, args.resume)
    _check_common(args)
    _check_aux(args)
    flags = ("lambda_cls", "lambda_sim", "lambda_rec", "lambda_mask")
    _check_config_flags(args, GANMEXTrainConfig, flags)
    # explicit flags win over the data set's defaults, also when equal to the class default;
    # every flag is recorded in checkpoints (None: not given), and train_config as before, so
    # that checkpoints of earlier versions resume
    overrides = {k: getattr(args, k) for k in flags}
    train_config = GANMEXTrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    try:
        metrics = train_ganmex(args.data, out=args.out, classifier=args.classifier,
                               steps=args.steps, seed=args.seed, checkpoint=args.checkpoint,
                               checkpoint_every=args.checkpoint_every,
                               train_config=train_config, train_overrides=overrides,
                               limit=args.limit, test_images=args.test_images,
                               show_progress=not args.no_progress, edit=args.edit,
                               init=args.init, aux_classifier=args.aux_classifier,
                               aux_weight=args.aux_weight, **_reading(args),
                               batch_size=args.batch_size, device=args.device, amp=args.amp,
                               log=_say, **_train_kwargs(args))
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise CLIError(_message(err)) from err
    _say(f"test flip rate {metrics['test_flip']:.4f} over {metrics['test_pairs']} ordered pairs, "
          f"mean L1 {metrics['test_l1']:.4f} (best step {metrics['best_step']}); "
          f"weights written to {args.out}")
    return 0


TRAIN_COMMANDS["ganmex"] = (
    "train a GANMEX counterfactual generator against a classifier (digits-ganmex)",
    _ganmex_args,
    _ganmex_run,
)


# --- train exaggeration (zoo: digits-exaggeration) ----------------------------------------------


def _exaggeration_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help=_DATA_HELP)
    parser.add_argument("--classifier", default=None,
                        help="classifier to explain: zoo:<name>, a weights file of captum-cf "
                             "train classifier, or module:factory with --classifier-weights "
                             "(default zoo:digits-cnn / zoo:shapes-cnn; required with a folder)")
    parser.add_argument("--positive", type=int, default=None,
                        help="class whose posterior the generator walks (default 8 for digits; "
                             "required otherwise)")
    parser.add_argument("--out", required=True, help="generator weights file to write (.pt)")
    parser.add_argument("--steps", type=int, default=None,
                        help="generator steps in total (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (default: <out>.ckpt) written every "
                             "--checkpoint-every steps")
    _common_args(parser, "default 32", 100, "default 100")
    parser.add_argument("--validate-every", type=int, default=100,
                        help="steps between keep-best validations (default 100)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint (must exist) instead of starting anew")
    _aux_args(parser)
    _weights_args(parser)
    parser.add_argument("--critic-steps", type=int, default=None, metavar="N",
                        help="critic updates per generator update (default 1)")
    parser.add_argument("--lambda-cyc", type=float, default=None, metavar="W",
                        help="weight of the cycle |x - G(G(x, c_t), c_x)|_1 (default 3)")
    parser.add_argument("--lambda-cls", type=float, default=None, metavar="W",
                        help="weight of the classifier's term KL(bin centre || f(G(x, c))) "
                             "(default 10)")
    parser.add_argument("--lambda-l1", type=float, default=None, metavar="W",
                        help="weight of the proximity |G(x, c) - x|_1 of every bin (default 0)")
    parser.add_argument("--lambda-step", type=float, default=None, metavar="W",
                        help="weight of the walk's smoothness, the mean squared pixel step "
                             "between neighbouring bins (default 0)")
    parser.add_argument("--lambda-real", type=float, default=None, metavar="W",
                        help="weight of the critic's unconditional realism score, which sees "
                             "real images of all bins (default 0)")
    parser.add_argument("--conditioning", choices=("thermometer", "onehot"), default=None,
                        help="the generator's bin code: thermometer (default; neighbouring "
                             "bins share parameters) or onehot (independent per bin)")
    parser.add_argument("--critic-conditioning", choices=("thermometer", "onehot"),
                        default=None, help="the critic's bin code (default thermometer)")
    parser.add_argument("--real-temperature", type=float, default=None, metavar="T",
                        help="bin the critic's real images by softmax(logits / T) so that "
                             "less confident real images fill the middle bins (default 1)")
    parser.add_argument("--cls-temperature", type=float, default=None, metavar="T",
                        help="temperature of the classifier's posterior in the generator's "
                             "loss (default 1; validation always at 1)")
    parser.add_argument("--aux-temperature", type=float, default=None, metavar="T",
                        help="the same for the auxiliary classifier's term (default 1)")
    parser.add_argument("--base-channels", type=int, default=None, metavar="N",
                        help="generator width at full resolution, x2 at 1/2 and x4 at 1/4 "
                             "(default 16; compute grows about with N squared)")
    parser.add_argument("--residual-blocks", type=int, default=None, metavar="N",
                        help="the generator's conditional residual blocks at 1/4 resolution "
                             "(default 2)")
    parser.add_argument("--critic-channels", type=int, default=None, metavar="N",
                        help="width of the critic's first layer (default 32)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)


#: flags that override a field of ExaggerationTrainConfig resp. ExaggerationConfig (same names,
#: and the names of train_exaggeration's keyword arguments)
_EXAGGERATION_TRAIN_FLAGS = ("critic_steps", "lambda_cls", "lambda_cyc", "lambda_l1",
                             "lambda_real", "lambda_step", "real_temperature",
                             "cls_temperature", "aux_temperature")
_EXAGGERATION_SIZE_FLAGS = ("base_channels", "residual_blocks", "critic_channels")


def _check_config_flags(args: argparse.Namespace, config: type, names: tuple[str, ...]) -> None:
    """Each given flag of ``names`` must be a valid value of ``config``'s field of that name:
    the config's own check, run before any data is read, its error naming the flag."""
    for name in names:
        value = getattr(args, name)
        if value is None:
            continue
        try:
            config(**{name: value})
        except (TypeError, ValueError) as err:
            raise CLIError(f"--{name.replace('_', '-')}: {err}") from err


def _exaggeration_run(args: argparse.Namespace) -> int:

    from captum_cf.generative.exaggeration import ExaggerationConfig
    from captum_cf.generative.exaggeration_trainer import ExaggerationTrainConfig
    from captum_cf.zoo.exaggeration import train_exaggeration

    for name in ("steps", "limit", "checkpoint_every", "validate_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    _check_config_flags(args, ExaggerationTrainConfig, _EXAGGERATION_TRAIN_FLAGS)
    _check_config_flags(args, ExaggerationConfig, _EXAGGERATION_SIZE_FLAGS)
    checkpoint = args.checkpoint or f"{args.out}.ckpt"
    _check_resume(checkpoint, args.resume)
    _check_common(args)
    _check_aux(args)
    try:
        metrics = train_exaggeration(
            args.data, out=args.out, classifier=args.classifier, positive=args.positive,
            steps=args.steps, seed=args.seed, checkpoint=checkpoint,
            checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
            limit=args.limit, show_progress=not args.no_progress, **_reading(args),
            batch_size=args.batch_size, device=args.device, amp=args.amp, log=_say,
            aux_classifier=args.aux_classifier, aux_weight=args.aux_weight,
            conditioning=args.conditioning, critic_conditioning=args.critic_conditioning,
            **_train_kwargs(args),
            **{name: getattr(args, name)
               for name in _EXAGGERATION_TRAIN_FLAGS + _EXAGGERATION_SIZE_FLAGS})
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise CLIError(_message(err)) from err
    _say(f"test compatibility r {metrics['test_r']:.3f}, MAE {metrics['test_mae']:.3f}, "
          f"identity L1 {metrics['test_identity']:.4f}, monotone {metrics['test_monotone']:.2f} "
          f"(best step {metrics['best_step']}); weights written to {args.out}")
    return 0


TRAIN_COMMANDS["exaggeration"] = (
    "train a progressive-exaggeration generator for one class against a classifier "
    "(digits-exaggeration)",
    _exaggeration_args,
    _exaggeration_run,
)


# --- train inpainter (zoo: digits-inpainter, shapes-inpainter) ----------------------------------


def _inpainter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help=_DATA_HELP + "; digits -> digits-inpainter, shapes -> "
                             "shapes-inpainter (a folder's labels are not used)")
    parser.add_argument("--out", required=True, help="weights file to write (.pt)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimisation steps (default 600 digits and 1-channel folders, "
                             "3600 shapes and RGB folders)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file, written every --checkpoint-every steps "
                             "(default: OUT.ckpt)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint (must exist) instead of starting anew")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and held-out images (quick runs)")
    _common_args(parser, "default 32 digits, 16 shapes", 200, "default 200")


def _inpainter_run(args: argparse.Namespace) -> int:
    from captum_cf.zoo.inpainters import train_inpainter

    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be >= 1, got {args.limit}")
    _check_common(args)
    checkpoint = args.checkpoint or f"{args.out}.ckpt"
    _check_resume(checkpoint, args.resume)
    try:
        l1 = train_inpainter(args.data, out=args.out, steps=args.steps, seed=args.seed,
                             limit=args.limit, checkpoint=checkpoint, resume=args.resume,
                             show_progress=not args.no_progress, **_reading(args),
                             batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                             device=args.device, amp=args.amp)
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise CLIError(_message(err)) from err
    _say(f"held-out hole L1 {l1:.4f}; weights written to {args.out}")
    return 0


TRAIN_COMMANDS["inpainter"] = (
    "train a zoo inpainter (digits-inpainter or shapes-inpainter)",
    _inpainter_args,
    _inpainter_run,
)
