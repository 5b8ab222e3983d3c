"""LearnedInpainter: forward contract, push-pull start, training, exact resume, files, errors."""

from __future__ import annotations

import pytest
import torch

from captum_cf import zoo
from captum_cf.baselines import InpaintBaseline
from captum_cf.inpainters import (
    BiharmonicInpainter,
    Inpainter,
    LearnedInpainter,
    PushPullInpainter,
    random_holes,
)
from captum_cf.inpainters import _fit as fit_module
from captum_cf.zoo.inpainters import hole_l1

TINY = {"widths": [4, 8, 8], "dilations": [2]}


def _tiny(channels: int = 3, prefill: str = "pushpull", scramble: bool = True) -> LearnedInpainter:
    model = LearnedInpainter({**TINY, "channels": channels, "prefill": prefill})
    if scramble:  # the head starts at zero (= push-pull); make the network's own output visible
        with torch.no_grad():
            model.head.weight.normal_(0, 0.5)
    return model.eval()


def _images(n: int = 24, size: int = 16) -> torch.Tensor:
    """Smooth random images: a bilinear upsampling of 4x4 noise."""
    low = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear",
                                           align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("size", [(16, 16), (13, 21), (1, 5), (64, 64)])
def test_any_size_shape_range_and_kept_pixels(size, device):
    x = torch.rand(2, 3, *size).to(device)
    hole = (torch.rand(2, 1, *size) > 0.7).float().to(device)
    with torch.no_grad():
        out = _tiny().to(device)(x, hole)
    assert isinstance(_tiny(), Inpainter)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == device
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    keep = (hole == 0).expand_as(x)
    assert torch.equal(out[keep], x[keep])


def test_untrained_network_is_push_pull(device):
    x = 0.1 + 0.8 * torch.rand(3, 3, 24, 24)  # push-pull stays inside the logit clamp [.01, .99]
    hole = random_holes(3, 24, generator=torch.Generator().manual_seed(0))
    x, hole = x.to(device), hole.to(device)
    with torch.no_grad():
        ours = LearnedInpainter({**TINY}).to(device)(x, hole)
    assert ours.device == device
    torch.testing.assert_close(ours, PushPullInpainter()(x, hole), atol=1e-5, rtol=0)


def test_untrained_biharmonic_prefill_network_is_biharmonic(device):
    x = 0.1 + 0.8 * torch.rand(3, 3, 24, 24)
    hole = random_holes(3, 24, generator=torch.Generator().manual_seed(0))
    x, hole = x.to(device), hole.to(device)
    with torch.no_grad():
        ours = LearnedInpainter({**TINY, "prefill": "biharmonic"}).to(device)(x, hole)
        ref = BiharmonicInpainter(context=None)(x, hole)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_small_holes_run_the_network_on_a_window(monkeypatch, device):
    model = _tiny().to(device)
    x = torch.rand(2, 3, 64, 64).to(device)
    hole = torch.zeros(2, 1, 64, 64, device=device)
    hole[0, :, 60:64, 0:8] = 1
    hole[1, :, 20:28, 30:36] = 1
    seen = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda i, h: seen.append(i.shape[-1]) or predict(i, h))
    with torch.no_grad():
        local = model(x, hole)
        model.context = None
        full = model(x, hole)
    assert seen == [24, 64]  # 8 px + 2 x 8 px of context, then the whole image
    outside = (hole == 0).expand_as(x)
    assert torch.equal(local[outside], x[outside])
    inside = ~outside
    # the window changes the network's context, not what it does: both fills are close
    assert float((local - full).abs()[inside].mean()) < 0.1
    assert not torch.equal(local, full)


def test_soft_and_per_channel_holes_blend_exactly(device):
    x = torch.rand(1, 3, 16, 16).to(device)
    hole = torch.zeros(1, 3, 16, 16, device=device)
    hole[:, 0, 4:9, 4:9] = 0.5  # channel 0 only, half hole
    model = _tiny().to(device)
    with torch.no_grad():
        out = model(x, hole)
        pred = model.predict(x, hole.amax(1, keepdim=True))
    torch.testing.assert_close(out, (1 - hole) * x + hole * pred)
    assert torch.equal(out[:, 1:], x[:, 1:])


def test_gradients_flow_to_images_and_hole_but_no_graph_otherwise(device):
    model = _tiny().to(device)
    x = torch.rand(1, 3, 16, 16).to(device)
    hole = torch.zeros(1, 1, 16, 16, device=device)
    hole[..., 4:12, 4:12] = 1
    assert not model(x, hole).requires_grad  # eval mode, plain inputs: no graph
    soft = hole.clone().requires_grad_(True)
    model(x, soft).sum().backward()
    assert soft.grad is not None and float(soft.grad.abs().sum()) > 0


def test_inpaint_baseline_returns_kept_pixels_exactly(device):
    x = torch.rand(2, 3, 32, 32).to(device)
    keep = torch.ones(2, 1, 32, 32, device=device)
    keep[..., 8:20, 10:30] = 0
    with torch.no_grad():
        out = InpaintBaseline(_tiny().to(device)).fill(x, keep)
    assert out.device == device
    kept = (keep == 1).expand_as(x)
    assert torch.equal(out[kept], x[kept])
    assert not torch.allclose(out[~kept], x[~kept])


def test_fit_lowers_the_hole_error(device):
    # flat images of random brightness: the zero-prefill network starts at 0.5 everywhere and
    # must learn to carry the context's brightness into the holes
    gen = torch.Generator().manual_seed(0)
    flat = torch.rand(32, 1, 1, 1, generator=gen).expand(-1, -1, 16, 16).contiguous().to(device)
    hole = random_holes(32, 16, generator=torch.Generator().manual_seed(1)).to(device)
    torch.manual_seed(0)
    model = LearnedInpainter({**TINY, "channels": 1, "prefill": "zero"}).to(device)
    with torch.no_grad():
        before = hole_l1(model(flat, hole), flat, hole)
    losses = model.fit(flat, steps=30, batch_size=8, lr=1e-2, grad_weight=0.0,
                       show_progress=False)
    with torch.no_grad():
        after = hole_l1(model(flat, hole), flat, hole)
    assert len(losses) == 30 and model.training  # fit restores the mode it found
    assert all(p.device == device for p in model.parameters())  # trained where it was
    assert after < 0.85 * before


def test_crops_train_on_windows(device):
    model = _tiny(1, scramble=False).train().to(device)
    # the images stay on the CPU: fit moves them to the inpainter's device
    losses = model.fit(_images(8, 24), steps=2, batch_size=4, crop=12, show_progress=False)
    assert len(losses) == 2
    with pytest.raises(ValueError, match="crop"):
        model.fit(_images(8, 24), steps=1, crop=32)


@pytest.mark.parametrize("interrupt_at", [3, 7])  # last checkpoint mid-epoch / at an epoch end
def test_resume_continues_exactly(tmp_path, monkeypatch, interrupt_at, device):
    data = _images(24).to(device)  # batch 8: 3 steps per epoch
    kwargs = {"steps": 9, "batch_size": 8, "checkpoint_every": 2, "show_progress": False,
              "seed": 3}
    torch.manual_seed(1)
    reference = _tiny(1, scramble=False).train().to(device)
    ref_losses = reference.fit(data, checkpoint=tmp_path / "a.ckpt", **kwargs)

    calls = {"n": 0}
    real = fit_module._holes.random_holes

    def interrupted(*args, **kw):
        calls["n"] += 1
        if calls["n"] == interrupt_at + 1:
            raise KeyboardInterrupt
        return real(*args, **kw)

    torch.manual_seed(1)
    first = _tiny(1, scramble=False).train().to(device)
    monkeypatch.setattr(fit_module._holes, "random_holes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        first.fit(data, checkpoint=tmp_path / "b.ckpt", **kwargs)
    monkeypatch.setattr(fit_module._holes, "random_holes", real)

    torch.manual_seed(99)  # another initialisation: everything must come from the checkpoint
    resumed = _tiny(1, scramble=False).train().to(device)
    losses = resumed.fit(data, checkpoint=tmp_path / "b.ckpt", **kwargs)
    if device.type == "cpu":
        assert losses == ref_losses
        for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
            assert torch.equal(a, b), name
    else:  # CUDA's bilinear-upsampling backward adds atomically: not bitwise reproducible
        assert losses == pytest.approx(ref_losses, rel=1e-4, abs=1e-6)
        for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
            assert b.device == a.device
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_resume_false_starts_afresh(tmp_path, device):
    data = _images(16).to(device)
    torch.manual_seed(1)
    model = _tiny(1, scramble=False).train().to(device)
    model.fit(data, steps=2, batch_size=8, checkpoint=tmp_path / "c.ckpt", show_progress=False)
    losses = model.fit(data, steps=3, batch_size=8, checkpoint=tmp_path / "c.ckpt",
                       resume=False, show_progress=False)
    assert len(losses) == 3


def test_save_load_round_trip(tmp_path, device):
    model = _tiny().to(device)
    path = tmp_path / "inp.pt"
    model.save(path, metrics={"test_l1": 0.01}, name="tiny")
    payload = torch.load(path, weights_only=True, map_location="cpu")
    assert payload["arch"] == "gated-unet" and payload["config"] == model.config
    assert payload["metrics"] == {"test_l1": 0.01} and payload["name"] == "tiny"
    loaded = LearnedInpainter.load(path, device=device)
    via_zoo = zoo.load_file(path, device=device)
    assert isinstance(via_zoo, LearnedInpainter) and not loaded.training
    assert all(p.device == device for p in (*loaded.parameters(), *via_zoo.parameters()))
    x = torch.rand(2, 3, 20, 20).to(device)
    hole = random_holes(2, 20, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        expected = model(x, hole)
        assert torch.equal(loaded(x, hole), expected)
        assert torch.equal(via_zoo(x, hole), expected)
    assert loaded.metrics == {"test_l1": 0.01}


def test_random_holes_coverage_and_determinism():
    def draw(kind):
        return random_holes(40, 32, 48, (0.1, 0.25), kind,
                            torch.Generator().manual_seed(5))

    for kind in ("free-form+box", "free-form", "box"):
        hole = draw(kind)
        cover = hole.mean((1, 2, 3))
        assert hole.shape == (40, 1, 32, 48)
        assert set(hole.unique().tolist()) <= {0.0, 1.0}
        assert bool((cover >= 0.1).all()) and bool((cover <= 0.25).all()), kind
        assert torch.equal(hole, draw(kind))
    assert not torch.equal(draw("box"), draw("free-form"))


def test_bad_input_errors(tmp_path):
    model = _tiny(3)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="hole"):
        model(torch.rand(1, 3, 16, 16), torch.full((1, 1, 16, 16), 2.0))
    with pytest.raises(ValueError, match="unknown keys"):
        LearnedInpainter({"width": [1, 2, 3]})
    with pytest.raises(ValueError, match="widths"):
        LearnedInpainter({"widths": [4, 8]})
    with pytest.raises(ValueError, match="prefill"):
        LearnedInpainter({"prefill": "grey"})
    with pytest.raises(ValueError, match="context"):
        LearnedInpainter(TINY, context=0)
    with pytest.raises(ValueError, match="steps"):
        model.fit(torch.rand(4, 3, 16, 16), steps=0)
    with pytest.raises(ValueError, match="channels"):
        model.fit(torch.rand(4, 1, 16, 16), steps=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.fit(torch.rand(4, 3, 16, 16) * 3, steps=1)
    with pytest.raises(TypeError, match="data"):
        model.fit(42, steps=1)
    with pytest.raises(ValueError, match="coverage"):
        random_holes(2, 16, coverage=(0.3, 0.2))
    with pytest.raises(ValueError, match="kind"):
        random_holes(2, 16, kind="circles")
    with pytest.raises(ValueError, match="gated-unet"):
        LearnedInpainter.load(zoo.entry("digits-cnn").path)
    model.fit(torch.rand(8, 3, 16, 16), steps=1, batch_size=4, checkpoint=tmp_path / "k.ckpt",
              show_progress=False)
    with pytest.raises(ValueError, match="config"):
        _tiny(1).fit(torch.rand(8, 1, 16, 16), steps=2, checkpoint=tmp_path / "k.ckpt",
                     show_progress=False)
