"""MeaningfulPerturbation: localisation on a toy model, area, binarisation, model safety."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from captum_cf.attr import METHODS
from captum_cf.attr.meaningful_perturbation import (
    MeaningfulPerturbation,
    _area_penalty,
    _area_references,
    _filler,
    _reward,
    _straight_through,
    _total_variation,
)
from captum_cf.baselines import Baseline, ConstantBaseline, InpaintBaseline
from captum_cf.datasets import SyntheticShapes
from captum_cf.inpainters import PushPullInpainter

SIZE = 32
FAST = dict(n_iters=60, mask_size=16, jitter=0, tv=0.1)


def _square_model(top: int = 8, left: int = 8, side: int = 8, device: Any = "cpu") -> nn.Module:
    """Logit 0 = 20 * mean brightness of one square - 10, logit 1 = 0: only the square matters."""
    weight = torch.zeros(3, SIZE, SIZE)
    weight[:, top : top + side, left : left + side] = 1.0
    linear = nn.Linear(3 * SIZE * SIZE, 2)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[0] = (weight / weight.sum() * 20).flatten()
        linear.bias.copy_(torch.tensor([-10.0, 0.0]))
    return nn.Sequential(nn.Flatten(), linear).to(device)


def _square_images(
    n: int, top: int = 8, left: int = 8, side: int = 8, device: Any = "cpu"
) -> Tensor:
    """Drawn on the CPU (the seeded global generator), then moved to ``device``."""
    x = torch.rand(n, 3, SIZE, SIZE) * 0.3
    x[:, :, top : top + side, left : left + side] = 0.9
    return x.to(device)


def _square_mask(top: int = 8, left: int = 8, side: int = 8, device: Any = "cpu") -> Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[top : top + side, left : left + side] = True
    return mask.to(device)


def _iou(a: Tensor, b: Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


class _RecordingBaseline(Baseline):
    """Mask-conditional baseline (overrides ``_fill``) that records every keep mask it sees."""

    def __init__(self) -> None:
        self.keeps: list[Tensor] = []

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        return torch.zeros_like(inputs)

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        self.keeps.append(keep.detach().clone())
        return keep * inputs


# ---------------------------------------------------------------------------------------------
# what the method finds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["deletion", "preservation"])
def test_mask_localises_the_only_relevant_square(mode: str, device, on_device) -> None:
    x = _square_images(2, device=device)
    sal = MeaningfulPerturbation(_square_model(device=device)).attribute(
        x, target=0, baselines=ConstantBaseline(0.0), mode=mode, **FAST
    )
    assert sal.shape == (2, 1, SIZE, SIZE) and on_device(sal)
    assert 0.0 <= float(sal.min()) and float(sal.max()) <= 1.0
    for s in sal:
        assert _iou(s[0] > 0.5, _square_mask(device=device)) > 0.5


def test_area_constraint_gives_a_mask_of_that_area_on_the_evidence(device, on_device) -> None:
    x = _square_images(2, device=device)
    sal = MeaningfulPerturbation(_square_model(device=device)).attribute(
        x, target=0, baselines=0.0, mode="preservation", area=0.1, reward="logit", **FAST
    )
    pixels = SIZE * SIZE
    assert on_device(sal)
    for s in sal[:, 0]:
        # the sorted-mask penalty makes the mask close to binary with 10 % ones
        assert abs(float((s > 0.5).float().mean()) - 0.1) < 0.03
        assert abs(float(s.mean()) - 0.1) < 0.03
        top = s.flatten() >= s.flatten().kthvalue(pixels - int(0.1 * pixels)).values
        # the top-10 % region covers the square (6.25 % of the image) almost entirely
        assert float((top.view(SIZE, SIZE) & _square_mask(device=device)).sum()) / 64 > 0.9


def test_several_areas_give_one_channel_each(device, on_device) -> None:
    x = _square_images(2, device=device)
    sal = MeaningfulPerturbation(_square_model(device=device)).attribute(
        x, target=0, baselines=0.0, mode="preservation", area=[0.05, 0.2], reward="logit", **FAST
    )
    assert sal.shape == (2, 2, SIZE, SIZE) and on_device(sal)
    fractions = (sal > 0.5).float().mean(dim=(2, 3))
    assert torch.allclose(fractions.cpu(), torch.tensor([[0.05, 0.2]] * 2), atol=0.03)


def test_deletion_game_with_area_removes_the_square(device, on_device) -> None:
    x = _square_images(1, device=device)
    model = _square_model(device=device)
    sal = MeaningfulPerturbation(model).attribute(
        x, target=0, baselines=0.0, area=0.0625, reward="contrastive", **FAST
    )
    assert on_device(sal)
    assert _iou(sal[0, 0] > 0.5, _square_mask(device=device)) > 0.5
    deleted = x * (1 - (sal > 0.5).float())
    assert model(deleted).argmax(dim=1).item() == 1  # class 0 is gone


def test_binarize_forwards_binary_masks_and_still_learns(device, on_device) -> None:
    recorder = _RecordingBaseline()
    x = _square_images(1, device=device)
    sal = MeaningfulPerturbation(_square_model(device=device)).attribute(
        x, target=0, baselines=recorder, mode="preservation", binarize=True, l1=0.08, **FAST
    )
    # binarize: the soft and the hard mask are scored together, so 2 fills per step; the
    # mask-conditional baseline only ever receives the binary hole ``keep < 0.5``
    assert len(recorder.keeps) == 2 * FAST["n_iters"] and on_device(sal, recorder.keeps)
    for keep in recorder.keeps:
        assert bool(((keep == 0) | (keep == 1)).all())
    # the continuous mask moved from its start (0.5 everywhere) onto the square
    assert _iou(sal[0, 0] > 0.5, _square_mask(device=device)) > 0.5
    assert float((sal - 0.5).abs().mean()) > 0.3


def test_mp_g_deletes_the_square_with_push_pull_inpainting(device, on_device) -> None:
    # the old rule handed the soft keep to push-pull, which blends a half-removed pixel with
    # itself, so deleting gained nothing and the mask collapsed to "delete nothing"
    x = _square_images(2, device=device)
    model = _square_model(device=device)
    baseline = InpaintBaseline(PushPullInpainter())
    sal = MeaningfulPerturbation(model).attribute(x, target=0, baselines=baseline, **FAST)
    assert on_device(sal)
    for s in sal:
        assert _iou(s[0] > 0.5, _square_mask(device=device)) > 0.5
    hard_keep = (sal <= 0.5).float()
    assert (model(baseline.fill(x, hard_keep)).argmax(dim=1) == 1).all()  # class 0 is gone


def test_mp_g_content_is_inpainted_from_the_hard_context(device, on_device) -> None:
    recorder = _RecordingBaseline()
    fill = _filler(recorder, _square_images(1, device=device))
    x = _square_images(1, device=device)
    keep = torch.full((1, 1, SIZE, SIZE), 0.8)
    keep[..., :16, :] = 0.3
    keep = keep.to(device).requires_grad_(True)
    out = fill(x, keep, torch.tensor([0], device=device))
    assert on_device(out, recorder.keeps)
    # hole = keep < 0.5 (top half): recorder fills it with 0; elsewhere its reference, also 0
    assert torch.equal(recorder.keeps[0][:, :1], (keep.detach() >= 0.5).float())
    assert torch.allclose(out, keep.detach() * x)
    out.sum().backward()
    assert torch.allclose(keep.grad, x.sum(dim=1, keepdim=True))  # gradient reaches every cell


def test_binarize_localises_on_the_zoo_shapes_model(device, on_device) -> None:
    from captum_cf import zoo

    if "shapes-cnn" not in zoo.available():
        pytest.skip("zoo model shapes-cnn not available")
    model = zoo.load("shapes-cnn").to(device)
    data = SyntheticShapes(4, size=64, seed=5)
    images, labels, masks = data.images.to(device), data.labels.to(device), data.masks.to(device)
    sal = MeaningfulPerturbation(model).attribute(
        images, target=labels, binarize=True, n_iters=40, seed=0
    )
    assert on_device(sal)
    deleted = (sal > 0.5).float().mean(dim=(1, 2, 3))
    # the old 0.5 start flipped every cell together: all-keep or all-delete masks
    assert bool((deleted > 0.0).all()) and bool((deleted < 0.75).all())
    # pointing game with the benchmark's tolerance: the peak lies within 4 px of the object
    near = F.max_pool2d(masks.float(), 9, stride=1, padding=4).flatten(1)
    hits = near.gather(1, sal.flatten(1).argmax(dim=1)[:, None])
    assert int(hits.sum()) >= 3
    inside = masks.float()
    mean_in = (sal * inside).sum(dim=(1, 2, 3)) / inside.sum(dim=(1, 2, 3))
    mean_out = (sal * (1 - inside)).sum(dim=(1, 2, 3)) / (1 - inside).sum(dim=(1, 2, 3))
    assert bool((mean_in > 1.5 * mean_out).all())


def test_straight_through_is_identity_backwards(device) -> None:
    s = torch.tensor([0.2, 0.5, 0.7], device=device, requires_grad=True)
    out = _straight_through(s)
    assert torch.equal(out, torch.tensor([0.0, 1.0, 1.0], device=device))
    (out * torch.tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    assert torch.equal(s.grad, torch.tensor([1.0, 2.0, 3.0], device=device))


def test_rewards_by_hand(device) -> None:
    cpu_logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    logits, target = cpu_logits.to(device), torch.tensor([0, 2], device=device)

    def reward(kind: str) -> Tensor:
        out = _reward(logits, target, kind)
        assert out.device == logits.device
        return out.cpu()

    assert torch.allclose(reward("logit"), torch.tensor([2.0, -1.0]))
    assert torch.allclose(reward("contrastive"), torch.tensor([1.0, -4.0]))
    expected = torch.tensor([cpu_logits[0].softmax(0)[0], cpu_logits[1].softmax(0)[2]])
    assert torch.allclose(reward("probability"), expected)


def test_regularisers_by_hand(device, on_device) -> None:
    mask = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]], device=device)
    # vertical |0.5-0|^3, |0.5-1|^3 -> mean 0.125; horizontal 1, 0 -> mean 0.5
    tv = _total_variation(mask, 3.0)
    assert torch.allclose(tv.cpu(), torch.tensor([0.625])) and on_device(tv)
    refs = _area_references((0.25,), 1, (2, 2), mask)
    assert torch.equal(refs.cpu(), torch.tensor([[0.0, 0.0, 0.0, 1.0]])) and on_device(refs)
    # sorted (0, .5, .5, 1) against (0, 0, 0, 1): (0 + .25 + .25 + 0) / 4
    penalty = _area_penalty(mask, refs)
    assert torch.allclose(penalty.cpu(), torch.tensor([0.125])) and on_device(penalty)


# ---------------------------------------------------------------------------------------------
# batching, seeding, arguments
# ---------------------------------------------------------------------------------------------


def test_batch_equals_one_image_at_a_time(device, on_device) -> None:
    x = torch.cat([_square_images(1), _square_images(1, top=16, left=12)]).to(device)
    target = torch.tensor([0, 1], device=device)
    mp = MeaningfulPerturbation(_square_model(device=device))
    kwargs = dict(baselines=ConstantBaseline(0.2), n_iters=30, mask_size=8, jitter=2, seed=5)
    batch = mp.attribute(x, target=target, area=[0.1, 0.3], **kwargs)
    assert on_device(batch)
    for i in range(2):
        alone = mp.attribute(x[i : i + 1], target=target[i : i + 1], area=[0.1, 0.3], **kwargs)
        assert torch.allclose(batch[i : i + 1], alone, atol=1e-5)


def test_reproducible_under_torch_seed_and_seed_argument(device, on_device) -> None:
    mp = MeaningfulPerturbation(_square_model(device=device))
    x = _square_images(2, device=device)
    kwargs = dict(target=0, baselines=0.0, n_iters=20, mask_size=8, jitter=3)
    torch.manual_seed(11)
    first = mp.attribute(x, **kwargs)
    assert on_device(first)
    torch.manual_seed(11)
    assert torch.equal(first, mp.attribute(x, **kwargs))
    seeded = mp.attribute(x, seed=3, **kwargs)
    assert torch.equal(seeded, mp.attribute(x, seed=3, **kwargs))
    assert not torch.equal(seeded, mp.attribute(x, seed=4, **kwargs))


def test_target_none_explains_the_predicted_class(device) -> None:
    model = _square_model(device=device)
    x = _square_images(2, device=device)
    x[1, :, 8:16, 8:16] = 0.1  # square dark: class 1 predicted
    mp = MeaningfulPerturbation(model)
    auto = mp.attribute(x, baselines=0.0, n_iters=5, jitter=0)
    explicit = mp.attribute(x, target=model(x).argmax(1), baselines=0.0, n_iters=5, jitter=0)
    assert torch.equal(auto, explicit)


def test_additional_forward_args_reach_the_model_for_every_area(device, on_device) -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _square_model()

        def forward(self, x: Tensor, scale: Tensor) -> Tensor:
            return self.inner(x) * scale[:, None]

    x = _square_images(2, device=device)
    mp = MeaningfulPerturbation(Scaled().to(device))
    sal = mp.attribute(
        x,
        target=0,
        baselines=0.0,
        area=[0.1, 0.2],
        additional_forward_args=(torch.ones(2, device=device),),
        **FAST,
    )
    assert sal.shape == (2, 2, SIZE, SIZE) and on_device(sal)
    assert _iou(sal[0, 0] > 0.5, _square_mask(device=device)) > 0.5


def test_inputs_untouched_and_default_blur_baseline_runs(device, on_device) -> None:
    x = _square_images(2, device=device)
    before = x.clone()
    sal = MeaningfulPerturbation(_square_model(device=device)).attribute(x, target=0, n_iters=3)
    assert torch.equal(x, before)
    assert sal.shape == (2, 1, SIZE, SIZE) and sal.dtype == x.dtype and on_device(sal)


def test_model_state_restored_after_success_and_after_exception(device) -> None:
    model = nn.Sequential(_square_model(device=device), nn.Dropout(0.0))
    model[0][1].bias.requires_grad_(False)
    model.train()
    model[1].eval()
    params = [p.detach().clone() for p in model.parameters()]

    def snapshot() -> list[Any]:
        return [m.training for m in model.modules()] + [p.requires_grad for p in model.parameters()]

    state = snapshot()
    MeaningfulPerturbation(model).attribute(
        _square_images(1, device=device), target=0, baselines=0.0, n_iters=3
    )
    assert snapshot() == state
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))

    calls = {"n": 0}

    def explode(module: nn.Module, args: Any, output: Tensor) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")

    handle = model.register_forward_hook(explode)
    with pytest.raises(RuntimeError, match="boom"):
        MeaningfulPerturbation(model).attribute(
            _square_images(1, device=device), target=0, baselines=0.0
        )
    handle.remove()
    assert snapshot() == state
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))


def test_the_callers_tensors_and_batchnorm_statistics_are_left_alone(device) -> None:
    # a baseline and an extra model argument that require grad got the masks' gradients (and
    # a baseline computed from the caller's parameter had its graph run backwards); a model in
    # train mode updated its BatchNorm statistics at every step
    torch.manual_seed(0)
    base = _square_model(device=device)

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.bn = base, nn.BatchNorm1d(2)

        def forward(self, x: Tensor, scale: Tensor) -> Tensor:
            return self.bn(self.net(x)) * scale

    model = Scaled().to(device).train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    theta = torch.tensor(0.3, device=device, requires_grad=True)
    baseline = theta * torch.ones(1, 1, SIZE, SIZE, device=device)  # part of the caller's graph
    scale = torch.tensor(2.0, device=device, requires_grad=True)
    x = _square_images(2, device=device)
    sal = MeaningfulPerturbation(model).attribute(x, target=0, baselines=baseline,
                                                  additional_forward_args=(scale,), n_iters=3)
    assert sal.shape == (2, 1, SIZE, SIZE)
    assert theta.grad is None and scale.grad is None
    assert model.training and all(torch.equal(v, buffers[k])
                                  for k, v in model.state_dict().items())
    baseline.sum().backward()  # the caller's graph is still whole
    assert theta.grad is not None


@pytest.mark.no_simdev("an inference tensor cannot hold the simulated device's tensor type")
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_runs_inside_no_grad_and_inference_mode(context, device) -> None:
    model, x = _square_model(device=device), _square_images(2, device=device)
    torch.manual_seed(0)
    want = MeaningfulPerturbation(model).attribute(x, target=0, baselines=0.0, n_iters=3)
    torch.manual_seed(0)
    with context():
        got = MeaningfulPerturbation(model).attribute(x, target=0, baselines=0.0, n_iters=3)
    assert torch.equal(got, want)
    with context():  # a baseline tensor made inside the context (an inference tensor there)
        reference = torch.zeros(1, 1, SIZE, SIZE, device=device)
        got = MeaningfulPerturbation(model).attribute(x, target=0, baselines=reference,
                                                      n_iters=3)
    assert got.shape == want.shape


BAD = [
    (dict(mode="delete"), ValueError, "mode must be one of"),
    (dict(reward="prob"), ValueError, "reward must be one of"),
    (dict(area=0.0), ValueError, r"area must .* in \(0, 1\)"),
    (dict(area=[0.1, 1.5]), ValueError, r"area must .* in \(0, 1\)"),
    (dict(area=[]), ValueError, "non-empty"),
    (dict(area="big"), TypeError, "area must be"),
    (dict(target=2), ValueError, r"target must be class indices in \[0, 2\)"),
    (dict(target=[0, 1, 0]), ValueError, "one entry per example"),
    (dict(n_iters=0), ValueError, "n_iters must be"),
    (dict(n_iters=2.5), TypeError, "n_iters must be an int"),
    (dict(lr=0.0), ValueError, "lr must be"),
    (dict(l1=-1.0), ValueError, "l1 must be"),
    (dict(tv_beta=0.5), ValueError, "tv_beta must be"),
    (dict(jitter=-1), ValueError, "jitter must be"),
    (dict(mask_size=0), ValueError, "mask_size must lie"),
    (dict(mask_size=(4, 64)), ValueError, "mask_size must lie"),
    (dict(mask_size="big"), TypeError, "mask_size must be"),
    (dict(binarize=1), TypeError, "binarize must be a bool"),
    (dict(baselines="blur"), TypeError, "baselines must be"),
    (dict(baselines=torch.zeros(3, 3)), ValueError, "baselines tensor must be broadcastable"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD, ids=[str(b[0])[:40] for b in BAD])
def test_bad_arguments_are_rejected_before_optimising(
    kwargs: dict, error: type, message: str
) -> None:
    calls = {"n": 0}
    model = _square_model()
    model.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    kwargs = {"target": 0, "baselines": 0.0, **kwargs}
    with pytest.raises(error, match=message):
        MeaningfulPerturbation(model).attribute(_square_images(2), **kwargs)
    assert calls["n"] <= 1  # at most the clean pass that reads the number of classes


@pytest.mark.parametrize(
    "inputs, error, message",
    [
        (torch.rand(3, SIZE, SIZE), ValueError, r"shape \(N, C, H, W\)"),
        (torch.ones(1, 3, SIZE, SIZE, dtype=torch.long), TypeError, "floating-point"),
        (torch.full((1, 3, SIZE, SIZE), 2.0), ValueError, r"in \[0, 1\]"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_are_rejected(inputs: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MeaningfulPerturbation(_square_model()).attribute(inputs, target=0, baselines=0.0)


def test_model_must_return_class_scores() -> None:
    mp = MeaningfulPerturbation(lambda x: x.sum(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match=r"logits of shape \(N, classes\)"):
        mp.attribute(_square_images(1), target=0, baselines=0.0)


def test_registered_for_the_audit(device, on_device) -> None:
    from captum_cf._registry import AuditContext

    assert "meaningful-perturbation" in METHODS
    ctx = AuditContext(_square_model(device=device), "toy", None, 2, (3, SIZE, SIZE))
    explain = METHODS.create("meaningful-perturbation", ctx)
    sal = explain(
        _square_images(2, device=device), torch.tensor([0, 0], device=device),
        ConstantBaseline(0.0),
    )
    assert sal.shape == (2, 1, SIZE, SIZE) and on_device(sal)
    assert float(sal[:, :, 8:16, 8:16].mean()) > float(sal.mean())


def test_n_steps_is_captums_name_and_n_iters_still_works(device, on_device) -> None:
    model, x = _square_model(device=device), _square_images(1, device=device)
    recorder_steps = []
    for kwargs in ({"n_steps": 4}, {"n_iters": 4}, {"n_steps": 4, "n_iters": 4}):
        torch.manual_seed(0)
        recorder_steps.append(
            MeaningfulPerturbation(model).attribute(x, target=0, baselines=0.0, seed=1,
                                                    mask_size=4, **kwargs)
        )
    assert torch.equal(recorder_steps[0], recorder_steps[1]) and on_device(recorder_steps)
    assert torch.equal(recorder_steps[0], recorder_steps[2])
    other = MeaningfulPerturbation(model).attribute(x, target=0, baselines=0.0, seed=1,
                                                    mask_size=4, n_steps=1)
    assert not torch.equal(other, recorder_steps[0])  # n_steps is honoured
    with pytest.raises(ValueError, match="n_steps .* and n_iters .* name the same setting"):
        MeaningfulPerturbation(model).attribute(x, target=0, n_steps=3, n_iters=4)
    with pytest.raises(ValueError, match="n_steps must be"):
        MeaningfulPerturbation(model).attribute(x, target=0, n_steps=0)


@pytest.mark.simdev
def test_the_area_penalty_pushes_tied_pixels_alike(device) -> None:
    """Tied mask values (all 0.5 at the start, 0 or 1 when saturated) share their references'
    mean: the push no longer depends on the sort's tie order, which differs between the CPU and
    CUDA (the area test above gave IoU 0.43 on a GPU, 0.63 on the CPU)."""
    from captum_cf.attr.meaningful_perturbation import _area_penalty, _area_references

    start = torch.full((1, 1, 8, 8), 0.5).to(device).requires_grad_(True)
    refs = _area_references((0.25,), 1, (8, 8), start)
    (grad,) = torch.autograd.grad(_area_penalty(start, refs).sum(), start)
    assert torch.unique(grad.cpu()).numel() == 1  # one push for all 64 tied pixels
    saturated = torch.zeros(1, 1, 8, 8)
    saturated[..., ::2, :] = 1.0  # 32 pixels at 1, 32 at 0, interleaved
    saturated = saturated.to(device).requires_grad_(True)
    (grad,) = torch.autograd.grad(_area_penalty(saturated, refs).sum(), saturated)
    ones = saturated.detach().cpu() == 1
    grad = grad.cpu()
    # 16 of the 32 ones are against references 1, 16 against 0: every one pushed down alike
    assert torch.unique(grad[ones]).numel() == 1 and float(grad[ones][0]) > 0
    assert torch.unique(grad[~ones]).numel() == 1 and float(grad[~ones][0]) == 0.0


def test_an_area_below_one_mask_cell_is_warned_and_a_float_mask_size_refused() -> None:
    """On 32 px digits the default 4 x 4 mask cannot hold area 0.02: the region came out
    empty, silently; mask_size=3.0 raised Python's "'float' object is not iterable"."""
    model, x = _square_model(), _square_images(1)
    with pytest.warns(UserWarning, match=r"area 0.02 is smaller than one cell of the 4 x 4 mask "
                                         r"\(0.0625 of the image\).*at least 8 per side"):
        MeaningfulPerturbation(model).attribute(x, target=0, area=0.02, n_steps=1)
    with pytest.raises(TypeError, match=r"^mask_size must be an int or a pair of ints, got 3.0$"):
        MeaningfulPerturbation(model).attribute(x, target=0, area=0.1, n_steps=1, mask_size=3.0)


@pytest.mark.parametrize(("dtype", "values"), [
    (torch.float16, [0.1, 0.7002, 0.8999, 0.95]),  # the 2nd and 3rd: one group before (inf keys)
    (torch.bfloat16, [0.1, 0.40625, 0.408203125, 0.95]),  # 0.002 apart: one group before
])
def test_the_area_penalty_tells_half_precision_values_apart(dtype, values) -> None:
    """v / 1e-5 overflowed float16 above 0.655 (every such value one tie group) and merged
    bfloat16 values 0.002 apart."""
    from captum_cf.attr.meaningful_perturbation import _area_penalty, _area_references

    sal = torch.tensor(values, dtype=dtype).view(1, 1, 2, 2)
    sal.requires_grad_(True)
    refs = _area_references((0.5,), 1, (2, 2), sal)
    (grad,) = torch.autograd.grad(_area_penalty(sal, refs).sum(), sal)
    want = 2 * (sal.detach().flatten().float() - torch.tensor([0.0, 0.0, 1.0, 1.0])) / 4
    torch.testing.assert_close(grad.flatten().float(), want, atol=2e-2, rtol=0)


def test_an_area_below_one_pixel_is_said_to_be_unreachable() -> None:
    with pytest.warns(UserWarning, match=r"it is below what a 32 x 32 image can hold at all$"):
        MeaningfulPerturbation(_square_model()).attribute(_square_images(1), target=0,
                                                          area=1e-9, n_steps=1)


def test_area_takes_a_number_in_a_tensor_and_refuses_a_mapping() -> None:
    model, x = _square_model(), _square_images(1)
    mp = MeaningfulPerturbation(model)
    sal = mp.attribute(x, target=0, area=torch.tensor(0.25), n_steps=2, seed=0)
    assert torch.equal(sal, mp.attribute(x, target=0, area=0.25, n_steps=2, seed=0))
    for bad in ({0.1: 1}, iter([0.1]), "0.1"):
        with pytest.raises(TypeError, match="^area must be a float or a sequence of floats"):
            mp.attribute(x, target=0, area=bad, n_steps=1)
