"""The label-agreement check: a folder whose class order is not the classifier's is told."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from captum_cf.training import check_label_agreement

pytestmark = pytest.mark.simdev


class _Brightness(nn.Module):
    """Class 1 for bright images, class 0 for dark ones (``swap``: the other way round)."""

    def __init__(self, swap: bool = False) -> None:
        super().__init__()
        self.sign = nn.Parameter(torch.tensor(-1.0 if swap else 1.0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-bright, bright], 1) * self.sign


def _set(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted labels, as a folder gives them: n // 2 dark images, then n // 2 bright ones."""
    labels = (torch.arange(n) >= n // 2).long()
    images = torch.randint(0, 100, (n, 1, 4, 4), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    images[labels == 1] += 150
    return images, labels


def _told(model: nn.Module, images, labels, device, names=None) -> tuple[float, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agreement = check_label_agreement(model.to(device), images, labels, device, "net",
                                          names)
    return agreement, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_classifier_in_the_folders_order_passes_silently(device: torch.device) -> None:
    images, labels = _set()
    agreement, told = _told(_Brightness(), images, labels, device)
    assert agreement == 1.0 and told == []


def test_a_classifier_in_another_order_is_told_with_the_mapping(device: torch.device) -> None:
    images, labels = _set()
    model = _Brightness(swap=True)
    agreement, told = _told(model, images, labels, device, ["cat", "dog"])
    assert agreement == 0.0 and len(told) == 1
    assert "net puts 0% of 256 training images in their folder's class" in told[0]
    assert "those of 'cat' mostly as class 1, those of 'dog' mostly as class 0" in told[0]
    assert "sorted by name" in told[0]
    assert not model.sign.requires_grad and model.training  # the model's state as it was


def test_the_sample_is_seeded_and_spread_over_the_set(device: torch.device) -> None:
    images, labels = _set(3000)  # sorted: the first 1500 dark (class 0), then bright

    class AlwaysZero(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([torch.ones(len(x), device=x.device),
                                torch.zeros(len(x), device=x.device)], 1)

    first, told = _told(AlwaysZero(), images, labels, device)
    again, _ = _told(AlwaysZero(), images, labels, device)
    # the share of class 0 in the sample: about half, so the sample spans both halves of the set
    assert first == again and 0.4 < first < 0.6
    assert len(told) == 1 and "those of class 0 mostly as class 0, those of class 1 mostly as " \
        "class 0" in told[0]


def test_a_perfect_classifier_of_an_unbalanced_set_is_not_told(device: torch.device) -> None:
    """Guessing the largest class of a 94/6 set is right 94 % of the time (0.1 above it is more
    than 1): the margin is halved there, so that a classifier right on every image passes, and
    one that always guesses the largest class is still told."""
    images, labels = _set()
    keep = torch.cat([torch.arange(0, 1000), torch.arange(1000, 1060)])  # 1000 dark, 60 bright
    images, labels = images[keep], labels[keep]
    agreement, told = _told(_Brightness(), images, labels, device)
    assert agreement == 1.0 and told == []

    class AlwaysDark(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([torch.ones(len(x), device=x.device),
                                torch.zeros(len(x), device=x.device)], 1)

    agreement, told = _told(AlwaysDark(), images, labels, device)
    assert 0.9 < agreement < 0.98 and len(told) == 1


def test_a_perfect_classifier_of_a_one_class_sample_is_not_told(device: torch.device) -> None:
    images, labels = _set()
    agreement, told = _told(_Brightness(), images[:1000], labels[:1000], device)  # all dark
    assert agreement == 1.0 and told == []
    agreement, told = _told(_Brightness(swap=True), images[:1000], labels[:1000], device)
    assert agreement == 0.0 and len(told) == 1  # one that gets them all wrong still is
