"""Zoo inpainters: shipped quality bar, ``inpaint-learned`` baseline, ``train inpainter`` CLI."""

from __future__ import annotations

import functools

import pytest
import torch
from simulated_device import PUBLIC_TRAINERS

from captum_cf import zoo
from captum_cf._registry import AuditContext
from captum_cf.baselines import BASELINES, InpaintBaseline
from captum_cf.cli import main
from captum_cf.datasets import SyntheticShapes, load_digits
from captum_cf.inpainters import LearnedInpainter, PushPullInpainter
from captum_cf.zoo.inpainters import inpainter_quality, mean_colour_fill

NAMES = ["digits-inpainter", "shapes-inpainter"]


def _held_out(name: str) -> torch.Tensor:
    if name == "digits-inpainter":
        return load_digits("test").tensors[0][:60]
    return SyntheticShapes(60, size=64, seed=1).images  # seed 0 trains the inpainter


@functools.cache
def _quality(name: str, device: torch.device) -> dict[str, float]:
    model = zoo.load(name, device=device)
    assert isinstance(model, LearnedInpainter) and not model.training
    return inpainter_quality({"learned": model, "push-pull": PushPullInpainter()},
                             _held_out(name).to(device), seed=11)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_inpainter_beats_push_pull_on_held_out_images(name, device):
    q = _quality(name, device)
    assert q["learned"] < 0.95 * q["push-pull"], q
    assert q["push-pull"] <= 0.8 * q["mean-colour"], q
    assert zoo.entry(name).path.stat().st_size <= 1_000_000
    recorded = zoo.read_weights(zoo.entry(name).path)["metrics"]
    assert recorded["test_l1"] < recorded["test_l1_pushpull"]
    assert recorded["test_l1"] <= zoo.entry(name).expected


@pytest.mark.parametrize("name", NAMES)
def test_shipped_inpainter_meets_the_quality_bar(name, device):
    q = _quality(name, device)
    assert q["learned"] <= 0.8 * q["push-pull"], q


def test_mean_colour_fill_uses_known_pixels_only(device):
    x = torch.zeros(1, 2, 4, 4)
    x[:, 0, :2] = 1.0  # channel 0: top half white
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 3, :] = 1  # bottom row is the hole; known: 8 white + 4 black pixels
    out = mean_colour_fill(x.to(device), hole.to(device))
    assert out.device == device
    out = out.cpu()
    torch.testing.assert_close(out[0, 0, 3], torch.full((4,), 8 / 12))
    torch.testing.assert_close(out[0, 1, 3], torch.zeros(4))
    assert torch.equal(out[..., :3, :], x[..., :3, :])


def test_inpaint_learned_baseline_is_registered_for_zoo_data_only(device):
    def ctx(data, shape):
        return AuditContext(model=None, data_name=data, train_data=None, num_classes=10,
                            image_shape=shape, device=device)

    digits = ctx("digits", (1, 32, 32))
    assert "inpaint-learned" in BASELINES.names(digits)
    assert "inpaint-learned" in BASELINES.names(ctx("shapes", (3, 64, 64)))
    assert "inpaint-learned" not in BASELINES.names(ctx("/some/folder", (3, 64, 64)))
    baseline = BASELINES.create("inpaint-learned", digits)
    assert isinstance(baseline, InpaintBaseline)
    assert isinstance(baseline.inpainter, LearnedInpainter)
    assert all(p.device.type == device.type for p in baseline.inpainter.parameters())
    x = load_digits("test").tensors[0][:2].to(device)
    keep = torch.ones(2, 1, 32, 32)
    keep[..., 10:20, 8:24] = 0
    keep = keep.to(device)
    with torch.no_grad():
        out = baseline.fill(x, keep)
    assert out.device == x.device and torch.equal(out * keep, x * keep)


def test_inpaint_learned_reference_removes_the_shapes_objects(device):
    """The audit's learned-inpainting reference leaves shapes-cnn at chance on the true class
    (with the default quarter cells the inpainter restored parts of each object: 0.287)."""
    from captum_cf.datasets import SyntheticShapes

    shapes = SyntheticShapes(64, size=64, seed=1)
    images, labels = shapes.images.to(device), shapes.labels.to(device)
    ctx = AuditContext(model=None, data_name="shapes", train_data=None, num_classes=4,
                       image_shape=(3, 64, 64), device=device)
    model = zoo.load("shapes-cnn", device=device)
    with torch.no_grad():
        ref = BASELINES.create("inpaint-learned", ctx).reference(images)
        assert ref.device == images.device
        p_ref = model(ref).softmax(1).gather(1, labels[:, None]).mean()
        quarter = InpaintBaseline(zoo.load("shapes-inpainter", device=device)).reference(images)
        p_quarter = model(quarter).softmax(1).gather(1, labels[:, None]).mean()
    assert float(p_ref) < 0.26 < float(p_quarter)


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_train_inpainter_writes_a_loadable_file(tmp_path, capsys, device):
    out = tmp_path / "inp.pt"
    args = ["train", "inpainter", "--data", "digits", "--out", str(out), "--steps", "2",
            "--limit", "16", "--device", device.type, "--no-progress"]
    assert main(args) == 0
    assert "weights written" in capsys.readouterr().out
    model = LearnedInpainter.load(out)
    metrics = zoo.read_weights(out)["metrics"]
    assert metrics["steps"] == 2 and metrics["train_size"] == 16 and metrics["test_size"] == 16
    assert isinstance(zoo.load_file(out), LearnedInpainter) and model.config["channels"] == 1
    # a rerun without --resume does not replace the checkpoint (OUT.ckpt) without a word
    ckpt = tmp_path / "inp.pt.ckpt"
    before = ckpt.read_bytes()
    assert main(args[:7] + ["3"] + args[8:]) == 2
    assert "inp.pt.ckpt exists: pass --resume" in capsys.readouterr().err
    assert ckpt.read_bytes() == before
    # --resume finds the finished checkpoint and trains no further step
    assert main(args + ["--resume"]) == 0
    reloaded = LearnedInpainter.load(out)
    for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()):
        assert torch.equal(a, b)


def test_cli_bad_arguments(capsys):
    assert main(["train", "inpainter", "--data", "digits", "--out", "x.pt", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    # --data is digits, shapes or an existing image folder: anything else is named in one line
    assert main(["train", "inpainter", "--data", "cifar", "--out", "x.pt"]) == 2
    assert "an image folder DIR/<class>/<image>, got 'cifar'" in capsys.readouterr().err
    assert main(["train", "inpainter", "--data", "digits", "--out", "nowhere/x.pt",
                 "--resume"]) == 2
    assert "--resume: the checkpoint nowhere/x.pt.ckpt does not exist" in capsys.readouterr().err


def test_inpainter_quality_sums_batch_by_batch_as_one_hole_l1(device):
    """Errors summed a batch at a time equal ``hole_l1`` over all filled images at once, and
    uint8 images give the values of their float reading."""
    from captum_cf.inpainters.holes import random_holes
    from captum_cf.training.data import unit_images
    from captum_cf.zoo.inpainters import EVAL_COVERAGE, hole_l1

    u8 = (SyntheticShapes(9, size=32, seed=3).images * 255).round().to(torch.uint8)
    x = unit_images(u8).to(device)
    q = inpainter_quality({"push-pull": PushPullInpainter()}, x, seed=4, batch_size=4)
    hole = random_holes(9, 32, 32, EVAL_COVERAGE,
                        generator=torch.Generator().manual_seed(4)).to(device)
    for name, fn in (("push-pull", PushPullInpainter()), ("mean-colour", mean_colour_fill)):
        whole = hole_l1(torch.cat([fn(x[i : i + 4], hole[i : i + 4]) for i in (0, 4, 8)]),
                        x, hole)
        assert q[name] == pytest.approx(whole, rel=1e-6)
    assert inpainter_quality({"push-pull": PushPullInpainter()}, u8.to(device), seed=4,
                             batch_size=4) == q
