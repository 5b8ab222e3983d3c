"""NoisyLinearImputation: ROAD's linear system, hand-computed values, Quantus parity, noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from captum_cf._registry import AuditContext
from captum_cf.baselines import BASELINES, NoisyLinearImputation

quantus_perturb = pytest.importorskip("quantus.functions.perturb_func")


def _exact() -> NoisyLinearImputation:
    return NoisyLinearImputation(noise=0.0, tol=1e-13, max_iter=5000)


def test_centre_pixel_is_the_weighted_mean_of_its_eight_neighbours(device) -> None:
    x = torch.arange(9, dtype=torch.float64, device=device).view(1, 1, 3, 3) / 10
    keep = torch.ones(1, 1, 3, 3, dtype=torch.float64, device=device)
    keep[..., 1, 1] = 0
    out = _exact().fill(x, keep)
    # edges (1, 3, 5, 7) weigh 1/6, corners (0, 2, 6, 8) 1/12
    expected = ((1 + 3 + 5 + 7) / 6 + (0 + 2 + 6 + 8) / 12) / 10
    assert out[0, 0, 1, 1].item() == pytest.approx(expected, abs=1e-12)
    assert torch.equal(out * keep, x * keep)


def test_corner_pixel_uses_only_its_neighbours_inside_the_image(device) -> None:
    x = torch.tensor([[0.9, 0.2, 0.0], [0.4, 0.6, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    x = x.view(1, 1, 3, 3).to(device)
    keep = torch.ones_like(x)
    keep[..., 0, 0] = 0
    out = _exact().fill(x, keep)
    expected = (0.2 / 6 + 0.4 / 6 + 0.6 / 12) / (1 / 6 + 1 / 6 + 1 / 12)
    assert out[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-12)


def test_two_adjacent_removed_pixels_solve_the_coupled_system(device) -> None:
    # 1 x 4 strip: pixels 1 and 2 removed; u1 = (x0 + u2) / 2, u2 = (u1 + x3) / 2 (edge weights
    # only: the diagonal neighbours are outside the image)
    x = torch.tensor([[[[0.0, 0.5, 0.5, 0.9]]]], dtype=torch.float64, device=device)
    keep = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]], dtype=torch.float64, device=device)
    out = _exact().fill(x, keep)
    assert out.device == device
    expected = torch.tensor([0.3, 0.6], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0, 0, 1:3].cpu(), expected)


def test_affine_image_is_continued_exactly_into_an_interior_hole(device) -> None:
    ii, jj = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    x = (0.1 + 0.02 * ii + 0.03 * jj).expand(2, 3, 16, 16).to(device)
    keep = torch.ones(2, 1, 16, 16, device=device)
    keep[..., 4:12, 3:13] = 0
    out = NoisyLinearImputation(noise=0.0).fill(x, keep)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("size", "fraction"), [(8, 0.3), (12, 0.8), (16, 0.95)])
def test_equals_quantus_noisy_linear_imputation(
    size: int, fraction: float, device: torch.device
) -> None:
    gen = torch.Generator().manual_seed(size)
    x = torch.rand(3, 3, size, size, generator=gen, dtype=torch.float64)
    keep = (torch.rand(3, 1, size, size, generator=gen) > fraction).double()
    keep[:, :, 0, 0] = 1
    ours = _exact().fill(x.to(device), keep.to(device))
    assert ours.device == device
    ours = ours.cpu()
    for i in range(3):
        removed = np.flatnonzero(keep[i, 0].numpy().ravel() == 0)
        theirs = quantus_perturb.noisy_linear_imputation(x[i].numpy(), removed, noise=0.0)
        np.testing.assert_allclose(ours[i].numpy(), theirs, atol=1e-9, rtol=0)


def test_noise_has_the_requested_std_only_on_removed_pixels_and_is_reproducible(
    device: torch.device,
) -> None:
    x = torch.full((4, 3, 32, 32), 0.5, device=device)
    keep = torch.ones(4, 1, 32, 32, device=device)
    keep[..., :, 8:] = 0
    road = NoisyLinearImputation(noise=0.05, seed=3)
    out = road.fill(x, keep)
    assert out.device == device
    removed = (out - 0.5)[..., 8:]
    assert removed.std().item() == pytest.approx(0.05, rel=0.05)
    assert abs(removed.mean().item()) < 0.005
    assert torch.equal(out[..., :8], x[..., :8])
    assert torch.equal(road.fill(x, keep), out)
    assert not torch.equal(NoisyLinearImputation(noise=0.05, seed=4).fill(x, keep), out)


def test_an_images_fill_does_not_depend_on_its_batch(device: torch.device) -> None:
    # the noise was drawn per batch slot: an audit's numbers moved with --batch-size
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16, device=device)
    keep = (torch.rand(4, 1, 16, 16, device=device) > 0.3).float()
    road = NoisyLinearImputation(noise=0.05, seed=1)
    whole = road.fill(x, keep)
    alone = torch.cat([road.fill(x[i : i + 1], keep[i : i + 1]) for i in range(4)])
    backwards = road.fill(x.flip(0), keep.flip(0)).flip(0)
    torch.testing.assert_close(alone, whole, atol=1e-5, rtol=0)  # the solver's tolerance
    torch.testing.assert_close(backwards, whole, atol=1e-5, rtol=0)


def test_soft_keep_blends_and_all_removed_gives_grey(device: torch.device) -> None:
    x = torch.rand(2, 1, 8, 8).to(device)
    road = NoisyLinearImputation(noise=0.0)
    everything = road.fill(x, torch.zeros(2, 1, 8, 8, device=device))
    assert everything.device == device and torch.equal(everything, torch.full_like(x, 0.5))
    assert torch.equal(road.reference(x), torch.full_like(x, 0.5))
    keep = torch.ones(2, 1, 8, 8, device=device)
    keep[..., 2, 3] = 0.25
    hard = keep.clone()
    hard[..., 2, 3] = 0
    soft, solved = road.fill(x, keep), road.fill(x, hard)
    expected = 0.25 * x[..., 2, 3] + 0.75 * solved[..., 2, 3]
    torch.testing.assert_close(soft[..., 2, 3], expected)


def test_constant_image_is_unchanged_so_occlusion_attributions_vanish(
    device: torch.device,
) -> None:
    from captum_cf.attr import Occlusion

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval().to(device)
    x = torch.full((2, 1, 8, 8), 0.3, device=device)
    attr = Occlusion(model).attribute(
        x, sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2), target=1,
        baselines=NoisyLinearImputation(noise=0.0),
    )
    assert torch.count_nonzero(attr) == 0
    # a black baseline would not vanish: the test above does see the baseline's content
    attr_zero = Occlusion(model).attribute(
        x, sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2), target=1, baselines=0.0
    )
    assert torch.count_nonzero(attr_zero) > 0


def test_registered_as_road_with_the_audit_seed() -> None:
    ctx = AuditContext(None, "digits", None, 10, (1, 32, 32), seed=7)
    assert "road" in BASELINES.names(ctx)
    road = BASELINES.create("road", ctx)
    assert isinstance(road, NoisyLinearImputation)
    assert (road.noise, road.seed) == (0.01, 7)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="noise"):
        NoisyLinearImputation(noise=-0.1)
    with pytest.raises(TypeError, match="seed"):
        NoisyLinearImputation(seed=1.5)
    with pytest.raises(ValueError, match="tol"):
        NoisyLinearImputation(tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        NoisyLinearImputation(max_iter=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        NoisyLinearImputation().fill(torch.rand(2, 8), torch.ones(2, 8))
    with pytest.raises(ValueError, match="keep"):
        NoisyLinearImputation().fill(torch.rand(1, 1, 4, 4), torch.full((1, 1, 4, 4), 2.0))


def _smooth_image_and_large_hole(size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(size)
    low = torch.rand(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    x = nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=True)
    keep = torch.ones(2, 1, size, size, dtype=torch.float64)
    keep[0, :, size // 8 : -size // 8, size // 8 : -size // 8] = 0  # one hole of 3/4 the side
    keep[1, :, :, size // 3 :] = 0  # two thirds of the image
    return x.clamp(0, 1).to(device), keep.to(device)


def _direct_solution(img: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROAD's system for one (3, S, S) image solved by scipy's sparse direct solver:
    ``(removed pixel indices, (removed, 3) values)``."""
    from scipy.sparse import lil_matrix
    from scipy.sparse.linalg import spsolve

    size = kept.shape[-1]
    removed = np.flatnonzero(~kept.ravel())
    index = {p: k for k, p in enumerate(removed)}
    a = lil_matrix((len(removed), len(removed)))
    b = np.zeros((len(removed), 3))
    for k, p in enumerate(removed):
        r, c = divmod(int(p), size)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr, dc) == (0, 0) or not (0 <= rr < size and 0 <= cc < size):
                    continue
                wgt = 1 / 12 if dr and dc else 1 / 6
                a[k, k] += wgt
                q = rr * size + cc
                if q in index:
                    a[k, index[q]] -= wgt
                else:
                    b[k] += wgt * img[:, rr, cc]
    return removed, spsolve(a.tocsc(), b)


def _assert_direct_solution(x: torch.Tensor, keep: torch.Tensor, ours: torch.Tensor) -> None:
    for i in range(len(x)):
        img, kept = x[i].cpu().numpy(), keep[i, 0].cpu().numpy() > 0
        removed, solution = _direct_solution(img, kept)
        got = ours[i].cpu().numpy().reshape(3, -1)[:, removed].T
        assert np.abs(got - solution).max() < 1e-4, x.shape


def test_large_holes_converge_in_few_steps_at_any_size(device) -> None:
    # from 64 px on: plain conjugate gradients need steps in proportion to the hole's width
    # (hundreds at 128 px, and stopping on the residual left errors of 0.2); the multigrid
    # preconditioner keeps the count small and the error far below ROAD's noise
    for size in (64, 128):
        x, keep = _smooth_image_and_large_hole(size, device)
        ours = NoisyLinearImputation(noise=0.0, tol=1e-9, max_iter=25).fill(x, keep)
        _assert_direct_solution(x, keep, ours)


def test_scattered_removals_converge_in_few_steps(device) -> None:
    # gradient methods' maps are noisy per pixel, so ROAD removes scattered pixels that join into
    # ragged clusters; the coarse grids must treat a block with any kept pixel as kept (with "any
    # child removed" coarsening this took 3-7x the steps: 48 instead of 7 at 224 px)
    size = 96
    gen = torch.Generator().manual_seed(1)
    x, _ = _smooth_image_and_large_hole(size, device)
    smooth = nn.functional.interpolate(torch.rand(2, 1, 6, 6, generator=gen), size=(size, size),
                                       mode="bilinear")
    amap = smooth + 0.5 * torch.rand(2, 1, size, size, generator=gen)
    keep = torch.ones(2, 1, size, size, dtype=torch.float64)
    for i, fraction in enumerate((0.5, 0.2)):
        cut = amap[i].flatten().quantile(fraction)
        keep[i, 0] = (amap[i, 0] < cut).double()  # the top 50 % and 80 % removed
    keep = keep.to(device)
    ours = NoisyLinearImputation(noise=0.0, tol=1e-9, max_iter=12).fill(x, keep)
    _assert_direct_solution(x, keep, ours)


def test_each_image_of_a_batch_stops_on_its_own(device) -> None:
    # a one-pixel hole converges at once, a large hole later: the batch's values equal each
    # image solved alone (the early image is not iterated further with the batch)
    x, keep = _smooth_image_and_large_hole(48, device)
    keep[1] = 1
    keep[1, :, 20, 20] = 0
    fill = NoisyLinearImputation(noise=0.0, tol=1e-7)
    both = fill.fill(x, keep)
    for i in range(2):
        alone = fill.fill(x[i : i + 1], keep[i : i + 1])
        torch.testing.assert_close(both[i : i + 1], alone, atol=1e-12, rtol=0)


def test_small_holes_are_solved_on_a_window_with_the_same_solution(device) -> None:
    # the system couples removed pixels and their kept neighbours only, so the one-pixel-margin
    # window the solve runs on for small holes (Occlusion patches) gives the full image's values,
    # also for patches touching the image border
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 40, 40, generator=gen, dtype=torch.float64).to(device)
    removed = torch.zeros(4, 1, 40, 40, dtype=torch.bool, device=device)
    removed[0, :, 10:16, 12:18] = True  # interior
    removed[1, :, 0:6, 0:6] = True  # corner
    removed[2, :, 34:40, 20:23] = True  # bottom edge
    removed[3, :, 5:7, 30:40] = True  # right edge, flat
    fill = NoisyLinearImputation(noise=0.0, tol=1e-12, max_iter=2000)
    seen = []
    solve = fill._solve

    def spy(images, free):
        seen.append(tuple(images.shape[-2:]))
        return solve(images, free)

    fill._solve = spy
    local = fill._impute(x, removed)
    assert seen and seen[0][0] < 40  # solved on a window
    whole = solve(x, removed.to(x.dtype))
    torch.testing.assert_close(local, whole, atol=1e-10, rtol=0)


def test_inputs_outside_the_unit_range_or_not_images_are_refused_in_one_line() -> None:
    # its imputation is clamped to [0, 1]: standardised inputs were silently imputed as 1.0
    road = NoisyLinearImputation()
    keep = torch.ones(1, 1, 8, 8)
    keep[..., 2:4, 2:4] = 0
    with pytest.raises(ValueError, match=r"NoisyLinearImputation works in pixel space \(its "
                                         r"imputed pixels are clamped to \[0, 1\]"):
        road.fill(torch.full((1, 1, 8, 8), 5.0), keep)
    with pytest.raises(ValueError, match=r"NoisyLinearImputation works on images of shape "
                                         r"\(N, C, H, W\), but inputs has shape \(3, 6\)"):
        road.reference(torch.rand(3, 6))
