"""digits-cnn-robust: meets its clean-accuracy bar and is robust where digits-cnn is not."""

from __future__ import annotations

import pytest
from simulated_device import PUBLIC_TRAINERS

from captum_cf import zoo
from captum_cf.datasets import load_digits
from captum_cf.robust import robust_accuracy
from captum_cf.zoo.train import evaluate_accuracy


def test_robust_model_bars_and_recorded_metrics(device) -> None:
    model = zoo.load("digits-cnn-robust", device=device)
    x, y = (t.to(device) for t in load_digits("test").tensors)
    clean = evaluate_accuracy(model, x, y)
    assert clean >= zoo.entry("digits-cnn-robust").expected == 0.95
    metrics = zoo.read_weights(zoo.entry("digits-cnn-robust").path)["metrics"]
    assert metrics["test_accuracy"] == pytest.approx(clean)
    assert metrics["threat"] == "l2 eps=1.5" and metrics["robust_accuracy"] >= 0.7
    # re-measured on 50 test images (5-step PGD, L2 eps 1.5): robust here, not the standard one
    _, robust = robust_accuracy(model, x[:50], y[:50], "l2", 1.5, steps=5)
    standard_model = zoo.load("digits-cnn", device=device)
    _, standard = robust_accuracy(standard_model, x[:50], y[:50], "l2", 1.5, steps=5)
    assert robust >= 0.7 and standard < robust - 0.3


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_init_fine_tunes_a_trained_classifier(tmp_path, monkeypatch, device) -> None:
    import functools

    import captum_cf.zoo.train as zoo_train
    from captum_cf.zoo.robust import train_robust_classifier

    # the 5000 shapes images once, not once per call (the data are deterministic)
    monkeypatch.setattr(zoo_train, "classifier_data",
                        functools.lru_cache(zoo_train.classifier_data))

    out = tmp_path / "r.pt"
    # one step at a tiny radius from shapes-cnn keeps most of its accuracy (measured 0.81 on
    # these 32 images; an untrained model of 4 classes is near 0.25)
    clean, _ = train_robust_classifier("shapes", out=out, init="zoo:shapes-cnn", eps=0.01,
                                       steps=1, limit=32, show_progress=False, device=device)
    assert clean >= 0.6
    assert zoo.read_weights(out)["metrics"]["init"] == "zoo:shapes-cnn"
    with pytest.raises(ValueError, match="init must be a classifier of this data's"):
        train_robust_classifier("shapes", out=out, init="zoo:digits-cnn", steps=1, limit=8,
                                show_progress=False)
    with pytest.raises(ValueError, match="init must be 'zoo:<name>' or a weights file"):
        train_robust_classifier("shapes", out=tmp_path / "n.pt", init="nowhere.pt", steps=1,
                                limit=8, show_progress=False)
    assert not (tmp_path / "n.pt").exists()
