"""Zoo entry ``"digits-exaggeration"`` and the trainer function of exaggeration generators.

``train_exaggeration`` is what ``captum-cf train exaggeration`` runs: it loads the classifier,
holds out a validation split of the training images for keep-best, trains
:class:`~captum_cf.generative.exaggeration_trainer.ExaggerationTrainer` with checkpoints,
measures compatibility on the test split and writes the best generator (float16) in the zoo
format.

The shipped ``digits-exaggeration.pt`` is one run of its zoo command from scratch
(:data:`DIGITS_EXAGGERATION_RECIPE`: ``digits-cnn`` in the loop, the adversarially trained
``digits-cnn-robust`` as auxiliary classifier, a scale and shift per bin in the generator,
the critic's real digits binned at temperature 3, ``digits-cnn``'s term at temperature 2, 3000
steps, seed 0); a rerun on one CPU thread writes the same tensors bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
from captum_cf.generative.exaggeration_trainer import (
    ExaggerationTrainConfig,
    ExaggerationTrainer,
    evaluate_exaggeration,
)
from captum_cf.training import records_run_options
from captum_cf.training.checkpoint import save_checkpoint
from captum_cf.training.data import DeviceImages
from captum_cf.zoo._registry import WEIGHTS_FORMAT, ZooEntry, register
from captum_cf.zoo.generators import recipe_command

__all__ = ["train_exaggeration", "build_exaggeration_generator", "EXAGGERATION_STEPS",
           "DIGITS_EXAGGERATION_RECIPE"]

#: default generator steps per data set
EXAGGERATION_STEPS = {"digits": 3000}
#: the classifier explained when none is given (an image folder needs one)
_DEFAULT_CLASSIFIER = {"digits": "zoo:digits-cnn", "shapes": "zoo:shapes-cnn"}

#: the shipped digits-exaggeration run: ``train_exaggeration("digits", **DIGITS_EXAGGERATION_
#: RECIPE)``, i.e. its zoo command, from scratch (seed 0)
DIGITS_EXAGGERATION_RECIPE: dict[str, Any] = {
    "classifier": "zoo:digits-cnn", "positive": 8, "aux_classifier": "zoo:digits-cnn-robust",
    "aux_weight": 10.0, "conditioning": "onehot", "real_temperature": 3.0,
    "cls_temperature": 2.0, "steps": 3000,
}


def build_exaggeration_generator(config: dict[str, Any]) -> nn.Module:
    """Zoo builder: an untrained :class:`ExaggerationGenerator` from a stored config dict."""
    return ExaggerationGenerator(ExaggerationConfig(**config))


@records_run_options
def train_exaggeration(
    data: str = "digits",
    out: str | os.PathLike = "exaggeration.pt",
    classifier: str | None = None,
    positive: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    validate_every: int = 100,
    val_fraction: float = 0.15,
    config: ExaggerationConfig | None = None,
    train_config: ExaggerationTrainConfig | None = None,
    limit: int | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = print,
    *,
    image_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    amp: str | None = None,
    aux_classifier: str | None = None,
    aux_weight: float | None = None,
    lambda_l1: float | None = None,
    lambda_real: float | None = None,
    lambda_step: float | None = None,
    conditioning: str | None = None,
    critic_conditioning: str | None = None,
    real_temperature: float | None = None,
    cls_temperature: float | None = None,
    aux_temperature: float | None = None,
    lambda_cyc: float | None = None,
    lambda_cls: float | None = None,
    critic_steps: int | None = None,
    base_channels: int | None = None,
    residual_blocks: int | None = None,
    critic_channels: int | None = None,
    classifier_weights: str | None = None,
    aux_classifier_weights: str | None = None,
    channels: int | None = None,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    resize: int | None = None,
) -> dict[str, Any]:
    """Train a progressive-exaggeration generator for "is it class ``positive``".

    Args:
        data (str): ``"digits"`` (1x32x32), ``"shapes"`` or an image folder
            ``DIR/<class>/<image>``.
        out (path): weights file ``{"format", "name", "arch", "config", "state_dict", "metrics"}``
            (float16), loadable by ``captum_cf.zoo.load_file``.
        classifier (str): ``"zoo:<name>"``, a zoo weights file or a model of your own
            architecture, ``module:factory`` / ``path/file.py:factory`` (the spec of
            ``captum-cf audit --model``) with its state dict in ``classifier_weights``; default
            ``zoo:digits-cnn`` / ``zoo:shapes-cnn``, required with an image folder.
        positive (int): the class whose posterior the bins measure (default 8 on digits,
            required otherwise).
        steps (int, optional): generator steps in total (default 3000 on digits).
        seed (int): seed of everything random.
        checkpoint (path, optional): checkpoint file; an existing one is resumed exactly.
        checkpoint_every, validate_every (int): steps between checkpoints resp. validations.
        val_fraction (float): share of the training images held out for keep-best.
        config, train_config: model sizes and training settings.
        limit (int, optional): only the first ``limit`` images of each split (quick runs).
        show_progress (bool): tqdm progress bars (reading a folder's images, the steps).
        log (callable, optional): receives loss and validation lines.
        image_size (int, optional): image side (default: the data set's own).
        channels, workers, cache_dir, resize: how an image folder is read (1 or 3 channels,
            default from its files; decoding processes; a folder keeping the decoded images;
            the shorter side before the crop, default ``image_size``), as
            :func:`~captum_cf.training.data.folder_images` reads it, into ``uint8``.
        batch_size (int, optional): images per step (default: ``train_config``'s; per process).
        device (str, optional): ``"cpu"`` (default) or ``"cuda"``.
        amp (str, optional): ``"bf16"``: bfloat16 autocast of generator and discriminator
            (CUDA only; the frozen classifier stays in float32).
        aux_classifier (str, optional): ``"zoo:<name>"`` or a weights file of a second frozen
            classifier whose posterior must also follow the walk (weight ``aux_weight``, else
            ``train_config.lambda_aux``, else 1), e.g. ``"zoo:digits-cnn-robust"``.
        aux_weight (float, optional): weight of the auxiliary classifier's loss (> 0).
        lambda_l1 (float, optional): overrides ``train_config.lambda_l1``, the weight of the
            proximity ``|G(x, c_t) - x|_1`` (>= 0).
        lambda_real (float, optional): overrides ``train_config.lambda_real``, the weight of the
            critic's unconditional realism score (>= 0).
        lambda_step (float, optional): overrides ``train_config.lambda_step``, the weight of
            the walk's smoothness ``|G(x, c_t) - G(x, c_t +- 1)|^2`` (>= 0).
        conditioning (str, optional): overrides ``config.conditioning``, the generator's bin
            code (``"thermometer"`` or ``"onehot"``).
        critic_conditioning (str, optional): overrides ``config.critic_conditioning``.
        real_temperature (float, optional): overrides ``train_config.real_temperature``, the
            temperature of the posterior that bins the real images for the critic (> 0).
        cls_temperature (float, optional): overrides ``train_config.cls_temperature``, the
            temperature of the classifier's posterior in the generator's loss (> 0).
        aux_temperature (float, optional): overrides ``train_config.aux_temperature``, the
            same for the auxiliary classifier's term (> 0).
        lambda_cyc (float, optional): overrides ``train_config.lambda_cyc``, the weight of the
            cycle ``|x - G(G(x, c_t), c_x)|_1`` (>= 0).
        lambda_cls (float, optional): overrides ``train_config.lambda_cls``, the weight of
            the classifier's term ``KL(q_t || f(G(x, c_t)))`` (>= 0; default 10).
        critic_steps (int, optional): overrides ``train_config.critic_steps``, the critic
            updates per generator update (>= 1).
        base_channels, residual_blocks, critic_channels (int, optional): override ``config``'s
            sizes: the generator's width at full resolution (default 16; x2 at 1/2, x4 at
            1/4), its conditional residual blocks at 1/4 resolution (default 2) and the
            critic's first width (default 32). Compute per step grows about with
            ``base_channels ** 2``.
        classifier_weights, aux_classifier_weights (str, optional): state dict files of a
            ``module:factory`` classifier resp. auxiliary classifier.

    Returns:
        dict: metrics stored in the file: ``test_r``, ``test_mae``, ``test_identity``,
        ``test_monotone`` (on the test split, all bins), ``best_step``, validation metrics.

    Warns:
        RuntimeWarning: the classifier (or the auxiliary one) puts no more training images in
            their folder's class than guessing would (plus 0.1): its classes are likely not the
            folder's (:func:`~captum_cf.training.check_label_agreement`).
    """
    import dataclasses

    from captum_cf.training.data import check_data, data_name, unit_images
    from captum_cf.training.distributed import check_amp, distributed_context, resolve_device
    from captum_cf.zoo.generators import (
        _aux_setup,
        _load_zoo_model,
        _ready_classifiers,
        _split,
    )
    from captum_cf.zoo.train import classifier_data

    check_data(data, image_size, channels, workers, resize)
    if classifier is None:
        if not isinstance(data, str) or data not in _DEFAULT_CLASSIFIER:
            raise ValueError(
                "classifier (--classifier) is required with an image folder: a weights file "
                "(e.g. from captum-cf train classifier --data DIR), zoo:<name> or your model's "
                "module:factory with classifier_weights (--classifier-weights)")
        classifier = _DEFAULT_CLASSIFIER[data]
    if positive is None and config is None:
        if data != "digits":
            raise ValueError(
                f"positive (--positive) is required with {data!r}: the class whose posterior "
                "the generator walks (a folder's class is its place among the sorted class "
                "folders)")
        positive = 8
    if aux_weight is not None and (aux_classifier is None or not aux_weight > 0):
        raise ValueError(f"aux_weight must be > 0 and needs aux_classifier, got aux_weight "
                         f"{aux_weight!r} with aux_classifier {aux_classifier!r}")
    dev = resolve_device(device)
    distributed_context(dev)  # under torchrun: join the group now, the processes share decoding
    check_amp(amp, dev)
    model = _load_zoo_model(classifier, weights=classifier_weights).to(dev)
    x_tr, y_tr, x_te, y_te, test_desc = classifier_data(data, image_size, channels,
                                                        show_progress, workers, cache_dir,
                                                        resize)
    if limit is not None:
        x_tr, y_tr, x_te = x_tr[:limit], y_tr[:limit], x_te[:limit]
    x_tr, y_tr, x_val, _ = _split(x_tr, y_tr, val_fraction, seed)
    num_classes = int(y_tr.max()) + 1
    if config is None and isinstance(positive, int) and not 0 <= positive < num_classes:
        raise ValueError(f"positive (--positive) must be one of the data's classes "
                         f"0..{num_classes - 1}, got {positive}")
    config = config or ExaggerationConfig(image_size=x_tr.shape[-1], channels=x_tr.shape[1],
                                          positive_class=positive, num_classes=num_classes)
    for name, value in (("conditioning", conditioning),
                        ("critic_conditioning", critic_conditioning),
                        ("base_channels", base_channels), ("residual_blocks", residual_blocks),
                        ("critic_channels", critic_channels)):
        if value is not None:  # validated by ExaggerationConfig
            config = dataclasses.replace(config, **{name: value})
    train_config = train_config or ExaggerationTrainConfig()
    if batch_size is not None:
        train_config = dataclasses.replace(train_config, batch_size=batch_size)
    for name, value in (("lambda_l1", lambda_l1), ("lambda_real", lambda_real),
                        ("lambda_step", lambda_step),
                        ("lambda_cyc", lambda_cyc), ("lambda_cls", lambda_cls),
                        ("critic_steps", critic_steps),
                        ("real_temperature", real_temperature),
                        ("cls_temperature", cls_temperature),
                        ("aux_temperature", aux_temperature)):
        if value is not None:  # validated by ExaggerationTrainConfig
            train_config = dataclasses.replace(train_config, **{name: value})
    aux, train_config = _aux_setup(aux_classifier, aux_weight, train_config, dev,
                                   aux_classifier_weights)
    model, aux = _ready_classifiers(model, aux, unit_images(x_tr[:2]).to(dev), classifier,
                                    aux_classifier, train=(x_tr, y_tr, data))
    torch.manual_seed(seed)  # initialisation; the trainer reseeds for training randomness
    trainer = ExaggerationTrainer(
        ExaggerationGenerator(config), model, x_tr, y_tr, x_val,
        config=train_config, seed=seed, checkpoint_path=checkpoint,
        checkpoint_every=checkpoint_every, validate_every=validate_every, log=log,
        device=dev, amp=amp, aux_classifier=aux,
    )
    del x_tr  # the trainer holds the images on a GPU where they fit: free the host copy
    trainer.resume_if_exists()
    trainer.fit(steps or EXAGGERATION_STEPS.get(data, 3000), show_progress=show_progress)
    extra = {"test_data": test_desc, "classifier": classifier, "seed": seed,
             **({"classifier_weights": str(classifier_weights)} if classifier_weights else {}),
             **({"aux_classifier": aux_classifier} if aux_classifier is not None else {}),
             **({"processes": trainer.dist.world_size} if trainer.dist.enabled else {})}
    # every process measures (the batch-norm re-estimation uses the trainer's batches); rank 0
    # writes the file
    return export_exaggeration(trainer, out, name=f"{data_name(data)}-exaggeration",
                               extra=extra, test_images=DeviceImages(x_te, dev),
                               write=distributed_context(dev).is_main)


def export_exaggeration(trainer: ExaggerationTrainer, out: str | os.PathLike, name: str,
                        extra: dict[str, Any], test_images: torch.Tensor | DeviceImages,
                        write: bool = True) -> dict[str, Any]:
    """Write the trainer's best generator, BN statistics re-estimated (float16), and its test
    metrics (``write=False``: measure only, as on ranks > 0 under torchrun); returns the
    metrics."""
    config = trainer.generator.config
    generator = trainer.recalibrated(trainer.best_state("generator"))
    # measure what is shipped: the float16-rounded weights
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in generator.state_dict().items()}
    generator.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})
    test = evaluate_exaggeration(generator, trainer.classifier, test_images)
    metrics = {**{f"test_{k}": v for k, v in test.items()}, "steps": trainer.step,
               "best_step": trainer.best["step"] if trainer.best else trainer.step,
               **{f"val_{k}": v for k, v in (trainer.best or {}).get("metrics", {}).items()},
               "train_config": trainer.config.to_dict(), **extra}
    if write:
        save_checkpoint(out, {"format": WEIGHTS_FORMAT, "name": name,
                              "arch": "exaggeration-generator", "config": config.to_dict(),
                              "state_dict": state, "metrics": metrics})
        os.chmod(out, 0o644)
    trainer.dist.barrier()
    return metrics


def train_digits_exaggeration(out: str | os.PathLike, seed: int = 0,
                              show_progress: bool = True) -> float:
    """Reproduce ``digits-exaggeration.pt``; returns its test Pearson r."""
    return float(train_exaggeration("digits", out=out, seed=seed, show_progress=show_progress,
                                    **DIGITS_EXAGGERATION_RECIPE)["test_r"])


register(ZooEntry(
    name="digits-exaggeration",
    arch="exaggeration-generator",
    builder=build_exaggeration_generator,
    weights="digits-exaggeration.pt",
    train=train_digits_exaggeration,
    command=recipe_command("exaggeration", "digits", DIGITS_EXAGGERATION_RECIPE,
                           "digits-exaggeration.pt"),
    description="progressive-exaggeration generator G(x, bin) for 'is it an 8' against "
    "digits-cnn, 1x32x32, 10 posterior bins",
    metric="test_r",
    expected=0.85,
))
