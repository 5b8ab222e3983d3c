"""Zoo entry of the adversarially robust digits classifier ``"digits-cnn-robust"``.

Same architecture family as ``"digits-cnn"`` (``Normalized(SmallCNN)``, 3 conv blocks of 16, 32,
64 channels, 64 hidden units; max pooling), trained with L2 PGD adversarial training
(:func:`captum_cf.robust.adversarial_train`). Its gradients are perceptually aligned, which is
what :class:`captum_cf.attr.SparsePerturbation` needs.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from captum_cf.zoo._registry import ZooEntry, register, save_weights
from captum_cf.zoo.models import build_classifier

__all__ = ["ROBUST_SETUP", "train_robust_classifier", "train_digits_cnn_robust"]

logger = logging.getLogger(__name__)

#: defaults of ``captum-cf train robust --data digits`` (the shipped weights)
ROBUST_SETUP = {
    "pool": "max",
    "norm": "l2",
    "eps": 1.5,
    "steps": 600,
    "attack_steps": 7,
    "batch_size": 64,
    "lr": 2e-3,
    "clean_weight": 0.0,
    "eval_attack_steps": 20,
}


def train_robust_classifier(
    data: str = "digits",
    out: str | os.PathLike = "digits-cnn-robust.pt",
    eps: float = ROBUST_SETUP["eps"],
    steps: int = ROBUST_SETUP["steps"],
    attack_steps: int = ROBUST_SETUP["attack_steps"],
    seed: int = 0,
    limit: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    show_progress: bool = True,
    checkpoint_every: int = 50,
) -> tuple[float, float]:
    """Train the robust zoo classifier of ``data`` and write it to ``out`` (zoo weights format).

    Args:
        data (str): only ``"digits"`` (trains ``"digits-cnn-robust"``).
        out (path): weights file to write.
        eps (float): L2 radius of the PGD attack used in training and evaluation.
        steps (int): optimiser steps (batch 64).
        attack_steps (int): PGD iterations per training batch.
        seed (int): seeds initialisation, data order and attack starts.
        limit (int, optional): use only the first ``limit`` training and test images (quick runs).
        checkpoint (path, optional): checkpoint file; an existing one is resumed exactly.
        show_progress (bool): tqdm bar over the steps.
        checkpoint_every (int): optimiser steps between checkpoints (>= 1).

    Returns:
        tuple[float, float]: clean test accuracy and L2-PGD robust test accuracy at ``eps``
        (20 steps), also stored in the file's ``metrics``.

    Example:
        >>> from captum_cf.zoo.robust import train_robust_classifier
        >>> clean, robust = train_robust_classifier(out="robust.pt", steps=20, limit=128)
    """
    from captum_cf.robust import adversarial_train, robust_accuracy
    from captum_cf.zoo.train import CLASSIFIER_SETUPS, _config, classifier_data

    if data != "digits":
        raise ValueError(f"data must be 'digits' (the only robust zoo model), got {data!r}")
    x_tr, y_tr, x_te, y_te, test_desc = classifier_data(data)
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    # max pooling, as digits-cnn had when these weights were trained (it moved to average
    # pooling for exact DeepLift later); the robust model is used for its gradients only
    config = {**_config(CLASSIFIER_SETUPS[data], x_tr, 10), "pool": ROBUST_SETUP["pool"]}
    torch.manual_seed(seed)
    model = build_classifier(config)
    s = ROBUST_SETUP
    began = time.perf_counter()
    history = adversarial_train(
        model,
        (x_tr, y_tr),
        norm=s["norm"],
        eps=eps,
        steps=steps,
        attack_steps=attack_steps,
        batch_size=min(s["batch_size"], len(x_tr)),
        lr=s["lr"],
        clean_weight=s["clean_weight"],
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        seed=seed,
        show_progress=show_progress,
        log_every=25,
    )
    seconds = round(time.perf_counter() - began, 1)
    model.eval()
    clean, robust = robust_accuracy(model, x_te, y_te, s["norm"], eps, s["eval_attack_steps"])
    metrics = {
        "test_accuracy": clean,
        "robust_accuracy": robust,
        "threat": f"{s['norm']} eps={eps}",
        "eval_attack": f"PGD {s['eval_attack_steps']} steps, step 2.5*eps/steps, random start",
        "test_data": test_desc,
        "test_size": len(x_te),
        "train_size": len(x_tr),
        "steps": steps,
        "attack_steps": attack_steps,
        "seed": seed,
        "losses": [round(h["loss"], 4) for h in history],
        "train_seconds": seconds,
    }
    save_weights(
        out, name="digits-cnn-robust", arch="small-cnn", config=config, model=model, metrics=metrics
    )
    logger.info("digits-cnn-robust clean %.4f robust %.4f -> %s", clean, robust, os.fspath(out))
    return clean, robust


def train_digits_cnn_robust(
    out: str | os.PathLike, seed: int = 0, show_progress: bool = True
) -> float:
    """Reproduce ``digits-cnn-robust.pt``; returns its clean test accuracy."""
    return train_robust_classifier("digits", out=out, seed=seed, show_progress=show_progress)[0]


register(
    ZooEntry(
        name="digits-cnn-robust",
        arch="small-cnn",
        builder=build_classifier,
        weights="digits-cnn-robust.pt",
        train=train_digits_cnn_robust,
        command="captum-cf train robust --data digits --out digits-cnn-robust.pt",
        description="digits-cnn architecture, L2 PGD adversarial training (eps 1.5), "
        "1x32x32 -> 10 logits",
        metric="test_accuracy",
        expected=0.95,
    )
)
