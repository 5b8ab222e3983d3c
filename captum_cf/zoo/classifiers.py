"""Zoo entries of the reference classifiers ``"digits-cnn"`` and ``"shapes-cnn"``, and of
``"shapes-cnn-strict"`` (shapes-cnn's recipe plus misplaced-dot negatives: the auxiliary
classifier of ``"shapes-ganmex"``)."""

from __future__ import annotations

import os

from captum_cf.zoo._registry import ZooEntry, register
from captum_cf.zoo.models import build_classifier

__all__ = ["train_digits_cnn", "train_shapes_cnn", "train_shapes_cnn_strict"]


def train_digits_cnn(out: str | os.PathLike, seed: int = 0, show_progress: bool = True) -> float:
    """Reproduce ``digits-cnn.pt``; returns its test accuracy."""
    from captum_cf.zoo.train import train_classifier

    return train_classifier("digits", out=out, seed=seed, show_progress=show_progress)


def train_shapes_cnn(out: str | os.PathLike, seed: int = 0, show_progress: bool = True) -> float:
    """Reproduce ``shapes-cnn.pt``; returns its test accuracy."""
    from captum_cf.zoo.train import train_classifier

    return train_classifier("shapes", out=out, seed=seed, show_progress=show_progress)


def train_shapes_cnn_strict(out: str | os.PathLike, seed: int = 0,
                            show_progress: bool = True) -> float:
    """Reproduce ``shapes-cnn-strict.pt``; returns its test accuracy."""
    from captum_cf.zoo.train import train_classifier

    return train_classifier("shapes", out=out, seed=seed, show_progress=show_progress,
                            misplaced_dots=1)


register(ZooEntry(
    name="digits-cnn",
    arch="small-cnn",
    builder=build_classifier,
    weights="digits-cnn.pt",
    train=train_digits_cnn,
    command="captum-cf train classifier --data digits --out digits-cnn.pt",
    description=("CNN (3 conv blocks, average pooling: exact DeepLift, 90k params) on "
                 "load_digits, 1x32x32 -> 10 logits"),
    metric="test_accuracy",
    expected=0.97,
))

register(ZooEntry(
    name="shapes-cnn",
    arch="small-cnn",
    builder=build_classifier,
    weights="shapes-cnn.pt",
    train=train_shapes_cnn,
    command="captum-cf train classifier --data shapes --out shapes-cnn.pt",
    description=("CNN (4 conv blocks, max pooling, 156k params) on SyntheticShapes, "
                 "3x64x64 -> 4 logits"),
    metric="test_accuracy",
    expected=0.95,
))

register(ZooEntry(
    name="shapes-cnn-strict",
    arch="small-cnn",
    builder=build_classifier,
    weights="shapes-cnn-strict.pt",
    train=train_shapes_cnn_strict,
    command="captum-cf train classifier --data shapes --misplaced-dots 1 "
    "--out shapes-cnn-strict.pt",
    description=("shapes-cnn's architecture and recipe, trained with one copy of every square "
                 "with a dot painted away from its place (labelled square): says 'square with "
                 "dot' only for a dot at its place; the auxiliary classifier of shapes-ganmex"),
    metric="test_accuracy",
    expected=0.95,
))
