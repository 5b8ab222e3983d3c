"""Zoo GANMEX generators (``"digits-ganmex"``, ``"shapes-ganmex"``) and their trainer.

``train_ganmex`` is what ``captum-cf train ganmex`` runs: it loads the classifier to explain,
holds out validation images for keep-best (digits: 15 % of the training split; shapes: their
own seeds, 7 for validation and 8 for test), trains
:class:`~captum_cf.generative.GANMEXTrainer` with checkpoints, measures the flip rate over all
ordered class pairs on the test split and writes the best generator in the zoo format (float16).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from captum_cf.generative.ganmex import GANMEXConfig, GANMEXGenerator
from captum_cf.generative.ganmex_trainer import (
    GANMEXTrainConfig,
    GANMEXTrainer,
    counterfactual_passes,
)
from captum_cf.training import check_frozen_classifier, check_label_agreement, records_run_options
from captum_cf.training.checkpoint import save_checkpoint
from captum_cf.training.data import take_rows, unit_images
from captum_cf.zoo._registry import WEIGHTS_FORMAT, ZooEntry, register
from captum_cf.zoo.models import logits_model

__all__ = ["train_ganmex", "build_ganmex_generator", "all_pairs", "GANMEX_SETUPS",
           "DIGITS_GANMEX_RECIPE", "recipe_command"]

#: per data set: default classifier, steps and validation share
GANMEX_SETUPS: dict[str, dict[str, Any]] = {
    "digits": {"name": "digits-ganmex", "classifier": "zoo:digits-cnn", "steps": 600,
               "val_fraction": 0.15, "validate_every": 25},
    # shapes: validation and test images come from their own seeds (7, 8), held out from both
    # shapes-cnn (train seed 0, test seed 1) and the generator (trained on the seed-0 images);
    # a CPU-sized generator (16 base channels, 0.29M parameters) and half of every batch drawn
    # from the part pair (square <-> square with dot) that the one-vs-one benchmark explains;
    # a masked edit (GANMEXConfig.edit="mask", sparsity weight 10, total variation 1, both
    # ramped in over 200 steps; see RESULTS.md "ganmex") so that the counterfactual equals the
    # input outside the few pixels it edits; the frozen shapes-cnn-strict (trained with
    # misplaced-dot negatives) as auxiliary classifier (weight aux_weight) so that the dot is
    # painted where a square with dot has it, not anywhere shapes-cnn accepts a spot
    # (RESULTS.md "shapes-ganmex round 4"; aux_classifier="none" trains without it)
    "shapes": {"name": "shapes-ganmex", "classifier": "zoo:shapes-cnn", "steps": 1200,
               "validate_every": 50, "val_seed": 7, "n_val": 400, "test_seed": 8,
               "n_test": 400, "aux_classifier": "zoo:shapes-cnn-strict", "aux_weight": 1.0,
               "config": {"base_channels": 16, "critic_channels": 16, "edit": "mask"},
               "train_config": {"batch_size": 32, "focus_pairs": ((1, 3),), "focus_share": 0.5,
                                "lambda_mask": 10.0, "lambda_mask_tv": 1.0, "mask_warmup": 200}},
}


#: the shipped digits-ganmex run: ``train_ganmex("digits", **DIGITS_GANMEX_RECIPE)``, i.e. its zoo
#: command; the auxiliary adversarially trained classifier makes the edits strokes that an
#: independent judge also reads as the target (benchmarks/RESULTS.md "independent_judge")
DIGITS_GANMEX_RECIPE: dict[str, Any] = {
    "classifier": "zoo:digits-cnn", "aux_classifier": "zoo:digits-cnn-robust", "aux_weight": 1.0,
    "steps": 400,
}


def recipe_command(kind: str, data: str, recipe: dict[str, Any], out: str) -> str:
    """The ``captum-cf train <kind>`` command line of a zoo recipe (keyword arguments)."""
    flags = " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float)
                     else f"--{k.replace('_', '-')} {v}" for k, v in recipe.items())
    return f"captum-cf train {kind} --data {data} {flags} --out {out}"


#: steps of the shipped shapes-ganmex run and the flip rate bar its test checks (see RESULTS.md)
SHAPES_GANMEX_STEPS = GANMEX_SETUPS["shapes"]["steps"]
SHAPES_GANMEX_EXPECTED = 0.9


def build_ganmex_generator(config: dict[str, Any]) -> nn.Module:
    """Zoo builder: an untrained :class:`GANMEXGenerator` from a stored config dict."""
    return GANMEXGenerator(GANMEXConfig(**config))


def all_pairs(labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Every (image, other class) pair: indices (N*(K-1),) and targets (N*(K-1),)."""
    n = labels.shape[0]
    shifts = torch.arange(1, num_classes).repeat(n)
    index = torch.arange(n).repeat_interleave(num_classes - 1)
    return index, (labels[index] + shifts) % num_classes


def _aux_setup(aux_classifier: str | None, aux_weight: float | None, train_config: Any,
               dev: Any, weights: str | None = None) -> tuple[nn.Module | None, Any]:
    """The auxiliary classifier on ``dev`` (or None) and the train config with its weight
    (``aux_weight``, else the config's ``lambda_aux``, else 1); ``lambda_aux > 0`` without a
    classifier is a ValueError."""
    if aux_classifier is None:
        if weights is not None:
            raise ValueError("aux_classifier_weights needs aux_classifier (its module:factory)")
        if train_config.lambda_aux > 0:
            raise ValueError(
                "lambda_aux > 0 needs aux_classifier ('zoo:<name>' or a weights file)")
        return None, train_config
    aux = _load_zoo_model(aux_classifier, what="aux_classifier", weights=weights).to(dev)
    weight = aux_weight if aux_weight is not None else train_config.lambda_aux or 1.0
    return aux, dataclasses.replace(train_config, lambda_aux=float(weight))


def _load_zoo_model(spec: str, what: str = "classifier", weights: str | None = None) -> nn.Module:
    """A model from ``"zoo:<name>"``, a zoo weights file, or (a classifier of the user's own
    architecture) ``module:factory`` / ``path/file.py:factory`` with the state dict ``weights``.
    """
    from captum_cf import zoo
    from captum_cf._user_model import build_factory_model, is_factory_spec
    from captum_cf.zoo._registry import spec_path

    spec = os.fspath(spec)
    classifier = what != "init"  # classifiers may be the user's own; a generator to start from not
    if classifier and is_factory_spec(spec):
        return build_factory_model(spec, weights).eval()
    path = spec_path(spec, what, factory=classifier)  # checks the spec
    if weights is not None:
        raise ValueError(f"{what}_weights is the state dict of a module:factory {what}; "
                         f"{spec!r} names a zoo weights file, which holds its own weights")
    # a zoo name goes through zoo.load: its error for missing weights names their command
    return zoo.load(spec[4:]) if spec.startswith("zoo:") else zoo.load_file(path)


def _check_fits(model: nn.Module | None, images: Tensor, what: str, spec: str | None,
                num_classes: int | None = None) -> None:
    """``model`` (loaded from ``spec``) must take the training images (the trainers' own check,
    :func:`captum_cf.training.check_frozen_classifier`, with the spec and the CLI's fix named).

    Raises:
        ValueError: naming ``what`` (``classifier``, ``aux_classifier``), the spec, the images'
            shape and the model's own error, with the fix (a classifier takes the size it was
            trained at: a weights file's own size is named); or logits of another number of
            classes than ``num_classes`` (the training data's), when given.
    """
    from captum_cf.zoo import trained_image_size

    size = trained_image_size(model)
    if size is not None and size != images.shape[-1]:
        hint = (f"{spec} was trained on {size}x{size} images: pass --image-size {size} "
                f"(image_size={size}), or train a classifier at this size first")
    else:
        hint = ("a classifier takes the image size and channels it was trained at (zoo digits "
                "models 32 px grey, shapes models 64 px RGB): leave --image-size out, or train a "
                "classifier at this size first (captum-cf train classifier --data ... "
                "--image-size S); --channels 1|3 reads an image folder as greyscale or RGB")
    check_frozen_classifier(model, images, f"{what} {spec!r}", num_classes=num_classes,
                            hint=hint)


def _ready_classifiers(model: nn.Module, aux: nn.Module | None, images: Tensor, spec: str,
                       aux_spec: str | None, train: tuple[Tensor, Tensor, str] | None = None,
                       ) -> tuple[nn.Module, nn.Module | None]:
    """The frozen classifier and the auxiliary one (or None) as the generator trainers use them:
    a Hugging Face style model (an output with ``.logits``) through its logits, each checked to
    take the training ``images`` (:func:`_check_fits`) and, given ``train`` = ``(images,
    labels, data)``, to put them in their folder's classes (a warning otherwise, on the first
    process: :func:`~captum_cf.training.check_label_agreement`)."""
    from captum_cf._user_model import is_factory_spec
    from captum_cf.training.data import folder_class_names
    from captum_cf.training.distributed import distributed_context
    from captum_cf.training.loop import _COUNTERFACTUAL_CLASSES

    model = logits_model(model, images)
    aux = None if aux is None else logits_model(aux, images)
    names = None if train is None else folder_class_names(train[2])
    # a classifier of other classes fails here, before the label agreement's warning
    classes = len(names) if names else None
    _check_fits(model, images[:1], "classifier", spec, classes)
    _check_fits(aux, images[:1], "aux_classifier", aux_spec, classes)
    if train is not None and distributed_context(images.device).is_main:
        x, y, data = train
        for net, name, what in ((model, spec, "classifier"), (aux, aux_spec, "aux_classifier")):
            if net is not None:
                untrained = (f" A module:factory {what} is untrained unless it loads its weights "
                             f"or --{what.replace('_', '-')}-weights gives them"
                             if name is not None and is_factory_spec(os.fspath(name)) else "")
                check_label_agreement(net, x, y, images.device, f"{what} {name!r}", names,
                                      consequence=_COUNTERFACTUAL_CLASSES + "." + untrained)
    return model, aux


def _split(images: Tensor, labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, ...]:
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    n_val = int(round(fraction * images.shape[0]))
    val, train = order[:n_val], order[n_val:]
    # a memory-mapped folder stays out of memory: its shares are mapped files too
    return take_rows(images, train), labels[train], take_rows(images, val), labels[val]


@records_run_options
def train_ganmex(
    data: str = "digits",
    out: str | os.PathLike = "ganmex.pt",
    classifier: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    config: GANMEXConfig | None = None,
    train_config: GANMEXTrainConfig | None = None,
    limit: int | None = None,
    test_images: int | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = print,
    edit: str | None = None,
    init: str | os.PathLike | None = None,
    *,
    aux_classifier: str | None = None,
    aux_weight: float | None = None,
    image_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    amp: str | None = None,
    classifier_weights: str | None = None,
    aux_classifier_weights: str | None = None,
    channels: int | None = None,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    resize: int | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a GANMEX generator against a classifier and write it in the zoo format.

    Args:
        data (str): ``"digits"``, ``"shapes"`` or an image folder ``DIR/<class>/<image>``
            (validation: 15 % of its training split; test: its held-out share).
        out (path): weights file (``{"format", "name", "arch", "config", "state_dict",
            "metrics"}``, float16), loadable by ``captum_cf.zoo.load_file``.
        classifier (str, optional): ``"zoo:<name>"``, a zoo weights file (from ``captum-cf train
            classifier``) or a model of your own architecture, ``module:factory`` or
            ``path/file.py:factory`` (the spec of ``captum-cf audit --model``) with its state
            dict in ``classifier_weights`` (default per data set; required for a folder).
        steps (int, optional): generator steps in total (default 600 digits, 1200 shapes).
        seed (int): seed of everything random.
        checkpoint (path, optional): checkpoint file; an existing one is resumed exactly.
        checkpoint_every (int): steps between checkpoints.
        config, train_config: model sizes and training settings (defaults per data set: a
            field of ``train_config`` left at the class default takes the data set's value,
            so a value equal to the class default cannot be forced here; use
            ``train_overrides``).
        limit (int, optional): use only the first ``limit`` images of each split (quick runs).
        test_images (int, optional): measure the flip rate on the first ``test_images`` test
            images only (default: all).
        show_progress (bool): tqdm progress bars (reading a folder's images, the steps).
        log (callable, optional): receives the loss and validation lines.
        edit (str, optional): ``"full"`` or ``"mask"`` (:class:`GANMEXConfig`; default per
            data set: ``"full"`` digits, ``"mask"`` shapes); ignored when ``config`` is given.
        init (str or path, optional): start from this trained generator (``"zoo:<name>"`` or a
            weights file) instead of the identity: the way to follow a changed classifier in a
            few hundred steps (:func:`~captum_cf.generative.adapt_ganmex`). Its architecture is
            kept (``config`` and ``edit`` must be left out) and the data set's mask warm-up is
            dropped (it exists for the identity start); a fresh critic is trained.
        aux_classifier (str, optional): ``"zoo:<name>"`` or a weights file of a second frozen
            classifier the counterfactuals must also move to the target (weight
            ``aux_weight``, else ``train_config.lambda_aux``, else 1), e.g.
            ``"zoo:digits-cnn-robust"``: an adversarially trained classifier is moved by strokes,
            not by small classifier-specific edits. Validation (keep-best) then adds its flip rate.
            Default per data set: ``"zoo:shapes-cnn-strict"`` for shapes (weight 1), none
            otherwise; ``"none"`` trains without one.
        aux_weight (float, optional): weight of the auxiliary classifier's loss (> 0).
        image_size (int, optional): image side (default: the data set's own).
        channels, workers, cache_dir, resize: how an image folder is read (1 or 3 channels,
            default from its files; decoding processes; a folder keeping the decoded images;
            the shorter side before the crop, default ``image_size``), as
            :func:`~captum_cf.training.data.folder_images` reads it, into ``uint8``.
        batch_size (int, optional): images per step (default: ``train_config``'s; per process).
        device (str, optional): ``"cpu"`` (default) or ``"cuda"``.
        amp (str, optional): ``"bf16"``: bfloat16 autocast of generator and critic (CUDA only;
            the frozen classifier and the gradient penalty stay in float32).
        classifier_weights, aux_classifier_weights (str, optional): state dict files of a
            ``module:factory`` classifier resp. auxiliary classifier.
        train_overrides (dict, optional): ``{field: value}`` of :class:`GANMEXTrainConfig`
            set last, over the data set's defaults and ``train_config`` (``captum-cf train
            ganmex --lambda-mask 1`` on shapes: 1, not the shapes default 10); None values
            are not given.

    Returns:
        dict: the metrics stored in the file (``test_flip`` over all ordered class pairs,
        ``test_l1``, ``best_step``, validation metrics of the kept generator).

    Warns:
        RuntimeWarning: the classifier (or the auxiliary one) puts no more training images in
            their folder's class than guessing would (plus 0.1): its classes are likely not the
            folder's (:func:`~captum_cf.training.check_label_agreement`).
    """

    from captum_cf.training.data import check_data, data_name, is_folder
    from captum_cf.training.distributed import check_amp, distributed_context, resolve_device

    check_data(data, image_size, channels, workers, resize)
    if aux_classifier is None and not is_folder(data) and "aux_classifier" in GANMEX_SETUPS[data]:
        aux_classifier = GANMEX_SETUPS[data]["aux_classifier"]
        if aux_weight is None and (train_config is None or train_config.lambda_aux == 0):
            aux_weight = GANMEX_SETUPS[data]["aux_weight"]
    elif aux_classifier == "none":
        aux_classifier = None
    if aux_weight is not None and (aux_classifier is None or not aux_weight > 0):
        raise ValueError(f"aux_weight must be > 0 and needs aux_classifier, got aux_weight "
                         f"{aux_weight!r} with aux_classifier {aux_classifier!r}")
    if is_folder(data):
        setup = {"name": f"{data_name(data)}-ganmex", "classifier": None, "steps": 600,
                 "val_fraction": 0.15, "validate_every": 25}
        if classifier is None:
            raise ValueError("classifier (--classifier) is required with an image folder: a "
                             "weights file (e.g. from captum-cf train classifier --data DIR), "
                             "zoo:<name> or your model's module:factory with classifier_weights "
                             "(--classifier-weights)")
    else:
        setup = GANMEX_SETUPS[data]
    dev = resolve_device(device)
    distributed_context(dev)  # under torchrun: join the group now, the processes share decoding
    check_amp(amp, dev)
    model = _load_zoo_model(classifier or setup["classifier"], weights=classifier_weights).to(dev)
    x_tr, y_tr, x_val, y_val, x_te, y_te, test_desc = _ganmex_data(data, setup, seed, image_size,
                                                                   channels, show_progress,
                                                                   workers, cache_dir, resize)
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
        x_val, y_val = x_val[:limit], y_val[:limit]
    num_classes = int(y_tr.max()) + 1
    start = None
    if init is not None:
        if config is not None or edit is not None:
            raise ValueError("init fixes the generator's architecture: leave config and edit out")
        start = _load_zoo_model(str(init), what="init")
        if not isinstance(start, GANMEXGenerator):
            raise ValueError(f"init must be a GANMEX generator, got a {type(start).__name__}")
        config = start.config
    sizes = {**setup.get("config", {}), **({"edit": edit} if edit else {})}
    config = config or GANMEXConfig.for_images(x_tr.shape[-1], x_tr.shape[1], num_classes,
                                               **sizes)
    train_config = train_config or GANMEXTrainConfig()
    if "train_config" in setup:  # data-set defaults for the fields the caller left at default
        default = GANMEXTrainConfig()
        train_config = GANMEXTrainConfig(**{
            **setup["train_config"],
            **{k: v for k, v in train_config.to_dict().items() if v != getattr(default, k)},
        })
    train_overrides = {k: v for k, v in (train_overrides or {}).items() if v is not None}
    if "lambda_mask" in train_overrides and config.edit != "mask":
        raise ValueError("lambda_mask (--lambda-mask) weighs the mask of a generator with "
                         "edit='mask' (--edit mask); this one edits the full image")
    if train_overrides:  # given explicitly (the command's --lambda-* flags): they win
        train_config = dataclasses.replace(train_config, **train_overrides)
    if start is not None:
        train_config = dataclasses.replace(train_config, mask_warmup=0)
    if batch_size is not None:
        train_config = dataclasses.replace(train_config, batch_size=batch_size)
    aux, train_config = _aux_setup(aux_classifier, aux_weight, train_config, dev,
                                   aux_classifier_weights)
    model, aux = _ready_classifiers(model, aux, unit_images(x_tr[:2]).to(dev),
                                    classifier or setup["classifier"], aux_classifier,
                                    train=(x_tr, y_tr, data))
    torch.manual_seed(seed)  # model initialisation (the trainer reseeds for training randomness)
    generator = GANMEXGenerator(config)
    if start is not None:
        generator.load_state_dict(start.state_dict())
    trainer = GANMEXTrainer(
        generator, model, x_tr, y_tr, x_val, y_val,
        config=train_config, seed=seed, checkpoint_path=checkpoint,
        checkpoint_every=checkpoint_every, validate_every=setup["validate_every"], log=log,
        device=dev, amp=amp, aux_classifier=aux,
    )
    del x_tr  # the trainer holds the images on a GPU where they fit: free the host copy
    trainer.resume_if_exists()
    trainer.fit(steps or setup["steps"], show_progress=show_progress)
    # measured where it trained (the CPU for the shipped zoo generators), one pass over the
    # test pairs, a batch at a time (no copy of every image per target)
    generator = GANMEXGenerator(config).to(dev)
    generator.load_state_dict(trainer.best_state("generator"))
    generator.eval()
    x_te, y_te = x_te[:test_images], y_te[:test_images]
    index, targets = all_pairs(y_te, num_classes)
    test, per_target = pair_metrics(generator, model, x_te, index, targets, num_classes)
    metrics = {
        "test_flip": test["flip"], "test_l1": test["l1"], "test_data": test_desc,
        "test_flip_per_target": per_target,
        "test_pairs": int(index.numel()), "steps": trainer.step,
        "best_step": trainer.best["step"] if trainer.best else trainer.step,
        **{f"val_{k}": v for k, v in (trainer.best or {}).get("metrics", {}).items()},
        "classifier": classifier or setup["classifier"], "seed": seed,
        **({"classifier_weights": str(classifier_weights)} if classifier_weights else {}),
        **({"init": str(init)} if init is not None else {}),
        **({"aux_classifier": aux_classifier} if aux_classifier is not None else {}),
    }
    if trainer.dist.world_size > 1:
        metrics["processes"] = trainer.dist.world_size
    if distributed_context(dev).is_main:
        _save_generator(out, setup["name"], generator, trainer.config.to_dict(), metrics)
    trainer.dist.barrier()
    return metrics


def _ganmex_data(data: str, setup: dict[str, Any], seed: int, image_size: int | None = None,
                 channels: int | None = None, show_progress: bool = False,
                 workers: int = 0,
                 cache_dir: str | os.PathLike | None = None,
                 resize: int | None = None) -> tuple[Any, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test, test description) of a data set (a
    folder's images ``uint8``, as :func:`~captum_cf.zoo.train.classifier_data`)."""
    from captum_cf.zoo.train import classifier_data

    x_tr, y_tr, x_te, y_te, test_desc = classifier_data(data, image_size, channels,
                                                        show_progress, workers, cache_dir,
                                                        resize)
    if "val_seed" not in setup:  # validation: a share of the training split
        x_tr, y_tr, x_val, y_val = _split(x_tr, y_tr, setup["val_fraction"], seed)
        return x_tr, y_tr, x_val, y_val, x_te, y_te, test_desc
    from captum_cf.datasets import SyntheticShapes

    size = x_tr.shape[-1]
    val = SyntheticShapes(setup["n_val"], size=size, seed=setup["val_seed"])
    test = SyntheticShapes(setup["n_test"], size=size, seed=setup["test_seed"])
    test_desc = f"SyntheticShapes({setup['n_test']}, size={size}, seed={setup['test_seed']})"
    return x_tr, y_tr, val.images, val.labels, test.images, test.labels, test_desc


@torch.no_grad()
def pair_metrics(generator: nn.Module, model: nn.Module, images: Tensor, index: Tensor,
                 targets: Tensor, num_classes: int, batch_size: int = 256,
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Flip rate and L1 of ``G(images[index], targets)`` (as
    :func:`~captum_cf.generative.ganmex_trainer.evaluate_counterfactuals`) and the flip rate per
    target class, from one pass over the pairs, ``batch_size`` at a time on the generator's
    device; ``images`` (float or ``uint8``) may stay on the CPU.

    Returns:
        tuple: ``({"flip", "l1"}, {str(class): flip rate})`` (classes without pairs left out).
    """
    preds, l1 = [], 0.0
    for x, _, cf, predicted in counterfactual_passes(generator, model, images, targets,
                                                     next(generator.parameters()).device,
                                                     batch_size, index):
        preds.append(predicted.cpu())
        l1 += float((cf - x).abs().flatten(1).mean(1).sum())
    pred, n = torch.cat(preds), index.shape[0]
    per_target = {str(c): float((pred[targets == c] == c).float().mean())
                  for c in range(num_classes) if bool((targets == c).any())}
    return {"flip": float((pred == targets).sum()) / n, "l1": l1 / n}, per_target


def _save_generator(path: str | os.PathLike, name: str, generator: GANMEXGenerator,
                    train_config: dict[str, Any], metrics: dict[str, Any]) -> None:
    # float16 storage halves the shipped size; load() casts back to float32.
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in generator.state_dict().items()}
    save_checkpoint(path, {
        "format": WEIGHTS_FORMAT, "name": name, "arch": "ganmex-generator",
        "config": generator.config.to_dict(), "state_dict": state,
        "metrics": {**metrics, "train_config": train_config},
    })
    os.chmod(path, 0o644)


def train_digits_ganmex(out: str | os.PathLike, seed: int = 0, show_progress: bool = True) -> float:
    """Reproduce ``digits-ganmex.pt``; returns its test flip rate over all class pairs."""
    metrics = train_ganmex("digits", out=out, seed=seed, show_progress=show_progress,
                           **DIGITS_GANMEX_RECIPE)
    return float(metrics["test_flip"])


register(ZooEntry(
    name="digits-ganmex",
    arch="ganmex-generator",
    builder=build_ganmex_generator,
    weights="digits-ganmex.pt",
    train=train_digits_ganmex,
    command=recipe_command("ganmex", "digits", DIGITS_GANMEX_RECIPE, "digits-ganmex.pt"),
    description="GANMEX generator G(x, t) trained against digits-cnn, 1x32x32, 10 classes",
    metric="test_flip",
    expected=0.9,
))


def train_shapes_ganmex(out: str | os.PathLike, seed: int = 0, show_progress: bool = True) -> float:
    """Reproduce ``shapes-ganmex.pt``; returns its test flip rate over all class pairs."""
    metrics = train_ganmex("shapes", out=out, seed=seed, steps=SHAPES_GANMEX_STEPS,
                           show_progress=show_progress)
    return float(metrics["test_flip"])


register(ZooEntry(
    name="shapes-ganmex",
    arch="ganmex-generator",
    builder=build_ganmex_generator,
    weights="shapes-ganmex.pt",
    train=train_shapes_ganmex,
    command="captum-cf train ganmex --classifier zoo:shapes-cnn --data shapes "
    f"--steps {SHAPES_GANMEX_STEPS} --out shapes-ganmex.pt",
    description="GANMEX generator G(x, t) trained against shapes-cnn, 3x64x64, 4 classes "
    "(batches over-sample the part pair square <-> square with dot)",
    metric="test_flip",
    expected=SHAPES_GANMEX_EXPECTED,
))
