"""captum_cf.audit.stats: hand-computed tests, intervals in range, ties, no signal, the verdict."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from captum_cf.audit.stats import (
    best_set,
    bootstrap_ci,
    holm,
    images_needed,
    kendall_tau,
    no_signal,
    rank_biserial,
    ranking_consistency,
    t_ci,
    verdict,
    wilcoxon,
    wilson_ci,
)


def _average_ranks(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [sum(i + 1 for i, o in enumerate(ordered) if o == v) / ordered.count(v)
            for v in values]


def _exact_wilcoxon_p(d: list[float]) -> float:
    """Two-sided p by enumerating all 2^n sign flips of the (averaged) ranks; no zeros."""
    r = _average_ranks([abs(x) for x in d])
    observed = sum(ri for ri, x in zip(r, d) if x > 0)
    stat = min(observed, sum(r) - observed)
    count = sum(
        1 for signs in itertools.product([0, 1], repeat=len(r))
        if sum(ri for ri, s in zip(r, signs) if s) <= stat + 1e-9
    )
    return min(1.0, 2 * count / 2 ** len(r))


def test_wilcoxon_matches_exact_enumeration_and_scipy(device) -> None:
    x = [1.5, 2.0, 3.25, 4.0, 5.0, 6.0, 0.5]
    y = [0.0, 0.1, 0.0, 0.3, 0.0, 12.0, 0.0]
    d = [a - b for a, b in zip(x, y)]
    stat, p = wilcoxon(x, y)
    ranks = sorted(abs(v) for v in d)
    assert stat == ranks.index(6.0) + 1  # the only negative difference has rank 7
    assert p == pytest.approx(_exact_wilcoxon_p(d), abs=1e-12)
    assert p == pytest.approx(scipy_stats.wilcoxon(x, y, method="exact").pvalue, abs=1e-12)
    assert wilcoxon(torch.tensor(x).to(device), torch.tensor(y).to(device)) == (stat, p)


def test_wilcoxon_is_exact_with_ties_and_zeros() -> None:
    # d = 1, -1, 1, 2, -2, 3, 0 (dropped), 1: |d| ranks 2.5 (four 1s), 5.5 (two 2s), 7
    x = [1.0, 0.0, 1.0, 2.0, 0.0, 3.0, 5.0, 1.0]
    y = [0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 5.0, 0.0]
    d = [a - b for a, b in zip(x, y) if a != b]
    stat, p = wilcoxon(x, y)
    assert stat == 2.5 + 5.5  # the negative ranks: one of the 1s and one of the 2s
    assert p == pytest.approx(_exact_wilcoxon_p(d), abs=1e-12)


def test_wilcoxon_of_identical_samples_is_not_significant() -> None:
    assert wilcoxon([0.2, 0.4, 0.4], [0.2, 0.4, 0.4]) == (0.0, 1.0)
    with pytest.raises(ValueError, match="paired"):
        wilcoxon([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon([1, float("nan")], [1, 2])


def test_rank_biserial_hand_computed() -> None:
    # differences 1, 2, 3, 4, 5, -6: R+ = 15, R- = 6
    assert rank_biserial([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 12]) == pytest.approx(9 / 21)
    # zeros dropped, ties averaged: d = 0, 2, -2, 3 -> ranks 1.5, 1.5, 3
    assert rank_biserial([5, 2, 0, 3], [5, 0, 2, 0]) == pytest.approx((1.5 + 3 - 1.5) / 6)
    assert rank_biserial([1, 2], [0, 1]) == 1.0
    assert rank_biserial([1, 2], [1, 2]) == 0.0


def test_holm_hand_computed() -> None:
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5, 0.001]) == [0.5, 0.002]
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []
    with pytest.raises(ValueError, match="p_values"):
        holm([1.5])


def test_kendall_tau_and_ranking_consistency() -> None:
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    c = ranking_consistency({
        "zero": {"a": 0.1, "b": 0.2, "c": 0.3},
        "blur": {"a": 0.1, "b": 0.2, "c": 0.3},
        "road": {"c": 0.1, "b": 0.2, "a": 0.3},
    })
    assert c.pairs[("zero", "blur")] == pytest.approx(1.0)
    assert c.pairs[("zero", "road")] == pytest.approx(-1.0)
    assert c.mean_tau == pytest.approx(-1 / 3)


def test_bootstrap_interval_stays_in_range_and_covers_the_mean() -> None:
    hits = [1.0] * 47 + [0.0] * 3  # a pointing game of 0.94: mean +- 1.96 se would pass 1
    low, high = bootstrap_ci(hits)
    assert 0.85 < low < 0.94 < high <= 1.0
    assert bootstrap_ci(hits) == (low, high)  # seeded
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    ssim = np.clip(np.linspace(0.95, 1.0, 30), 0, 1)
    lo, hi = bootstrap_ci(ssim)
    assert lo <= ssim.mean() <= hi <= 1.0
    with pytest.raises(ValueError, match="lie in"):
        bootstrap_ci([0.5, 1.2])
    low_u, high_u = bootstrap_ci([-3.0, 5.0, 2.0], bounds=None)
    assert -3.0 <= low_u < high_u <= 5.0


def test_t_interval_is_scipys_clipped_to_the_range_and_covers_at_few_images() -> None:
    x = np.array([0.31, 0.52, 0.47, 0.90, 0.12])
    want = scipy_stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    assert t_ci(x, bounds=None) == pytest.approx(want, rel=1e-12)
    assert t_ci(x, level=0.9, bounds=None) == pytest.approx(
        scipy_stats.t.interval(0.9, x.size - 1, loc=x.mean(), scale=scipy_stats.sem(x)))
    low, high = t_ci([1.0] * 47 + [0.0] * 3)  # 0.94: the unclipped upper end passes 1
    assert 0.85 < low < 0.94 < high == 1.0
    assert t_ci([0.4] * 6) == (pytest.approx(0.4), pytest.approx(0.4))
    with pytest.raises(ValueError, match="lie in"):
        t_ci([0.5, 1.2])
    with pytest.raises(ValueError, match="at least 2 values"):
        t_ci([0.5])
    # what the audit's interval is for: with 3 or 8 images it holds the true mean about as
    # often as it says (the percentile bootstrap it replaced: about 76 % and 90 % here)
    rng = np.random.default_rng(0)
    for n, floor in ((3, 0.91), (8, 0.93)):
        draws = rng.beta(2, 2, size=(600, n))
        held = np.mean([lo <= 0.5 <= hi for lo, hi in map(t_ci, draws)])
        boot = np.mean([lo <= 0.5 <= hi for lo, hi in (bootstrap_ci(d) for d in draws[:200])])
        assert held >= floor and boot < floor, (n, held, boot)


def test_wilson_interval_known_values() -> None:
    assert wilson_ci(9, 10) == pytest.approx((0.5958, 0.9821), abs=1e-4)
    assert wilson_ci(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_ci(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    with pytest.raises(ValueError, match="successes"):
        wilson_ci(11, 10)
    with pytest.raises(ValueError, match="n must"):
        wilson_ci(0, 0)


def test_ties_share_the_star() -> None:
    pg = {f"b{i}": 1.0 for i in range(9)} | {"zero": 0.8}
    assert best_set(pg, higher_is_better=True) == [f"b{i}" for i in range(9)]
    assert best_set({"a": 0.2, "b": 0.1, "c": 0.1}, higher_is_better=False) == ["b", "c"]
    assert best_set({}, True) == []


def test_no_signal_flags_constant_and_non_finite_maps(device) -> None:
    maps = torch.zeros(4, 3, 8, 8)
    maps[1, 0, 2, 2] = 1e-3
    maps[2] = 0.7
    maps[3, 1, 1, 1] = float("nan")
    maps = maps.to(device)
    assert no_signal(maps).device == maps.device
    assert no_signal(maps).tolist() == [True, False, True, True]
    assert no_signal(maps, atol=1e-2).tolist() == [True, True, True, True]


def _values(device: torch.device | str = "cpu") -> dict:
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(12, generator=gen)
    noise = 0.01 * torch.rand(12, generator=gen)
    values = {
        # SRG (higher is better): road clearly best
        ("ig", "road", "srg"): base + 0.3,
        ("ig", "zero", "srg"): base + noise,
        ("ig", "blur", "srg"): base,
        # deletion (lower is better): zero is deletion's own removal and wins
        ("ig", "road", "deletion"): base + 0.2,
        ("ig", "zero", "deletion"): base,
        ("ig", "blur", "deletion"): base + 0.1,
        # pointing game: indistinguishable
        ("ig", "road", "pointing"): torch.tensor([1.0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1]),
        ("ig", "zero", "pointing"): torch.tensor([1.0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1]),
        ("ig", "blur", "pointing"): torch.tensor([1.0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1]),
        # lime: the zero cell is degenerate
        ("lime", "zero", "srg"): torch.zeros(12),
        ("lime", "road", "srg"): base,
        ("lime", "blur", "srg"): base,
    }
    return {k: v.to(device) for k, v in values.items()}


def test_verdict_names_the_supported_best_and_says_no_difference(device) -> None:
    v = verdict(_values(device), {"srg": True, "deletion": False, "pointing": True},
                own_removal={"deletion": "zero"}, no_signal_cells={("lime", "zero"): True})
    srg = v["ig"].metrics["srg"]
    assert srg.best == ["road"] and srg.significant and srg.n == 12
    # road > others on all 12 images: exact two-sided p = 2 / 4096, Holm over 2 comparisons
    for c in srg.comparisons:
        assert c.best == "road" and c.p_value == pytest.approx(2 / 4096)
        assert c.p_holm == pytest.approx(4 / 4096) and c.effect == 1.0 and c.significant
    assert "best road" in srg.sentence and srg.caveat is None

    dele = v["ig"].metrics["deletion"]
    assert dele.best == ["zero"] and dele.own_removal == "zero"
    assert dele.caveat is not None and "deletion itself uses" in dele.sentence
    assert all(c.effect == 1.0 for c in dele.comparisons)  # oriented: lower is better

    pg = v["ig"].metrics["pointing"]
    assert not pg.significant and sorted(pg.best) == ["blur", "road", "zero"]
    # equal means: every baseline leads, no test runs, and the sentence cites none
    assert pg.comparisons == [] and pg.sentence == ("ig, pointing: road, zero, blur have the "
                                                    "same mean (n = 12); no test was run "
                                                    "between them.")

    lime = v["lime"]
    assert lime.excluded == ["zero"] and "zero" not in lime.metrics["srg"].means
    assert lime.metrics["srg"].top == ["road", "blur"]  # identical values: tied, both starred
    assert not lime.metrics["srg"].comparisons
    assert any("no signal" in s for s in lime.sentences)


def test_verdict_drops_non_finite_images_pairwise_and_checks_inputs() -> None:
    vals = {("m", "a", "x"): [1.0, 2.0, float("nan"), 4.0],
            ("m", "b", "x"): [0.0, 1.0, 9.0, 3.0]}
    mv = verdict(vals, {"x": True})["m"].metrics["x"]
    assert mv.n == 3 and mv.means == pytest.approx({"a": 7 / 3, "b": 4 / 3})
    with pytest.raises(ValueError, match="direction"):
        verdict(vals, {"y": True})
    with pytest.raises(ValueError, match="paired"):
        verdict({("m", "a", "x"): [1.0], ("m", "b", "x"): [1.0, 2.0]}, {"x": True})
    with pytest.raises(ValueError, match="alpha"):
        verdict(vals, {"x": True}, alpha=1.5)
    with pytest.raises(ValueError, match="method, baseline, metric"):
        verdict({("m", "a"): [1.0]}, {"x": True})


@pytest.mark.parametrize("others", [1, 2, 4])
def test_too_few_images_are_named_and_the_threshold_is_exact(others: int) -> None:
    """A baseline better on every image: significant from images_needed(k) on, never below."""
    needed = images_needed(others)
    for n in (needed - 1, needed):
        vals = {("m", "best", "srg"): torch.arange(1.0, n + 1) + 10}
        vals.update({("m", f"o{i}", "srg"): torch.arange(1.0, n + 1) * (0.5 + 0.1 * i)
                     for i in range(others)})
        mv = verdict(vals, {"srg": True}, own_removal={"srg": "o0"})["m"].metrics["srg"]
        assert mv.top == ["best"] and len(mv.comparisons) == others
        assert mv.significant == (n == needed), (n, needed)
        assert ("too few images" in mv.sentence) == (n < needed)
        assert mv.caveat is None  # the own removal o0 does not lead
    assert f"n >= {needed} needed" in verdict(
        {("m", "a", "x"): [2.0, 3.0], **{("m", f"b{i}", "x"): [1.0, 1.0] for i in range(others)}},
        {"x": True})["m"].metrics["x"].sentence
    # no finite pair at all: said as such, not as "too few"
    nan = verdict({("m", "a", "x"): [float("nan")], ("m", "b", "x"): [1.0]}, {"x": True})
    assert "no image has a finite value" in nan["m"].metrics["x"].sentence
    assert not nan["m"].metrics["x"].too_few
    # 2 / 2**n * others < 0.05, by hand
    assert needed == {1: 6, 2: 7, 4: 8}[others]


def test_own_removal_caveat_only_when_it_leads() -> None:
    tied = {("m", "zero", "deletion"): [0.1, 0.5, 0.2], ("m", "road", "deletion"): [0.2, 0.4, 0.3]}
    mv = verdict(tied, {"deletion": False}, own_removal={"deletion": "zero"})["m"].metrics
    assert not mv["deletion"].significant and mv["deletion"].top == ["zero"]
    assert mv["deletion"].caveat is not None  # zero leads by its mean
    other = verdict(tied, {"deletion": False}, own_removal={"deletion": "road"})["m"].metrics
    assert other["deletion"].caveat is None  # road is among the "best" only for lack of power
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="comparisons"):
            images_needed(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        images_needed(2, alpha=0.0)


def test_a_leader_by_mean_that_loses_on_most_images_is_not_called_better() -> None:
    """The test is two-sided: blur leads by its mean (one image at 0.99) but push-pull is
    higher on the other 11 images; that was "best blur; better than inpaint-pushpull"."""
    blur = torch.full((12,), 0.40)
    blur[0] = 0.99
    pushpull = torch.full((12,), 0.45)
    pushpull[0] = 0.0
    v = verdict({("ig", "blur", "srg"): blur, ("ig", "inpaint-pushpull", "srg"): pushpull},
                {"srg": True})["ig"].metrics["srg"]
    (c,) = v.comparisons
    assert c.p_holm == pytest.approx(scipy_stats.wilcoxon(blur, pushpull).pvalue, rel=1e-6)
    assert c.p_holm < 0.05 and c.effect < 0 and not c.significant and not v.significant
    assert v.best == ["blur"]
    assert v.sentence.startswith("ig, srg: no baseline is better than the others by both its "
                                 "mean and its ranks")
    assert "Mean and ranks disagree: inpaint-pushpull is better than blur on most images " \
        "(Holm-corrected p <= 0.0333) although blur leads by its mean" in v.sentence


def test_the_best_set_keeps_only_baselines_above_every_beaten_one() -> None:
    """noise is not told apart from the leader (it is spread out), but its mean is below road's,
    which the leader beats: noise is not "best", and the sentence says who was tested."""
    gen = torch.Generator().manual_seed(0)
    blur = 0.5 + 0.01 * torch.rand(12, generator=gen)
    road = blur - 0.05
    noise = blur - 0.2 + torch.tensor([0.6, -0.6] * 6)  # mean 0.3 below road, spread out
    zero = blur - 0.001 * torch.rand(12, generator=gen) + 0.0005 * torch.tensor([1.0, -1.0] * 6)
    v = verdict({("ig", "blur", "srg"): blur, ("ig", "road", "srg"): road,
                 ("ig", "noise", "srg"): noise, ("ig", "zero", "srg"): zero},
                {"srg": True})["ig"].metrics["srg"]
    by_other = {c.other: c for c in v.comparisons}
    assert by_other["road"].significant and not by_other["noise"].significant
    assert "noise" not in v.best and v.best[0] == "blur"
    assert v.sentence.startswith("ig, srg: best blur")
    assert "blur better than road" in v.sentence and "better than noise" not in v.sentence


def test_sentence_bounds_hold() -> None:
    from captum_cf.audit.stats import _at_least, _at_most

    assert _at_most(0.0161133) == "0.0162" and _at_most(2 / 4096) == "0.000489"
    assert _at_most(0.05) == "0.05" and float(_at_most(0.0333)) >= 0.0333
    assert _at_least(0.9951) == "0.99" and _at_least(1.0) == "1.00" and _at_least(-0.694) == "-0.70"
