"""The shipped ``digits-ganmex``/``shapes-ganmex`` generators and ``captum-cf train ganmex``."""

from __future__ import annotations

import pytest
import torch
from simulated_device import PUBLIC_TRAINERS

from captum_cf import zoo
from captum_cf._registry import AuditContext
from captum_cf.baselines import BASELINES, GANMEXBaseline, NearestSampleBaseline
from captum_cf.cli import main
from captum_cf.datasets import SyntheticShapes, load_digits
from captum_cf.generative import GANMEXConfig, GANMEXGenerator

# measured on these 24 held-out pair images with the shipped round-4 generator (strict auxiliary
# classifier): flip 0.917, edit per pixel inside / outside the part 29, 76.8 % of the pixels
# exactly unchanged (round 3: 1.0, 50, 97.8 %; the previous full-edit generator: ratio 2.7)
PAIR_FLIP_BAR = 0.9
EDIT_RATIO_BAR = 10.0
UNCHANGED_BAR = 0.7


def test_shipped_generator_flips_the_classifier_with_small_edits(device):
    generator = zoo.load("digits-ganmex", device=device)
    model = zoo.load("digits-cnn", device=device)
    assert isinstance(generator, GANMEXGenerator) and not generator.training
    assert zoo.read_weights(zoo.entry("digits-ganmex").path)["metrics"]["test_flip"] >= 0.9
    x, y = load_digits("test").tensors
    x, y = x[:50].repeat(3, 1, 1, 1), y[:50].repeat(3)
    t = (y + torch.tensor([1, 4, 7]).repeat_interleave(50)) % 10
    x, t = x.to(device), t.to(device)
    with torch.no_grad():
        cf = generator(x, t)
    assert cf.device == x.device
    with torch.no_grad():
        flip = (model(cf).argmax(1) == t).float().mean().item()
    assert flip >= 0.9, flip
    l1 = (cf - x).abs().mean().item()
    x_tr, y_tr = load_digits("train").tensors
    mdts = NearestSampleBaseline((x_tr, y_tr), counterfactual_class=t)(x)
    assert l1 < (mdts - x).abs().mean().item()  # closer than the nearest real image of class t


def test_shipped_shapes_generator_flips_the_part_pair_by_editing_the_part(device):
    generator = zoo.load("shapes-ganmex", device=device)
    model = zoo.load("shapes-cnn", device=device)
    entry = zoo.entry("shapes-ganmex")
    assert zoo.read_weights(entry.path)["metrics"]["test_flip"] >= entry.expected
    assert entry.path.stat().st_size < 3e6
    test = SyntheticShapes(48, size=64, seed=8)  # held out from shapes-cnn and the generator
    pair = (test.labels == 1) | (test.labels == 3)
    x, y, parts = test.images[pair], test.labels[pair], test.parts[pair]
    x, y, parts = x.to(device), y.to(device), parts.to(device)
    t = 4 - y  # square <-> square with dot
    with torch.no_grad():
        cf = generator(x, t)
        flip = (model(cf).argmax(1) == t).float().mean().item()
    assert flip >= PAIR_FLIP_BAR, flip
    change = (cf - x).abs().sum(1, keepdim=True)
    inside = (change * parts).sum() / parts.sum()
    outside = (change * ~parts).sum() / (~parts).sum()
    assert inside > EDIT_RATIO_BAR * outside, (inside, outside)  # the edit sits on the dot
    assert generator.config.edit == "mask"
    unchanged = (cf == x).all(1).float().mean().item()  # bit-exact input outside the mask
    assert unchanged > UNCHANGED_BAR, unchanged


def test_registered_baselines_for_digits(device):
    x_tr, y_tr = load_digits("train").tensors  # the samples stay on the CPU
    model = zoo.load("digits-cnn", device=device)
    ctx = AuditContext(model=model, data_name="digits", train_data=load_digits("train"),
                       num_classes=10, image_shape=(1, 32, 32), device=device)
    assert {"ganmex", "nearest-sample"} <= set(BASELINES.names(ctx))
    other = AuditContext(model=model, data_name="shapes", train_data=None, num_classes=4,
                         image_shape=(3, 64, 64))
    assert "ganmex" in BASELINES.names(other)  # shapes-ganmex fits 3x64x64, 4 classes
    assert "nearest-sample" not in BASELINES.names(other)  # no training data given
    wrong = AuditContext(model=model, data_name="shapes", train_data=None, num_classes=10,
                         image_shape=(3, 64, 64))
    assert "ganmex" not in BASELINES.names(wrong)
    base = BASELINES.create("ganmex", ctx)
    assert isinstance(base, GANMEXBaseline) and base.counterfactual_class == "runner-up"
    assert all(p.device.type == device.type for p in base.generator.parameters())
    x = x_tr[:4].to(device)
    with torch.no_grad():
        logits = model(x)
    logits[torch.arange(4, device=device), logits.argmax(1)] = -float("inf")
    assert torch.equal(base.classes(x), logits.argmax(1))
    mdts = BASELINES.create("nearest-sample", ctx)
    ref = mdts(x)
    assert ref.device == x.device
    for r, c in zip(ref.cpu(), base.classes(x).cpu()):
        assert any(torch.equal(r, s) for s in x_tr[y_tr == c])


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_trains_resumes_and_reports_errors(tmp_path, capsys, device):
    out, ckpt = tmp_path / "g.pt", tmp_path / "g.ckpt"
    common = ["train", "ganmex", "--data", "digits", "--out", str(out), "--limit", "60",
              "--test-images", "3", "--no-progress", "--checkpoint", str(ckpt),
              "--checkpoint-every", "1", "--device", device.type]
    assert main(common + ["--steps", "1"]) == 0
    assert main(common + ["--steps", "2"]) == 2  # checkpoint exists: --resume required
    assert "pass --resume" in capsys.readouterr().err
    assert main(common + ["--steps", "2", "--resume"]) == 0
    payload = zoo.read_weights(out)
    assert payload["metrics"]["steps"] == 2 and payload["arch"] == "ganmex-generator"
    assert payload["state_dict"]["head.weight"].dtype == torch.float16
    assert isinstance(zoo.load_file(out), GANMEXGenerator)
    bad = ["train", "ganmex", "--data", "digits", "--out", str(out)]
    assert main(bad + ["--steps", "0"]) == 2
    assert main(bad + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "--steps must be >= 1" in err and "--resume needs --checkpoint FILE" in err


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_edit_and_lambda_mask_options(tmp_path, device):
    out = tmp_path / "m.pt"
    args = ["train", "ganmex", "--data", "digits", "--out", str(out), "--limit", "40",
            "--test-images", "2", "--no-progress", "--steps", "1", "--edit", "mask",
            "--lambda-mask", "3", "--device", device.type]
    assert main(args) == 0
    payload = zoo.read_weights(out)
    assert payload["config"]["edit"] == "mask"
    assert payload["metrics"]["train_config"]["lambda_mask"] == 3.0
    assert zoo.load_file(out).head.out_channels == 2  # image channel + mask channel


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_init_starts_from_a_trained_generator(tmp_path, capsys, device):
    common = ["train", "ganmex", "--data", "digits", "--limit", "60", "--test-images", "5",
              "--no-progress", "--steps", "1", "--device", device.type]
    warm, cold = tmp_path / "warm.pt", tmp_path / "cold.pt"
    assert main(common + ["--out", str(warm), "--init", "zoo:digits-ganmex"]) == 0
    assert main(common + ["--out", str(cold)]) == 0
    warm_payload = zoo.read_weights(warm)
    shipped = zoo.read_weights(zoo.entry("digits-ganmex").path)
    assert GANMEXConfig(**warm_payload["config"]) == GANMEXConfig(**shipped["config"])
    assert warm_payload["metrics"]["init"] == "zoo:digits-ganmex"
    # one step from the shipped generator still flips digits-cnn; one step from identity does not
    assert warm_payload["metrics"]["test_flip"] > 0.9
    assert zoo.read_weights(cold)["metrics"]["test_flip"] < 0.2
    capsys.readouterr()
    assert main(common + ["--out", str(warm), "--init", "zoo:digits-ganmex", "--edit", "mask"]) == 2
    assert main(common + ["--out", str(warm), "--init", "zoo:digits-cnn"]) == 2
    assert main(common + ["--out", str(warm), "--init", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "leave config and edit out" in err and "must be a GANMEX generator" in err
    assert "init must be 'zoo:<name>' or a weights file" in err


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_digits_ganmex_recipe_is_its_command_and_bit_for_bit_reproducible(tmp_path, device):
    from captum_cf.training.checkpoint import load_checkpoint
    from captum_cf.zoo.generators import DIGITS_GANMEX_RECIPE, recipe_command, train_ganmex

    entry = zoo.entry("digits-ganmex")
    assert entry.command == recipe_command("ganmex", "digits", DIGITS_GANMEX_RECIPE,
                                           "digits-ganmex.pt")
    assert "--aux-classifier zoo:digits-cnn-robust" in entry.command
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out, ckpt = tmp_path / f"{name}.pt", tmp_path / f"{name}.ckpt"
        metrics = train_ganmex("digits", out=out, seed=seed, checkpoint=ckpt, checkpoint_every=2,
                               limit=60, test_images=2, show_progress=False, log=None,
                               device=device, **{**DIGITS_GANMEX_RECIPE, "steps": 2})
        runs.append((load_checkpoint(ckpt)["trainer"]["modules"], zoo.read_weights(out), metrics))
    (mods_a, file_a, met_a), (mods_b, file_b, met_b), (_, file_c, _) = runs
    for name in ("generator", "critic"):  # float32 training state, every tensor
        assert all(torch.equal(v, mods_b[name][k]) for k, v in mods_a[name].items()), name
    a, b, c = file_a["state_dict"], file_b["state_dict"], file_c["state_dict"]
    assert all(torch.equal(v, b[k]) for k, v in a.items()) and met_a == met_b
    assert not all(torch.equal(v, c[k]) for k, v in a.items())  # the seed matters
    assert met_a["aux_classifier"] == "zoo:digits-cnn-robust"
    assert file_a["metrics"]["train_config"]["lambda_aux"] == DIGITS_GANMEX_RECIPE["aux_weight"]


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_aux_classifier_options(tmp_path, capsys, device):
    out = tmp_path / "x.pt"
    base = ["train", "ganmex", "--data", "digits", "--out", str(out), "--limit", "40",
            "--test-images", "2", "--no-progress", "--steps", "1", "--device", device.type]
    assert main(base + ["--aux-weight", "2"]) == 2
    assert main(base + ["--aux-classifier", "zoo:digits-cnn-robust", "--aux-weight", "0"]) == 2
    err = capsys.readouterr().err
    assert "--aux-weight needs --aux-classifier" in err and "--aux-weight must be > 0" in err
    assert main(base + ["--aux-classifier", "zoo:digits-cnn-robust", "--aux-weight", "2"]) == 0
    payload = zoo.read_weights(out)
    assert payload["metrics"]["train_config"]["lambda_aux"] == 2.0
    assert payload["metrics"]["aux_classifier"] == "zoo:digits-cnn-robust"
    assert main(base + ["--aux-classifier", "zoo:shapes-cnn"]) == 2  # RGB 64 px, 4 classes
    assert "must have shape (N, 3, H, W)" in capsys.readouterr().err


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_shapes_setup_trains_with_the_strict_aux_classifier_bit_for_bit(
    tmp_path, monkeypatch, device
):
    import functools

    import captum_cf.zoo.train as zoo_train
    from captum_cf.training.checkpoint import load_checkpoint
    from captum_cf.zoo.generators import GANMEX_SETUPS, train_ganmex

    # the 5000 shapes images once, not once per run (the data are deterministic)
    monkeypatch.setattr(zoo_train, "classifier_data",
                        functools.lru_cache(zoo_train.classifier_data))

    setup = GANMEX_SETUPS["shapes"]
    assert (setup["aux_classifier"], setup["aux_weight"]) == ("zoo:shapes-cnn-strict", 1.0)
    entry = zoo.entry("shapes-ganmex")
    assert "--aux-classifier" not in entry.command  # the data set's default: the zoo command
    runs = []
    for name, aux in (("a", None), ("b", None), ("c", "none")):
        out, ckpt = tmp_path / f"{name}.pt", tmp_path / f"{name}.ckpt"
        metrics = train_ganmex("shapes", out=out, steps=2, checkpoint=ckpt, checkpoint_every=2,
                               limit=24, test_images=2, show_progress=False, log=None,
                               aux_classifier=aux, batch_size=8, device=device)
        runs.append((load_checkpoint(ckpt)["trainer"]["modules"], zoo.read_weights(out), metrics))
    (mods_a, file_a, met_a), (mods_b, file_b, met_b), (_, file_c, met_c) = runs
    for name in ("generator", "critic"):
        assert all(torch.equal(v, mods_b[name][k]) for k, v in mods_a[name].items()), name
    a, b, c = file_a["state_dict"], file_b["state_dict"], file_c["state_dict"]
    assert all(torch.equal(v, b[k]) for k, v in a.items()) and met_a == met_b
    assert met_a["aux_classifier"] == "zoo:shapes-cnn-strict"
    assert file_a["metrics"]["train_config"]["lambda_aux"] == 1.0
    # "none" trains without it: no auxiliary term, so other weights after the same 2 steps
    assert "aux_classifier" not in met_c and file_c["metrics"]["train_config"]["lambda_aux"] == 0
    assert not all(torch.equal(v, c[k]) for k, v in a.items())


def test_pair_metrics_is_evaluate_counterfactuals_in_one_pass(device):
    """The zoo's test measurement: flip rate and L1 equal ``evaluate_counterfactuals`` on every
    (image, other class) pair, per-target flip rates those of the same predictions, from uint8
    images indexed a batch at a time."""
    from captum_cf.generative import evaluate_counterfactuals
    from captum_cf.training.data import unit_images
    from captum_cf.zoo.generators import all_pairs, pair_metrics

    generator = zoo.load("digits-ganmex", device=device)
    model = zoo.load("digits-cnn", device=device)
    x, y = load_digits("test").tensors
    u8 = (x[:30] * 255).round().to(torch.uint8)
    index, targets = all_pairs(y[:30], 10)
    test, per_target = pair_metrics(generator, model, u8, index, targets, 10, batch_size=64)
    want = evaluate_counterfactuals(generator, model, unit_images(u8)[index].to(device),
                                    targets, batch_size=64)
    assert test == {"flip": want["flip"], "l1": want["l1"]}
    with torch.no_grad():
        pred = model(generator(unit_images(u8)[index].to(device), targets.to(device))).argmax(1)
    assert set(per_target) == {str(c) for c in targets.unique().tolist()}
    for c, rate in per_target.items():
        chosen = targets.to(device) == int(c)
        assert rate == pytest.approx(float((pred[chosen] == int(c)).float().mean()), abs=1e-6)
