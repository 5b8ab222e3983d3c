"""The one-pass finiteness and range checks every public entry point uses."""

from __future__ import annotations

import pytest
import torch

from captum_cf._validation import all_finite, check_images, check_keep, finite_bounds


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_finite_bounds_equal_min_and_max_and_catch_every_non_finite_value(device, dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 2, 5, 7, generator=gen) * 4 - 1).to(device=device, dtype=dtype)
    lo, hi = finite_bounds(x)
    assert (lo, hi) == (float(x.min()), float(x.max()))
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), float("-inf")):
        for pos in ((0, 0, 0, 0), (2, 1, 4, 6), (1, 0, 2, 3)):  # first, last, middle element
            y = x.clone()
            y[pos] = bad
            assert finite_bounds(y) is None, (bad, pos)
            assert not all_finite(y)
            assert bool(torch.isfinite(y).all()) is False  # the check it replaces agrees


def test_finite_bounds_of_integer_and_empty_tensors(device) -> None:
    assert finite_bounds(torch.tensor([3, -2, 7], device=device)) == (-2, 7)
    assert finite_bounds(torch.empty(0, 3, device=device)) == (0.0, 0.0)


def test_image_and_keep_checks_still_name_the_problem(device) -> None:
    x = torch.rand(2, 3, 4, 4, device=device)
    assert check_images(x) is x
    bad = x.clone()
    bad[1, 2, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_images(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\].*got values in \[-0\.4"):
        check_images(x * 0.5 - 0.45)
    keep = torch.ones(2, 1, 4, 4, device=device)
    keep[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_keep(keep, x)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_keep(torch.full((2, 1, 4, 4), 1.5, device=device), x)
    assert check_keep(torch.ones(2, 1, 4, 4, dtype=torch.bool, device=device), x).dtype == x.dtype
