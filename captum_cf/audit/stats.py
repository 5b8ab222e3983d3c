"""Statistics behind the audit's judgement: paired tests, effect sizes, intervals, the verdict.

The audit explains the same images with every baseline, so two baselines are compared image by
image: a Wilcoxon signed-rank test on the paired per-image values, Holm-corrected over the
comparisons made for one method and metric, with the matched-pairs rank-biserial correlation as
effect size. Intervals of the mean are Student-t intervals, clipped to a bounded metric's
range (Wilson's for proportions). Ties share the best place. Maps that are constant (LIME's
all-zero map on a model it cannot explain) carry no signal and are kept out of the verdict.

Pure functions on tensors, numbers and dictionaries; nothing here runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch
from scipy import stats as _scipy_stats
from torch import Tensor

__all__ = [
    "Comparison",
    "Consistency",
    "MethodVerdict",
    "MetricVerdict",
    "best_set",
    "bootstrap_ci",
    "holm",
    "images_needed",
    "kendall_tau",
    "no_signal",
    "rank_biserial",
    "ranking_consistency",
    "t_ci",
    "t_quantile",
    "verdict",
    "wilcoxon",
    "wilson_ci",
]


#: paired samples up to this size get an exact p-value (see :func:`wilcoxon`)
_EXACT_UP_TO = 50


def _as_array(values: Any, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _paired(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_array(x, "x"), _as_array(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"x and y must be paired (same length), got {a.size} and {b.size}")
    return a, b


def wilcoxon(x: Any, y: Any) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired samples (zero differences dropped).

    Up to 50 non-zero differences the p-value is exact, also with tied differences: the null
    distribution of the positive rank sum (averaged ranks) is enumerated by dynamic programming
    over the :math:`2^n` sign flips. Beyond 50 it is scipy's normal approximation with tie
    correction.

    Args:
        x, y (sequence or Tensor): paired values, shape (n,).

    Returns:
        tuple: ``(statistic, p_value)``; the statistic is the smaller of the positive and the
        negative rank sums (as scipy reports it). When every difference is zero there is
        nothing to test: ``(0.0, 1.0)``.

    Example:
        >>> wilcoxon([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 12])
        (6.0, 0.4375)
    """
    a, b = _paired(x, y)
    d = a - b
    d = d[d != 0]
    if d.size == 0:
        return 0.0, 1.0
    ranks = _scipy_stats.rankdata(np.abs(d))
    plus = float(ranks[d > 0].sum())
    statistic = min(plus, float(ranks.sum()) - plus)
    if d.size > _EXACT_UP_TO:
        res = _scipy_stats.wilcoxon(d, zero_method="wilcox", method="asymptotic")
        return statistic, float(res.pvalue)
    doubled = np.rint(2 * ranks).astype(np.int64)  # averaged ranks are multiples of 1/2
    prob = np.zeros(int(doubled.sum()) + 1)
    prob[0] = 1.0
    for r in doubled:  # each rank joins the positive sum with probability 1/2
        shifted = np.zeros_like(prob)
        shifted[r:] = prob[:-r]
        prob = 0.5 * (prob + shifted)
    observed = int(np.rint(2 * statistic))
    p = 2 * prob[: observed + 1].sum()
    return statistic, float(min(1.0, p))


def images_needed(comparisons: int, alpha: float = 0.05) -> int:
    """The fewest paired images with which :func:`verdict` can find a difference at all.

    With ``n`` images, the smallest two-sided p-value of the exact signed-rank test is
    ``2 / 2**n`` (every difference of one sign); Holm's correction over ``comparisons`` tests
    multiplies the smallest one by ``comparisons``. Below the returned ``n`` no data, however
    clear, can be significant at ``alpha``.

    Args:
        comparisons (int): tests of the leader against the other baselines, >= 1.
        alpha (float): significance level, in (0, 1).

    Returns:
        int: the smallest ``n`` with ``comparisons * 2 / 2**n < alpha``.

    Example:
        >>> images_needed(1), images_needed(4)
        (6, 8)
    """
    if isinstance(comparisons, bool) or not isinstance(comparisons, int) or comparisons < 1:
        raise ValueError(f"comparisons must be an int >= 1, got {comparisons!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    n = 1
    while comparisons * 2.0 ** (1 - n) >= alpha:
        n += 1
    return n


def rank_biserial(x: Any, y: Any) -> float:
    r"""Matched-pairs rank-biserial correlation of ``x - y`` (Kerby 2014), in [-1, 1].

    With :math:`R^+` and :math:`R^-` the sums of the ranks of :math:`|x_i - y_i|` over the
    positive and the negative differences (zeros dropped, ties averaged):
    :math:`r = (R^+ - R^-) / (R^+ + R^-)`. +1: ``x`` larger on every pair; 0: no tendency.

    Example:
        >>> round(rank_biserial([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 12]), 4)  # (15 - 6) / 21
        0.4286
    """
    a, b = _paired(x, y)
    d = a - b
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = _scipy_stats.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    p = [float(v) for v in p_values]
    if any(not 0 <= v <= 1 for v in p):
        raise ValueError(f"p_values must lie in [0, 1], got {p}")
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for k, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return [round(v, 15) for v in adjusted]


def kendall_tau(a: Any, b: Any) -> float:
    """Kendall's tau-b between two score vectors over the same items (NaN if one is constant).

    Example:
        >>> round(kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]), 4)  # 5 concordant, 1 discordant
        0.6667
    """
    x, y = _paired(a, b)
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(_scipy_stats.kendalltau(x, y).statistic)


@dataclass(frozen=True)
class Consistency:
    """Agreement of the baselines' rankings across removals.

    Attributes:
        pairs (dict): ``(removal_a, removal_b) -> tau`` over the baselines both scored.
        mean_tau (float): the mean over pairs with a defined tau (NaN if none).
    """

    pairs: dict[tuple[str, str], float]
    mean_tau: float


def ranking_consistency(scores: Mapping[str, Mapping[str, float]]) -> Consistency:
    """Kendall's tau of the baselines' scores between every pair of removals.

    Args:
        scores (mapping): ``removal -> {baseline: score}`` for one method and metric (e.g. the
            mean SRG of each baseline under each removal). The direction of the metric does
            not matter: both rankings use the same one.

    Returns:
        Consistency: tau per pair of removals and their mean; 1 = every removal ranks the
        baselines alike, -1 = reversed.

    Example:
        >>> c = ranking_consistency({"zero": {"a": 1, "b": 2, "c": 3},
        ...                          "road": {"a": 1, "b": 3, "c": 2}})
        >>> round(c.pairs[("zero", "road")], 4)
        0.3333
    """
    pairs: dict[tuple[str, str], float] = {}
    for ra, rb in combinations(list(scores), 2):
        common = [b for b in scores[ra] if b in scores[rb]]
        if len(common) < 2:
            pairs[(ra, rb)] = float("nan")
            continue
        pairs[(ra, rb)] = kendall_tau([scores[ra][b] for b in common],
                                      [scores[rb][b] for b in common])
    defined = [t for t in pairs.values() if not math.isnan(t)]
    return Consistency(pairs, float(np.mean(defined)) if defined else float("nan"))


def t_quantile(n: int, level: float = 0.95) -> float:
    """The two-sided Student-t quantile of ``n`` values (``n - 1`` degrees of freedom): the
    factor of the standard error in :func:`t_ci`; NaN for ``n < 2``."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return math.nan if n < 2 else float(_scipy_stats.t.ppf((1 + level) / 2, n - 1))


def t_ci(
    values: Any,
    level: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> tuple[float, float]:
    """Student-t interval of the mean, clipped to the metric's range: the audit's interval.

    ``mean +- t(level, n - 1) * sd / sqrt(n)``. At the few images an audit often has it holds
    the true mean about as often as it says (on Beta(2, 2) values, 1000 draws: 95 % at n = 2,
    94 % at n = 5, 95 % at n = 8), where the percentile bootstrap (:func:`bootstrap_ci`) held
    it in 50 %, 85 % and 90 %; a skewed metric (Beta(0.5, 5)) leaves both short (t 85-92 %).
    Clipping to ``bounds`` only drops impossible values (a pointing game of 0.94 gets no upper
    end of 1.07), so the coverage is unchanged. Deterministic: no resampling.

    Args:
        values (sequence or Tensor): per-image values, shape (n,), n >= 2.
        level (float): coverage in (0, 1).
        bounds (tuple, optional): the metric's range; values outside it are an error. None for
            an unbounded metric.

    Returns:
        tuple: ``(low, high)``.

    Example:
        >>> low, high = t_ci([0.2, 0.4, 0.6])
        >>> round(low, 4), round(high, 4)
        (0.0, 0.8968)
    """
    x = _as_array(values, "values")
    if x.size < 2:
        raise ValueError(f"an interval needs at least 2 values, got {x.size}")
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(f"values must lie in {list(bounds)}, got [{x.min()}, {x.max()}]")
    half = t_quantile(x.size, level) * float(x.std(ddof=1)) / math.sqrt(x.size)
    low, high = float(x.mean()) - half, float(x.mean()) + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return low, high


def bootstrap_ci(
    values: Any,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; inside ``bounds`` whenever the values are.

    Not the audit's interval any more (:func:`t_ci` is): with few values it is too narrow (a
    "95 %" interval of 2 values held the true mean in about half of the draws, of 8 in 90 %).

    A mean of values in [lo, hi] lies in [lo, hi], so every resampled mean does and so do its
    percentiles: unlike ``mean +- 1.96 se`` the interval never leaves the metric's range (a
    pointing game of 0.94 no longer gets an upper end of 1.07).

    Args:
        values (sequence or Tensor): per-image values, shape (n,).
        level (float): coverage in (0, 1).
        n_boot (int): resamples.
        seed (int): seed of the resampling (numpy ``default_rng``; global state untouched).
        bounds (tuple, optional): the metric's range; values outside it are an error. None for
            an unbounded metric.

    Returns:
        tuple: ``(low, high)``.

    Example:
        >>> low, high = bootstrap_ci([1.0] * 19 + [0.0])
        >>> 0.8 <= low < 0.95 < high <= 1.0
        True
    """
    x = _as_array(values, "values")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(f"values must lie in {list(bounds)}, got [{x.min()}, {x.max()}]")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    if bounds is not None:
        low, high = np.clip([low, high], bounds[0], bounds[1])
    return float(low), float(high)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (pointing game hits), always inside [0, 1].

    Example:
        >>> tuple(round(v, 4) for v in wilson_ci(10, 10))
        (0.7225, 1.0)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an int in [0, n={n}], got {successes!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    z = float(_scipy_stats.norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def best_set(
    means: Mapping[str, float], higher_is_better: bool, atol: float = 1e-12
) -> list[str]:
    """Every name whose value equals the best one (within ``atol``): ties share the star.

    Example:
        >>> best_set({"zero": 1.0, "blur": 1.0, "road": 0.9}, higher_is_better=True)
        ['zero', 'blur']
    """
    if not means:
        return []
    values = {k: float(v) for k, v in means.items() if not math.isnan(float(v))}
    if not values:
        return []
    top = max(values.values()) if higher_is_better else min(values.values())
    return [k for k, v in values.items() if abs(v - top) <= atol]


def no_signal(maps: Tensor, atol: float = 0.0) -> Tensor:
    """Which attribution maps carry no signal: constant (all zero included) or not finite.

    Args:
        maps (Tensor): attributions, shape (N, ...).
        atol (float): a map whose values span at most ``atol`` counts as constant.

    Returns:
        Tensor: bool, shape (N,), on the maps' device.

    Example:
        >>> no_signal(torch.stack([torch.zeros(4, 4), torch.eye(4), torch.full((4, 4), 0.3)]))
        tensor([ True, False,  True])
    """
    if not isinstance(maps, Tensor) or maps.dim() < 2 or maps.shape[0] == 0:
        raise ValueError("maps must be a tensor of shape (N, ...) with N >= 1")
    flat = maps.detach().flatten(1).double()
    finite = torch.isfinite(flat).all(dim=1)
    spread = flat.amax(dim=1) - flat.amin(dim=1)
    return ~finite | (spread <= atol)


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of the leading baseline with another, for one method and metric.

    Attributes:
        best (str): the leading baseline (best mean).
        other (str): the baseline compared with it.
        n (int): paired images.
        statistic (float): Wilcoxon signed-rank statistic.
        p_value (float): two-sided p-value.
        p_holm (float): Holm-adjusted over the comparisons of this method and metric.
        effect (float): rank-biserial correlation, oriented so that > 0 means ``best`` is
            better in the metric's direction.
        significant (bool): ``p_holm < alpha``.
    """

    best: str
    other: str
    n: int
    statistic: float
    p_value: float
    p_holm: float
    effect: float
    significant: bool


@dataclass(frozen=True)
class MetricVerdict:
    """The verdict for one method and one metric.

    Attributes:
        metric (str): the metric.
        higher_is_better (bool): its direction.
        n (int): paired images used (those finite under every baseline).
        means (dict): baseline -> mean value.
        top (list): baselines tied at the best mean.
        best (list): ``top`` plus every baseline not significantly worse than the leader.
        significant (bool): False when no baseline is significantly worse than the leader:
            "no significant difference".
        comparisons (list): the paired comparisons made (leader vs each other baseline).
        own_removal (str or None): the baseline that is the metric's own removal, if any.
        caveat (str or None): a warning when ``own_removal`` is among the best.
        sentence (str): the verdict in words.
        needed (int): the fewest images with which any comparison made here could be
            significant (:func:`images_needed`; 0 when there is nothing to compare).
    """

    metric: str
    higher_is_better: bool
    n: int
    means: dict[str, float]
    top: list[str]
    best: list[str]
    significant: bool
    comparisons: list[Comparison]
    own_removal: str | None
    caveat: str | None
    sentence: str
    needed: int = 0

    @property
    def too_few(self) -> bool:
        """True when ``n`` is below :attr:`needed`: no data could be significant."""
        return self.n < self.needed


@dataclass(frozen=True)
class MethodVerdict:
    """The verdict for one attribution method, over all metrics.

    Attributes:
        method (str): the method.
        metrics (dict): metric -> :class:`MetricVerdict`.
        excluded (list): baselines left out because their maps carry no signal.
        sentences (list): one line per metric, then one per excluded baseline.
    """

    method: str
    metrics: dict[str, MetricVerdict]
    excluded: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)


def verdict(
    values: Mapping[tuple[str, str, str], Any],
    higher_is_better: Mapping[str, bool],
    own_removal: Mapping[str, str] | None = None,
    no_signal_cells: Mapping[tuple[str, str], bool] | None = None,
    alpha: float = 0.05,
) -> dict[str, MethodVerdict]:
    """Per method, the baselines that are best with statistical support.

    For each method and metric: the baselines' per-image values are paired (images where any
    baseline's value is not finite are dropped for that metric); the leader is the baseline
    with the best mean (ties share the lead); the leader is compared with every other baseline
    by a two-sided Wilcoxon signed-rank test, Holm-corrected over those comparisons. The best
    baselines are the leaders and every baseline whose difference from the leader is not
    significant at ``alpha``; when that is all of them the verdict is "no significant
    difference". A baseline that is the metric's own removal (deletion's black, say) is flagged
    with a caveat when it is among the best: the metric favours it by construction.

    Args:
        values (mapping): ``(method, baseline, metric) -> per-image values`` (Tensor or
            sequence, shape (n,); the same images, in the same order, for every baseline of a
            method and metric).
        higher_is_better (mapping): metric -> direction; every metric in ``values`` needs one.
        own_removal (mapping, optional): metric -> the baseline name that the metric itself
            uses to remove pixels (e.g. ``{"deletion": "zero", "insertion": "blur"}``).
        no_signal_cells (mapping, optional): ``(method, baseline) -> True`` for cells whose maps
            carry no signal (see :func:`no_signal`); they are left out and listed.
        alpha (float): significance level after Holm's correction, in (0, 1).

    Returns:
        dict: method -> :class:`MethodVerdict`.

    Example:
        >>> v = verdict({("ig", "zero", "srg"): [0.1] * 8,
        ...              ("ig", "road", "srg"): [0.3, 0.4, 0.5, 0.3, 0.4, 0.5, 0.3, 0.4]},
        ...             {"srg": True})
        >>> v["ig"].metrics["srg"].best, v["ig"].metrics["srg"].significant
        (['road'], True)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    own_removal = dict(own_removal or {})
    no_signal_cells = dict(no_signal_cells or {})
    grouped: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for key, vals in values.items():
        if not (isinstance(key, tuple) and len(key) == 3):
            raise ValueError(f"values keys must be (method, baseline, metric), got {key!r}")
        method, baseline, metric = key
        if metric not in higher_is_better:
            raise ValueError(f"higher_is_better has no direction for metric {metric!r}")
        arr = vals.detach().cpu().double().numpy() if isinstance(vals, Tensor) else vals
        arr = np.asarray(arr, dtype=np.float64).reshape(-1)
        grouped.setdefault(method, {}).setdefault(metric, {})[baseline] = arr
    out = {}
    for method, metrics in grouped.items():
        excluded = sorted({b for m in metrics.values() for b in m
                           if no_signal_cells.get((method, b), False)})
        verdicts = {
            metric: _metric_verdict(
                method, metric, {b: v for b, v in cells.items() if b not in excluded},
                bool(higher_is_better[metric]), own_removal.get(metric), alpha,
            )
            for metric, cells in metrics.items()
        }
        sentences = [v.sentence for v in verdicts.values()]
        sentences += [f"{method} with {b}: the maps carry no signal (constant); left out."
                      for b in excluded]
        out[method] = MethodVerdict(method, verdicts, excluded, sentences)
    return out


def _metric_verdict(
    method: str,
    metric: str,
    cells: dict[str, np.ndarray],
    higher: bool,
    own: str | None,
    alpha: float,
) -> MetricVerdict:
    sizes = {b: v.size for b, v in cells.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{method}/{metric}: every baseline needs the same images (paired), "
                         f"got sizes {sizes}")
    names = list(cells)
    if names:
        finite = np.all([np.isfinite(cells[b]) for b in names], axis=0)
        cells = {b: cells[b][finite] for b in names}
    n = int(next(iter(cells.values())).size) if cells else 0
    means = {b: float(v.mean()) if v.size else float("nan") for b, v in cells.items()}
    top = best_set(means, higher)
    comparisons: list[Comparison] = []
    if n and len(top) < len(names):
        leader = top[0]
        others = [b for b in names if b not in top]
        raw = [wilcoxon(cells[leader], cells[b]) for b in others]
        adjusted = holm([p for _, p in raw])
        for b, (stat, p), p_adj in zip(others, raw, adjusted):
            good, bad = (cells[leader], cells[b]) if higher else (cells[b], cells[leader])
            effect = rank_biserial(good, bad)
            # two-sided test: a difference counts for the leader only in its favour (a baseline
            # below the leader's mean may still be better on most images)
            comparisons.append(Comparison(leader, b, n, stat, p, p_adj, effect,
                                          p_adj < alpha and effect > 0))
    beaten = [means[c.other] for c in comparisons if c.significant]
    # the best: the leader and the baselines not told apart from it whose mean is above every
    # beaten one's (a spread-out baseline below a beaten one is not "best")
    best = top + [c.other for c in comparisons if c.p_holm >= alpha
                  and all(_above(means[c.other], m, higher) for m in beaten)]
    significant = any(c.significant for c in comparisons)
    caveat = None
    # without a significant difference every baseline is "best": warn only when the metric's
    # own removal leads by its mean
    # (not when there is nothing to compare, or every baseline shares the lead)
    if own is not None and own in (best if significant else top) and len(top) < len(names):
        caveat = (f"{own} is the removal that {metric} itself uses, so {metric} favours it by "
                  f"construction")
    others = len(names) - len(top)
    needed = images_needed(others, alpha) if others and n else 0
    sentence = _sentence(method, metric, names, best, significant, comparisons, n, caveat,
                         needed, others, alpha)
    return MetricVerdict(metric, higher, n, means, top, best, significant, comparisons, own,
                         caveat, sentence, needed)


def _above(value: float, other: float, higher: bool) -> bool:
    return value > other if higher else value < other


def _at_most(p: float) -> str:
    """``p`` rounded up to 3 significant digits (a bound "p <= x" that holds)."""
    if not p > 0:
        return f"{p:.3g}"
    digits = 2 - math.floor(math.log10(p))
    return f"{math.ceil(p * 10**digits) / 10**digits:.3g}"


def _at_least(r: float) -> str:
    """``r`` rounded down to 2 decimals (a bound "r >= x" that holds)."""
    return f"{math.floor(r * 100 + 1e-9) / 100:.2f}"


def _sentence(
    method: str,
    metric: str,
    names: list[str],
    best: list[str],
    significant: bool,
    comparisons: list[Comparison],
    n: int,
    caveat: str | None,
    needed: int = 0,
    others: int = 0,
    alpha: float = 0.05,
) -> str:
    against = [c for c in comparisons if c.p_holm < alpha and c.effect < 0]
    if len(names) < 2:
        text = (f"{method}, {metric}: only {', '.join(names)} to compare." if names else
                f"{method}, {metric}: no cell with a signal to compare.")
    elif n == 0:
        text = (f"{method}, {metric}: no image has a finite value under every one of "
                f"{', '.join(names)}; nothing to compare.")
    elif not comparisons and len(best) == len(names):
        text = (f"{method}, {metric}: {', '.join(names)} have the same mean (n = {n}); no test "
                "was run between them.")
    elif not significant and n < needed:
        text = (f"{method}, {metric}: too few images to tell {', '.join(names)} apart: with n = "
                f"{n} not even a baseline that is better on every image would be significant "
                f"(Wilcoxon signed-rank, Holm over {others} comparisons: n >= "
                f"{needed} needed); audit more images.")
    elif not significant and against:
        text = (f"{method}, {metric}: no baseline is better than the others by both its mean "
                f"and its ranks (Wilcoxon signed-rank, Holm-corrected, n = {n}).")
    elif not significant:
        text = (f"{method}, {metric}: no significant difference between "
                f"{', '.join(names)} (Wilcoxon signed-rank, Holm-corrected, n = {n}).")
    else:
        beaten = [c for c in comparisons if c.significant]
        leader = beaten[0].best
        worst_p = max(c.p_holm for c in beaten)
        smallest = min(c.effect for c in beaten)
        ties = [b for b in best if b != leader]
        tied = f" ({', '.join(ties)} not told apart from it)" if ties else ""
        text = (f"{method}, {metric}: best {leader}{tied}; {leader} better than "
                f"{', '.join(c.other for c in beaten)} (Wilcoxon signed-rank, Holm-corrected "
                f"p <= {_at_most(worst_p)}, rank-biserial r >= {_at_least(smallest)}, n = {n}).")
    if against and n:
        leader = against[0].best
        text += (f" Mean and ranks disagree: {', '.join(c.other for c in against)} "
                 f"{'is' if len(against) == 1 else 'are'} better than {leader} on most images "
                 f"(Holm-corrected p <= {_at_most(max(c.p_holm for c in against))}) although "
                 f"{leader} leads by its mean: a few images decide the mean, read the per-image "
                 "values.")
    return text if caveat is None else f"{text} Caveat: {caveat}."
