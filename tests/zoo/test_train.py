"""train_classifier: a loadable weights file, exact resume, augmentation, argument checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from simulated_device import PUBLIC_TRAINERS

import captum_cf.training.loop as loop_module
from captum_cf import zoo
from captum_cf.datasets import load_digits
from captum_cf.zoo.train import evaluate_accuracy, random_shift, train_classifier


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_tiny_training_writes_a_loadable_file(tmp_path: Path, device: torch.device) -> None:
    out = tmp_path / "tiny.pt"
    acc = train_classifier("digits", out=out, epochs=2, limit=128, show_progress=False,
                           device=device)
    payload = zoo.read_weights(out)
    assert payload["name"] == "digits-cnn" and payload["arch"] == "small-cnn"
    assert payload["metrics"]["test_accuracy"] == acc and payload["metrics"]["test_size"] == 128
    assert len(payload["metrics"]["losses"]) == 2
    model = zoo.load_file(out, device=device)
    x, y = load_digits("test").tensors
    assert not model.training and model.mean.device.type == device.type
    assert evaluate_accuracy(model, x[:128], y[:128]) == acc
    # mean/std of the training images live inside the model: it takes pixel-space input
    torch.testing.assert_close(model.mean.flatten().cpu(), load_digits("train").tensors[0][
        :128].mean((0, 2, 3)), atol=1e-4, rtol=0)


def _stopped_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch, data: str = "digits",
                                    **kwargs) -> None:
    """``train_classifier(data, **kwargs)`` dies right after its first checkpoint."""
    real_save = loop_module.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "save_checkpoint", save_then_crash)
        with pytest.raises(KeyboardInterrupt):
            train_classifier(data, **kwargs)


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_resume_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: torch.device
) -> None:
    kwargs = {"epochs": 2, "limit": 128, "show_progress": False, "device": device}
    train_classifier("digits", out=tmp_path / "straight.pt", **kwargs)
    ckpt = tmp_path / "ckpt.pt"
    _stopped_after_first_checkpoint(monkeypatch, out=tmp_path / "resumed.pt", checkpoint=ckpt,
                                    **kwargs)
    assert not (tmp_path / "resumed.pt").exists()
    train_classifier("digits", out=tmp_path / "resumed.pt", checkpoint=ckpt, **kwargs)
    straight = zoo.read_weights(tmp_path / "straight.pt")
    resumed = zoo.read_weights(tmp_path / "resumed.pt")
    assert straight["metrics"]["losses"] == resumed["metrics"]["losses"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_a_checkpoint_continues_only_its_own_run(tmp_path: Path, monkeypatch) -> None:
    """A checkpoint reused with another batch size, seed or data was continued without a word
    (a model of one run's weights and another's options); the resume is refused naming them.
    More epochs, another device or output: continued."""
    kwargs = {"epochs": 2, "limit": 64, "show_progress": False, "batch_size": 32}
    ckpt = tmp_path / "ckpt.pt"
    _stopped_after_first_checkpoint(monkeypatch, out=tmp_path / "a.pt", checkpoint=ckpt, **kwargs)
    for change, shown in (({"batch_size": 16}, "--batch-size 32 (this run: 16)"),
                          ({"seed": 7}, "--seed 0 (this run: 7)"),
                          ({"limit": 48}, "--limit 64 (this run: 48)")):
        with pytest.raises(ValueError, match=r"the checkpoint was written by a run with other "
                           rf"options: {re.escape(shown)}\. A checkpoint continues only its "
                           r"own run"):
            train_classifier("digits", out=tmp_path / "b.pt", checkpoint=ckpt,
                             **{**kwargs, **change})
    assert not (tmp_path / "b.pt").exists()
    train_classifier("digits", out=tmp_path / "c.pt", checkpoint=ckpt, **{**kwargs, "epochs": 3})
    assert zoo.read_weights(tmp_path / "c.pt")["metrics"]["test_size"] == 64


def test_random_shift_moves_each_image_by_its_offset(device: torch.device) -> None:
    x = torch.rand(5, 2, 7, 9).to(device)
    assert random_shift(x, 0, torch.Generator(), "constant") is x
    gen = torch.Generator().manual_seed(1)
    shifted = random_shift(x, 2, gen, "constant")
    assert shifted.device == x.device
    x, shifted = x.cpu(), shifted.cpu()
    replay = torch.Generator().manual_seed(1)
    dy = torch.randint(0, 5, (5,), generator=replay)
    dx = torch.randint(0, 5, (5,), generator=replay)
    padded = torch.nn.functional.pad(x, [2, 2, 2, 2])
    for i in range(5):
        window = padded[i, :, dy[i] : dy[i] + 7, dx[i] : dx[i] + 9]
        assert torch.equal(shifted[i], window)
    assert (dy != 2).any() or (dx != 2).any()  # some image really moved


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"data": "mnist"}, "data"), ({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"),
     ({"limit": 0}, "limit"), ({"max_shift": -1}, "max_shift"),
     ({"misplaced_dots": 1}, "misplaced_dots"), ({"misplaced_dots": -1}, "misplaced_dots")],
)
def test_bad_arguments(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        train_classifier(**{"data": "digits", "out": tmp_path / "x.pt", **kwargs})
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_misplaced_dots_adds_labelled_negatives(tmp_path: Path, device: torch.device) -> None:
    from captum_cf.datasets.shapes import _draw_params

    out = tmp_path / "strict.pt"
    train_classifier("shapes", out=out, epochs=1, limit=40, misplaced_dots=2,
                     show_progress=False, device=device)
    stored = zoo.read_weights(out)
    labels = _draw_params(4000, 64, torch.Generator().manual_seed(0))["label"]  # the train split
    squares = int((labels[:40] == 1).sum())
    assert stored["name"] == "shapes-cnn-strict" and stored["metrics"]["misplaced_dots"] == 2
    assert stored["metrics"]["train_size"] == 40 + 2 * squares and squares > 0


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_a_resume_on_a_folder_whose_images_changed_is_refused(tmp_path: Path,
                                                              monkeypatch) -> None:
    # same path, other images (or a classifier file retrained under its name): continued
    # without a word, half one run and half another
    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16), np.uint8)).save(data / c / f"{i}.png")
    kwargs = {"epochs": 2, "show_progress": False, "batch_size": 8, "image_size": 16}
    ckpt = tmp_path / "ckpt.pt"
    _stopped_after_first_checkpoint(monkeypatch, data=str(data), out=tmp_path / "a.pt",
                                    checkpoint=ckpt, **kwargs)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "a" / "0.png")
    with pytest.raises(ValueError, match=rf"options: --data {re.escape(str(data))} \(content "
                                         r"[0-9a-f]{12}\) \(this run: .* \(content [0-9a-f]{12}\)"):
        train_classifier(str(data), out=tmp_path / "b.pt", checkpoint=ckpt, **kwargs)
    # a checkpoint written before contents were recorded compares the paths only
    state = torch.load(ckpt, weights_only=False)
    state["trainer"]["options"] = {k: v.split(" [content ")[0]
                                   for k, v in state["trainer"]["options"].items()}
    torch.save(state, ckpt)
    train_classifier(str(data), out=tmp_path / "c.pt", checkpoint=ckpt, **kwargs)
    assert (tmp_path / "c.pt").exists()
