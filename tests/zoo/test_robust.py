"""digits-cnn-robust: meets its clean-accuracy bar and is robust where digits-cnn is not."""

from __future__ import annotations

import pytest

from captum_cf import zoo
from captum_cf.datasets import load_digits
from captum_cf.robust import robust_accuracy
from captum_cf.zoo.train import evaluate_accuracy


def test_robust_model_bars_and_recorded_metrics() -> None:
    model = zoo.load("digits-cnn-robust")
    x, y = load_digits("test").tensors
    clean = evaluate_accuracy(model, x, y)
    assert clean >= zoo.entry("digits-cnn-robust").expected == 0.95
    metrics = zoo.read_weights(zoo.entry("digits-cnn-robust").path)["metrics"]
    assert metrics["test_accuracy"] == pytest.approx(clean)
    assert metrics["threat"] == "l2 eps=1.5" and metrics["robust_accuracy"] >= 0.7
    # re-measured on 50 test images (5-step PGD, L2 eps 1.5): robust here, not the standard one
    _, robust = robust_accuracy(model, x[:50], y[:50], "l2", 1.5, steps=5)
    _, standard = robust_accuracy(zoo.load("digits-cnn"), x[:50], y[:50], "l2", 1.5, steps=5)
    assert robust >= 0.7 and standard < robust - 0.3
