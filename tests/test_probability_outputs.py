"""A model that returns probabilities (a softmax last) where a softmax of logits is taken is
told, once, by every entry point that applies that softmax: Meaningful Perturbation's default
reward, the default score of deletion, insertion, ROAD and removal_curves, the saliency metric,
R-OMS, the audit's model check. A model with one output, where a softmax or argmax over the
classes is taken, is refused: every map would score the same."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from captum_cf.attr import MeaningfulPerturbation
from captum_cf.baselines import ConstantBaseline
from captum_cf.metrics import deletion, insertion, r_oms, removal_curves, road, saliency_metric


def _logits_model(device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(3, 4)).eval().to(device)


def _calls(model, x):
    amap = torch.rand_like(x)
    zero = ConstantBaseline(0.0)
    return {
        "MeaningfulPerturbation": lambda: MeaningfulPerturbation(model).attribute(
            x, target=1, n_steps=2),
        "deletion": lambda: deletion(model, x, amap, target=1, baseline=zero, n_steps=2),
        "insertion": lambda: insertion(model, x, amap, target=None, baseline=zero, n_steps=2),
        "road": lambda: road(model, x, amap, 1, percentages=[0, 50, 100]),
        "removal_curves": lambda: removal_curves(model, x, amap, None, {"zero": zero}, [0, 100]),
        "saliency_metric": lambda: saliency_metric(model, x, amap, target=1),
        "r_oms": lambda: r_oms(model, x, zero, ConstantBaseline(0.5), fractions=[0.0, 0.5]),
    }


METRICS = ["deletion", "insertion", "road", "removal_curves", "saliency_metric", "r_oms"]


@pytest.mark.parametrize("name", ["MeaningfulPerturbation", *METRICS])
def test_a_softmax_output_is_told_and_logits_are_not(name, device) -> None:
    x = torch.rand(2, 1, 8, 8, device=device)
    probabilities = nn.Sequential(_logits_model(device), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match=r"forward_func seems to return probabilities .*towards "
                                         r"1/4; return the logits") as caught:
        _calls(probabilities, x)[name]()
    assert caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _calls(_logits_model(device), x)[name]()


def test_other_scores_and_rewards_take_probabilities_as_given(device) -> None:
    x = torch.rand(2, 1, 8, 8, device=device)
    probabilities = nn.Sequential(_logits_model(device), nn.Softmax(dim=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deletion(probabilities, x, torch.rand_like(x), target=1, n_steps=2, score="logit")
        MeaningfulPerturbation(probabilities).attribute(x, target=1, n_steps=2, reward="logit")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_softmax_outputs_are_recognised_in_every_float_dtype(dtype, classes) -> None:
    # a fixed 1e-4 missed half-precision softmax rows (their sums round off by up to 2e-3)
    from captum_cf._validation import looks_like_probabilities

    logits = torch.randn(64, classes, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert looks_like_probabilities(logits.softmax(1))
    assert not looks_like_probabilities(logits)
    assert not looks_like_probabilities(logits.softmax(1) * 0.9)  # non-negative, sums to 0.9


@pytest.mark.parametrize("name", METRICS)
def test_one_output_is_refused_where_a_softmax_is_taken(name, device) -> None:
    # softmax over one class is 1 for every input: every map would score the same
    torch.manual_seed(0)
    one = nn.Sequential(nn.Flatten(), nn.Linear(64, 1)).to(device)
    scored = "removal" if name == "r_oms" else "explanation"  # R-OMS scores removals
    with pytest.raises(ValueError, match=r"forward_func returns one output per example.*every "
                                         rf"{scored} would score the same: (pass score="
                                         r"'sigmoid'|return one logit per class)"):
        _calls(one, torch.rand(2, 1, 8, 8, device=device))[name]()


def test_one_logit_scores_with_sigmoid_and_accuracy_is_refused(device) -> None:
    torch.manual_seed(0)
    one = nn.Sequential(nn.Flatten(), nn.Linear(64, 1)).to(device)
    x = torch.rand(2, 1, 8, 8, device=device)
    curve = deletion(one, x, torch.rand_like(x), target=0, n_steps=2, score="sigmoid")
    torch.testing.assert_close(curve.scores[:, 0], one(x)[:, 0].sigmoid().detach())
    with pytest.raises(ValueError, match="score='accuracy' over one class"):
        road(one, x, torch.rand_like(x), 0, score="accuracy")
