"""``digits-exaggeration``'s zoo recipe: one command, seeded, bit for bit on a rerun."""

from __future__ import annotations

import pytest
import torch
from simulated_device import PUBLIC_TRAINERS

from captum_cf import zoo
from captum_cf.generative.exaggeration_trainer import ExaggerationTrainConfig
from captum_cf.training.checkpoint import load_checkpoint
from captum_cf.zoo.exaggeration import DIGITS_EXAGGERATION_RECIPE, train_exaggeration
from captum_cf.zoo.generators import recipe_command

# the recipe's training settings, with fewer batch-norm re-estimation batches (speed only: the
# re-estimation is seeded by the trainer's seed and uses no global random state)
FAST = ExaggerationTrainConfig(recalibration_batches=2)


def _run(tmp_path, name: str, device: torch.device) -> tuple[dict, dict]:
    out, ckpt = tmp_path / f"{name}.pt", tmp_path / f"{name}.ckpt"
    recipe = {**DIGITS_EXAGGERATION_RECIPE, "steps": 3}
    train_exaggeration("digits", out=out, seed=0, checkpoint=ckpt, checkpoint_every=3,
                       validate_every=2, limit=60, show_progress=False, log=None,
                       train_config=FAST, device=device, **recipe)
    return load_checkpoint(ckpt)["trainer"], zoo.read_weights(out)


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_the_zoo_recipe_is_bit_for_bit_reproducible(tmp_path, device) -> None:
    (ckpt_a, file_a), (ckpt_b, file_b) = _run(tmp_path, "a", device), _run(tmp_path, "b", device)
    assert ckpt_a["step"] == 3
    for name in ("generator", "discriminator"):  # float32 training state, every tensor
        a, b = ckpt_a["modules"][name], ckpt_b["modules"][name]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = file_a["state_dict"], file_b["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert file_a["metrics"] == file_b["metrics"]
    assert file_a["metrics"]["aux_classifier"] == "zoo:digits-cnn-robust"
    assert file_a["metrics"]["train_config"]["lambda_aux"] == DIGITS_EXAGGERATION_RECIPE[
        "aux_weight"]
    # a different seed gives different weights: the comparison above can fail
    other = tmp_path / "c.pt"
    train_exaggeration("digits", out=other, seed=1, limit=60, show_progress=False, log=None,
                       device=device, **{**DIGITS_EXAGGERATION_RECIPE, "steps": 1})
    c = zoo.read_weights(other)["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_the_zoo_command_is_the_recipe() -> None:
    entry = zoo.entry("digits-exaggeration")
    assert entry.command == recipe_command("exaggeration", "digits", DIGITS_EXAGGERATION_RECIPE,
                                           "digits-exaggeration.pt")
    for key, value in DIGITS_EXAGGERATION_RECIPE.items():
        flag = f"--{key.replace('_', '-')} {value:g}" if isinstance(value, float) else \
            f"--{key.replace('_', '-')} {value}"
        assert flag in entry.command


def test_aux_weight_is_checked_before_any_work(tmp_path) -> None:
    from captum_cf.zoo.generators import train_ganmex

    out = tmp_path / "never.pt"
    for train in (train_exaggeration, train_ganmex):
        with pytest.raises(ValueError, match="aux_weight must be > 0 and needs aux_classifier"):
            train("digits", out=out, aux_weight=2.0, steps=1, log=None)
        with pytest.raises(ValueError, match="aux_weight must be > 0"):
            train("digits", out=out, aux_classifier="zoo:digits-cnn-robust", aux_weight=0.0,
                  steps=1, log=None)
    assert not out.exists()


def test_a_classifier_of_another_image_size_is_refused_before_training(tmp_path) -> None:
    # zoo:digits-cnn takes 32 px: at 48 px the trainers name the classifier, the shape and the fix
    # instead of the model's own matrix-size error deep inside the trainer
    from captum_cf.zoo.generators import train_ganmex

    out = tmp_path / "never.pt"
    classifier = zoo.load("digits-cnn")
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    for train in (train_exaggeration, train_ganmex):
        with pytest.raises(ValueError, match=r"classifier 'zoo:digits-cnn' fails on the training "
                           r"images of shape \(1, 1, 48, 48\) \(ValueError: SmallCNN was built "
                           r"for 32x32 images, got 48x48.*zoo:digits-cnn "
                           r"was trained on 32x32 images: pass --image-size 32"):
            train("digits", out=out, classifier="zoo:digits-cnn", image_size=48, steps=1,
                  log=None, aux_classifier=None if train is train_exaggeration else "none")
    assert not out.exists()
    # the check leaves a model in training mode as it was (eval for the probe only)
    from captum_cf.zoo.generators import _check_fits

    classifier.train()
    with pytest.raises(ValueError, match="aux_classifier 'x.pt' fails"):
        _check_fits(classifier, torch.rand(2, 1, 48, 48), "aux_classifier", "x.pt")
    assert classifier.training
    _check_fits(classifier, torch.rand(2, 1, 32, 32), "classifier", "zoo:digits-cnn")
    assert classifier.training and all(
        torch.equal(v, before[k]) for k, v in classifier.state_dict().items())
