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
    with pytest.raises(ValueError, match=r"init must be a classifier of this data's images and "
                                         r"classes; it has channels 1 \(the data: 3\), image "
                                         r"size 32 \(the data: 64\), classes 10 \(the data: 4\)"):
        train_robust_classifier("shapes", out=out, init="zoo:digits-cnn", steps=1, limit=8,
                                show_progress=False)
    with pytest.raises(ValueError, match="init must be 'zoo:<name>' or a weights file"):
        train_robust_classifier("shapes", out=tmp_path / "n.pt", init="nowhere.pt", steps=1,
                                limit=8, show_progress=False)
    assert not (tmp_path / "n.pt").exists()


def test_init_from_a_folder_classifier_keeps_its_average_pooling(tmp_path, capsys) -> None:
    # a folder's train classifier pools by average, a robust model from scratch by maximum:
    # --init of the README's folder recipe must take the classifier as it is; and 24 px images
    # (not a multiple of the 16 its four blocks divide by) train both
    import numpy as np
    from PIL import Image

    from captum_cf.zoo.robust import train_robust_classifier
    from captum_cf.zoo.train import train_classifier

    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("light", 210)):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(6):
            arr = np.clip(level + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "photos" / label / f"{i}.png")
    folder, cnn = str(tmp_path / "photos"), tmp_path / "cnn.pt"
    train_classifier(folder, out=cnn, epochs=1, batch_size=4, show_progress=False)
    assert zoo.read_weights(cnn)["config"]["pool"] == "avg"
    out = tmp_path / "robust.pt"
    train_robust_classifier(folder, out=out, init=str(cnn), eps=0.01, steps=1, batch_size=4,
                            show_progress=False)
    payload = zoo.read_weights(out)
    assert payload["config"] == zoo.read_weights(cnn)["config"]
    assert payload["config"]["image_size"] == 24 and payload["metrics"]["init"] == str(cnn)
    from captum_cf.cli import main

    for kind in ("classifier", "robust"):  # too small: refused before any image is decoded
        assert main(["train", kind, "--data", folder, "--image-size", "12", "--cache-dir",
                     str(tmp_path / "cache"), "--out", str(tmp_path / "x.pt")]) == 2
        assert "(--image-size) must be >= 16" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
