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


def test_a_feature_mask_on_another_device_is_named_before_captum_runs() -> None:
    """A mask on another device than its input fails with both devices named (the meta device
    stands in for a GPU on a CPU-only machine), through the public attribute call too."""
    from captum_cf._validation import check_feature_mask
    from captum_cf.attr import FeatureAblation

    x = torch.rand(2, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.long, device="meta")
    with pytest.raises(ValueError, match=r"feature_mask is on meta but the input is on cpu"):
        check_feature_mask(mask, x)
    with pytest.raises(ValueError, match=r"feature_mask\[1\] is on meta"):
        check_feature_mask((torch.zeros_like(x, dtype=torch.long), mask), (x, x))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with pytest.raises(ValueError, match="move it with feature_mask.to"):
        FeatureAblation(model).attribute(x, target=0, feature_mask=mask)
    check_feature_mask(torch.zeros(1, 1, 4, 4, dtype=torch.long), x)  # same device: fine


def test_first_line_of_an_error() -> None:
    from captum_cf._validation import first_line

    assert first_line(ValueError("\n  bad size\nsecond line")) == "bad size"
    # a DataLoader worker's error: its traceback ends in the worker's message
    worker = RuntimeError("Caught OSError in DataLoader worker process 0.\nOriginal Traceback "
                          "(most recent call last):\n  File \"x.py\", line 1\nOSError: truncated")
    assert first_line(worker) == "truncated"
    same = ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback:\n"
                      "ValueError: cannot read image a.jpg")  # the kind is said once, not twice
    assert first_line(same) == "cannot read image a.jpg"
    dotted = ValueError("Caught UnidentifiedImageError in DataLoader worker process 0.\n"
                        "PIL.UnidentifiedImageError: cannot identify image file 'a.png'")
    assert first_line(dotted) == "cannot identify image file 'a.png'"
    assert first_line(ValueError("x" * 50), limit=10) == "xxxxxxx..."
    assert first_line(ValueError("x" * 10), limit=10) == "x" * 10
    assert first_line(KeyError()) == "" and first_line(KeyError(), empty="KeyError") == "KeyError"
