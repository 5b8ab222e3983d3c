"""A model that returns probabilities (a softmax last) where a softmax of logits is taken is
told, once, by every entry point that applies that softmax: Meaningful Perturbation's default
reward, the deletion and insertion metrics' default score, the audit's model check."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from captum_cf.attr import MeaningfulPerturbation
from captum_cf.baselines import ConstantBaseline
from captum_cf.metrics import deletion, insertion


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
    }


@pytest.mark.parametrize("name", ["MeaningfulPerturbation", "deletion", "insertion"])
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
