"""The oracles solve their linear problems: compared with brute force and scipy's linprog."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import Bounds, NonlinearConstraint, linprog, minimize

from captum_cf.robust import lmo_l1, lmo_l2, lmo_linf, lmo_topk

G = torch.Generator()


@pytest.fixture(autouse=True)
def _reseed() -> None:
    G.manual_seed(3)  # every test draws the same numbers, whatever ran before


def _on(device: torch.device, lmo, grad: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``lmo`` run on ``device`` (every tensor argument moved there), its result on the CPU."""
    kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    s = lmo(grad.to(device), *args, **kwargs)
    assert s.device == device
    return s.cpu()


def _grads(n: int = 4, d: int = 6) -> torch.Tensor:
    return torch.randn(n, d, generator=G, dtype=torch.float64)


def _box(n: int = 4, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, d, generator=G, dtype=torch.float64)
    x[:, 0] = 0.0  # a coordinate with no room downwards
    x[:, 1] = 1.0  # and one with no room upwards
    return -x, 1 - x


def _lp_max(g: np.ndarray, eps: float, linf: float, lo: np.ndarray, hi: np.ndarray,
            l1: bool) -> float:
    """max g.s  s.t. |s|_1 <= eps (if l1), |s_i| <= linf, lo <= s <= hi, via s = p - q."""
    d = g.size
    c = np.concatenate([-g, g])
    a_ub = np.ones((1, 2 * d)) if l1 else None
    b_ub = np.array([eps]) if l1 else None
    bounds = [(0, min(linf, h)) for h in hi] + [(0, min(linf, -v)) for v in lo]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert res.status == 0
    return -res.fun


@pytest.mark.parametrize("bounded", [False, True])
def test_linf_matches_linprog(bounded: bool, device) -> None:
    g = _grads()
    lo, hi = _box() if bounded else (torch.full_like(g, -9.0), torch.full_like(g, 9.0))
    s = _on(device, lmo_linf, g, 0.3, lower=lo if bounded else None,
            upper=hi if bounded else None)
    for i in range(g.shape[0]):
        best = _lp_max(g[i].numpy(), 0.0, 0.3, lo[i].numpy(), hi[i].numpy(), l1=False)
        assert float(g[i] @ s[i]) == pytest.approx(best, abs=1e-9)
    assert s.abs().max() <= 0.3 + 1e-12 and (s >= lo - 1e-12).all() and (s <= hi + 1e-12).all()


def test_linf_vertices_brute_force(device) -> None:
    g = _grads(2, 5)
    s = _on(device, lmo_linf, g, 0.5)
    for i in range(2):
        best = max(float(g[i] @ torch.tensor(v, dtype=torch.float64))
                   for v in itertools.product([-0.5, 0.5], repeat=5))
        assert float(g[i] @ s[i]) == pytest.approx(best)


@pytest.mark.parametrize("bounded", [False, True])
def test_l1_matches_linprog(bounded: bool, device) -> None:
    g = _grads()
    lo, hi = _box() if bounded else (torch.full_like(g, -9.0), torch.full_like(g, 9.0))
    eps = 0.8
    s = _on(device, lmo_l1, g, eps, lower=lo if bounded else None,
            upper=hi if bounded else None)
    for i in range(g.shape[0]):
        best = _lp_max(g[i].numpy(), eps, 9.0, lo[i].numpy(), hi[i].numpy(), l1=True)
        assert float(g[i] @ s[i]) == pytest.approx(best, abs=1e-9)
    assert (s.abs().sum(1) <= eps + 1e-12).all()
    if not bounded:  # a vertex of the L1 ball: one non-zero of size eps
        assert ((s != 0).sum(1) == 1).all()
        assert torch.allclose(s.abs().sum(1), torch.full((4,), eps, dtype=s.dtype))


@pytest.mark.parametrize("bounded", [False, True])
def test_l2_matches_scipy(bounded: bool, device) -> None:
    g = _grads()
    lo, hi = _box() if bounded else (torch.full_like(g, -9.0), torch.full_like(g, 9.0))
    eps = 0.9
    s = _on(device, lmo_l2, g, eps, lower=lo if bounded else None,
            upper=hi if bounded else None)
    assert (s.norm(dim=1) <= eps + 1e-9).all()
    for i in range(g.shape[0]):
        gi = g[i].numpy()
        cons = NonlinearConstraint(lambda v: v @ v, -np.inf, eps**2, jac=lambda v: 2 * v)
        res = minimize(lambda v, gi=gi: -gi @ v, np.zeros(6), jac=lambda v, gi=gi: -gi,
                       method="trust-constr",
                       hess=lambda v: np.zeros((6, 6)), constraints=[cons],
                       bounds=Bounds(lo[i].numpy(), hi[i].numpy()),
                       options={"gtol": 1e-10, "xtol": 1e-12, "maxiter": 3000})
        ours = float(g[i] @ s[i])
        assert ours == pytest.approx(-res.fun, abs=1e-5)
        assert ours >= -res.fun - 1e-6  # never worse than the numerical optimum
    if not bounded:
        assert torch.allclose(s, eps * g / g.norm(dim=1, keepdim=True))


def test_l2_box_corner_inside_ball(device) -> None:
    g = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    lo = torch.tensor([[-0.1, -0.2, -0.3]], dtype=torch.float64)
    hi = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    expected = torch.tensor([[0.1, -0.2, 0.0]], dtype=torch.float64)  # the corner is inside
    assert torch.allclose(_on(device, lmo_l2, g, 5.0, lower=lo, upper=hi), expected)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_topk_is_exact_lmo_of_polytope(k: int, device) -> None:
    """Unbounded: matches linprog over {|s|_1 <= eps, |s|_inf <= eps/k}; exactly k non-zeros."""
    g = _grads()
    eps = 1.5
    s = _on(device, lmo_topk, g, eps, k)
    assert ((s != 0).sum(1) == k).all()
    assert torch.allclose(s.abs().sum(1), torch.full((4,), eps, dtype=s.dtype))
    for i in range(g.shape[0]):
        best = _lp_max(g[i].numpy(), eps, eps / k, -np.full(6, 9.0), np.full(6, 9.0), l1=True)
        assert float(g[i] @ s[i]) == pytest.approx(best, abs=1e-9)
    keep = g.abs().topk(k, dim=1).indices
    assert torch.equal(s.gather(1, keep), g.gather(1, keep).sign() * eps / k)


def test_topk_zero_gradient_still_k_nonzeros(device) -> None:
    s = _on(device, lmo_topk, torch.zeros(1, 5), 2.0, 3)
    assert int((s != 0).sum()) == 3 and float(s.abs().sum()) == pytest.approx(2.0)


def test_topk_bounded_brute_force_over_k_sparse_points(device) -> None:
    """With bounds: optimal over every k-sparse point with entries in {-dn, 0, up}."""
    g = _grads(3, 5)
    lo, hi = _box(3, 5)
    eps, k = 1.0, 2
    s = _on(device, lmo_topk, g, eps, k, lower=lo, upper=hi)
    assert ((s != 0).sum(1) <= k).all() and (s >= lo - 1e-12).all() and (s <= hi + 1e-12).all()
    assert (s.abs() <= eps / k + 1e-12).all()
    for i in range(3):
        up, dn = hi[i].clamp(max=eps / k), (-lo[i]).clamp(max=eps / k)
        best = -1.0
        for support in itertools.combinations(range(5), k):
            choices = [(-float(dn[j]), 0.0, float(up[j])) for j in support]
            for vals in itertools.product(*choices):
                v = torch.zeros(5, dtype=torch.float64)
                v[list(support)] = torch.tensor(vals, dtype=torch.float64)
                best = max(best, float(g[i] @ v))
        assert float(g[i] @ s[i]) == pytest.approx(best, abs=1e-12)


def test_topk_pixel_groups_selects_whole_pixels_by_channel_sum(device) -> None:
    g = torch.randn(2, 3, 4, 4, generator=G, dtype=torch.float64)
    k, eps = 3, 1.2
    s = _on(device, lmo_topk, g, eps, k, pixel_groups=True)
    changed = (s != 0).any(1)
    assert (changed.sum((1, 2)) == k).all()
    assert torch.equal((s != 0).all(1), changed)  # every channel of a chosen pixel moves
    score = g.abs().sum(1).flatten(1)
    assert torch.equal(changed.flatten(1).nonzero()[:, 1].view(2, k).sort(1).values,
                       score.topk(k, dim=1).indices.sort(1).values)
    assert torch.allclose(s[s != 0].abs(), torch.full_like(s[s != 0], eps / k))
    # exact LMO of {sum_p max_c |s_pc| <= eps, |s|_inf <= eps/k}: value = eps/k * top-k channel sums
    best = eps / k * score.topk(k, dim=1).values.sum(1)
    assert torch.allclose((g * s).flatten(1).sum(1), best)


def test_topk_pixel_groups_equals_plain_topk_for_one_channel(device) -> None:
    g = torch.randn(2, 1, 4, 4, generator=G)
    assert torch.equal(
        _on(device, lmo_topk, g, 1.0, 4, pixel_groups=True), _on(device, lmo_topk, g, 1.0, 4)
    )


def test_lmos_are_batched_independently(device) -> None:
    g = _grads()
    for fn in (lmo_linf, lmo_l2, lmo_l1):
        assert torch.allclose(_on(device, fn, g, 0.5)[1:2], _on(device, fn, g[1:2], 0.5))
    assert torch.equal(_on(device, lmo_topk, g, 0.5, 2)[2:3], _on(device, lmo_topk, g[2:3], 0.5, 2))


def test_bad_input() -> None:
    g = torch.randn(2, 4)
    with pytest.raises(ValueError, match="eps"):
        lmo_linf(g, 0.0)
    with pytest.raises(ValueError, match="eps"):
        lmo_l2(g, float("inf"))
    with pytest.raises(TypeError, match="grad"):
        lmo_l1([1.0, 2.0], 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        lmo_l1(torch.randn(4), 1.0)
    with pytest.raises(ValueError, match="k must be"):
        lmo_topk(g, 1.0, 5)
    with pytest.raises(ValueError, match="k must be"):
        lmo_topk(g, 1.0, 0)
    with pytest.raises(ValueError, match="pixel_groups"):
        lmo_topk(g, 1.0, 1, pixel_groups=True)
    with pytest.raises(ValueError, match="upper must be >= 0"):
        lmo_linf(g, 1.0, upper=-torch.ones(2, 4))
    with pytest.raises(ValueError, match="lower of shape"):
        lmo_linf(g, 1.0, lower=-torch.ones(3, 4))


@pytest.mark.parametrize("lmo", [lmo_l2, lmo_linf, lmo_l1, lambda g, eps: lmo_topk(g, eps, k=1)])
def test_empty_and_nan_gradients_are_rejected(lmo) -> None:
    with pytest.raises(ValueError, match="grad is empty"):
        lmo(torch.zeros(0, 4), 1.0)
    g = torch.tensor([[1.0, float("nan"), 0.5]])
    with pytest.raises(ValueError, match="grad contains NaN"):
        lmo(g, 1.0)
