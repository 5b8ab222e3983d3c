"""What an audit measured: the metric columns, per-cell per-image values, and the result object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from captum_cf.metrics import pointing_game, randomization_test

__all__ = [
    "AuditResult",
    "CellResult",
    "DEFAULT_METHODS",
    "METRICS",
    "MetricSpec",
    "NO_BASELINE",
    "metric_spec",
]

#: the baseline column of a method that ignores baselines (it is one cell, not one per baseline)
NO_BASELINE = "-"


@dataclass(frozen=True)
class MetricSpec:
    """A column of the audit table."""

    label: str
    higher_is_better: bool
    description: str
    bounds: tuple[float, float] | None = None  # the metric's range (its CI stays inside)
    removal: str | None = None  # the baseline this metric removes pixels with, if any


#: methods audited when none are named: the core grid, so that the default audit stays short;
#: ``methods=["all"]`` (``--methods all``) runs every registered method available
DEFAULT_METHODS = ("integrated-gradients", "deeplift", "occlusion", "feature-ablation")

#: metrics that do not depend on a removal
METRICS: dict[str, MetricSpec] = {
    "pointing_game": MetricSpec(
        "pointing game",
        pointing_game.higher_is_better,
        "map maximum on the object, within 15 px at 224 px (Zhang et al.; scaled)",
        (0.0, 1.0),
    ),
    "sanity_ssim": MetricSpec(
        "sanity SSIM",
        randomization_test.higher_is_better,
        "SSIM of |map| to |map| after re-initialising the top layer (Adebayo et al.)",
        (-1.0, 1.0),
    ),
}

#: per-removal metrics: prefix -> (higher is better, range, description)
_PER_REMOVAL = {
    "srg": (True, (-1.0, 1.0), "symmetric relevance gain LeRF - MoRF (Blücher et al.)"),
    "morf": (False, (0.0, 1.0), "area under the softmax, most relevant pixels removed first"),
    "lerf": (True, (0.0, 1.0), "area under the softmax, least relevant pixels removed first"),
}


def metric_spec(name: str) -> MetricSpec:
    """The column of metric ``name``: a key of :data:`METRICS` or ``srg_R``, ``morf_R``,
    ``lerf_R`` for a removal ``R`` (a baseline name).

    Example:
        >>> metric_spec("srg_road").higher_is_better, metric_spec("morf_zero").removal
        (True, 'zero')
    """
    if name in METRICS:
        return METRICS[name]
    prefix, _, removal = name.partition("_")
    if prefix in _PER_REMOVAL and removal:
        higher, bounds, text = _PER_REMOVAL[prefix]
        label = {"srg": "SRG", "morf": "MoRF", "lerf": "LeRF"}[prefix]
        return MetricSpec(f"{label} {removal}", higher, f"{text}; removal: {removal}", bounds,
                          removal)
    raise KeyError(f"unknown audit metric {name!r}")


@dataclass
class CellResult:
    """Scores of one (method, baseline) cell: per-image values of each metric.

    ``values[metric]`` is (K,) for the images ``index[metric]`` (positions in
    :attr:`AuditResult.images`; the sanity check scores only the first ``sanity_n``).
    """

    method: str
    baseline: str
    values: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    index: dict[str, list[int]] = field(default_factory=dict)
    done: int = 0  # images explained (for the explanation time per image)
    #: (2 R, 2, S): per removal (config order) MoRF then LeRF; sum and sum of squares of the
    #: per-image curves over the images, for the mean curve and its band
    curves: Tensor | None = None
    _stats: dict[str, tuple[float, float, float, int]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def curve(self, k: int) -> tuple[Tensor, Tensor, Tensor] | None:
        """Curve ``k`` (``2 r`` MoRF, ``2 r + 1`` LeRF of removal ``r``): mean and 95 % band
        (Student-t interval of the mean, clipped to [0, 1]) per step; None when not recorded."""
        n = self.values["no_signal"].numel() if "no_signal" in self.values else 0
        if self.curves is None or n == 0:
            return None
        total, squares = self.curves[k].double()
        mean = total / n
        sd = ((squares / n - mean**2).clamp_min(0) * n / max(n - 1, 1)).sqrt()
        if n < 2:
            return mean, mean.clone(), mean.clone()
        from captum_cf.audit.stats import t_quantile

        half = t_quantile(n) * sd / math.sqrt(n)
        return mean, (mean - half).clamp(0, 1), (mean + half).clamp(0, 1)

    @property
    def seconds_per_image(self) -> float:
        """Explanation time per image in seconds (NaN before any image)."""
        return self.seconds / self.done if self.done else math.nan

    def stats(self, metric: str) -> tuple[float, float, float, int]:
        """``(mean, ci_low, ci_high, n)`` over the finite values, with a 95 % interval.

        The interval is Student's t interval of the mean, clipped to the metric's range
        (:func:`~captum_cf.audit.stats.t_ci`); the pointing game (hits 0/1) gets Wilson's
        interval. NaN when unknown (and the interval with fewer than 2 values).
        """
        if metric not in self._stats:
            v = self.values.get(metric)
            v = None if v is None else v.double()[v.double().isfinite()]
            self._stats[metric] = (
                (math.nan, math.nan, math.nan, 0) if v is None or v.numel() == 0
                else _mean_ci(v, metric)
            )
        return self._stats[metric]

    @property
    def no_signal_fraction(self) -> float:
        """Share of the images whose map was constant (all zero included); NaN if unknown."""
        v = self.values.get("no_signal")
        return math.nan if v is None or v.numel() == 0 else float(v.double().mean())

    @property
    def no_signal(self) -> bool:
        """True when most maps of the cell carry no signal (the cell is kept out of the verdict)."""
        return self.no_signal_fraction > 0.5


def _mean_ci(v: Tensor, metric: str) -> tuple[float, float, float, int]:
    from captum_cf.audit.stats import t_ci, wilson_ci

    n, mean = v.numel(), float(v.mean())
    if n < 2:
        return (mean, math.nan, math.nan, n)
    try:
        bounds = metric_spec(metric).bounds
    except KeyError:
        bounds = None
    if bounds is not None and not (bounds[0] <= float(v.min()) and float(v.max()) <= bounds[1]):
        bounds = None
    if metric == "pointing_game" and bool(((v == 0) | (v == 1)).all()):
        lo, hi = wilson_ci(int(v.sum()), n)
    else:
        lo, hi = t_ci(v, bounds=bounds)
    return (mean, lo, hi, n)


@dataclass
class AuditResult:
    """Everything an audit measured; :meth:`table` prints it, :meth:`write` saves the report.

    Attributes:
        config (dict): what was audited and how (model, data, n, steps, seed, ...).
        metrics (list of str): keys of :data:`METRICS` that were computed.
        cells (list of CellResult): one per (method, baseline), methods outermost.
        examples (Tensor): (E, C, H, W) the first images, for the figures.
        example_maps (dict): ``(method, baseline) -> (E, H, W)`` their maps.
        references (dict): ``baseline -> (E, C, H, W)`` each baseline's counterfactual.
        seconds (float): wall time of the audit (summed over resumed runs).
        images (list of dict): ``{"index", "id", "label", "target"}`` per audited image, in
            order: its position in the audit, its path (folder) or index, true label (None when
            unknown) and the explained class.
        roms (dict): ``removal -> (K,)`` R-OMS per image of the first K <= 32 images
            (:meth:`r_oms`).
        command (str): the command that ran the audit (shown in the report).
    """

    config: dict[str, Any]
    metrics: list[str]
    cells: list[CellResult]
    examples: Tensor
    example_maps: dict[tuple[str, str], Tensor]
    references: dict[str, Tensor]
    seconds: float = 0.0
    images: list[dict[str, Any]] = field(default_factory=list)
    roms: dict[str, Tensor] = field(default_factory=dict)
    command: str = "captum_cf.audit.audit(...)"

    @property
    def removals(self) -> list[str]:
        """The removals every cell was scored under."""
        return list(self.config.get("removals", []))

    @classmethod
    def from_store(cls, store: Any) -> AuditResult:
        """The result recorded in an :class:`~captum_cf.audit.store.AuditStore`."""
        import torch

        config = store.config() or {}
        images = [
            {"index": i, "id": iid, "label": label, "target": target}
            for i, iid, label, target in store.images()
        ]
        cells = []
        for method, baseline in config.get("cells", []):
            seconds, error, done = store.cell_summary(method, baseline)
            cell = CellResult(method, baseline, seconds=seconds, error=error, done=done)
            for metric, pairs in store.scores(method, baseline).items():
                cell.index[metric] = [i for i, _ in pairs]
                cell.values[metric] = torch.tensor([v for _, v in pairs])
            parts = [store.blob(n) for n in store.blob_names(f"curve/{method}/{baseline}/")]
            if parts:
                cell.curves = torch.stack(parts).sum(0)
            cells.append(cell)
        examples = store.blob("examples")
        shape = config.get("image_shape", [1, 1, 1])
        if examples is None:
            examples = torch.zeros(0, *shape)
        maps = {}
        for name in store.blob_names("map/"):
            _, method, baseline = name.split("/", 2)
            maps[(method, baseline)] = store.blob(name)
        order = {tuple(c): i for i, c in enumerate(config.get("cells", []))}
        maps = dict(sorted(maps.items(), key=lambda kv: order.get(kv[0], len(order))))
        refs = {b: store.blob(f"ref/{b}") for b in config.get("baselines", [])}
        refs = {b: r for b, r in refs.items() if r is not None}
        seconds = float(config.get("seconds", 0.0))
        roms = {r: store.blob(f"roms/{r}") for r in config.get("removals", [])}
        return cls(
            config, list(config.get("metrics", [])), cells, examples, maps, refs, seconds, images,
            {r: v for r, v in roms.items() if v is not None},
        )

    def best(self) -> dict[str, list[tuple[str, str]]]:
        """metric -> every (method, baseline) at the best mean (direction-aware; ties share).

        Cells whose maps carry no signal are not candidates.
        """
        from captum_cf.audit.stats import best_set

        out = {}
        for m in self.metrics:
            means = {
                i: c.stats(m)[0] for i, c in enumerate(self.cells) if not c.no_signal
            }
            top = best_set(means, metric_spec(m).higher_is_better, atol=1e-9)
            if top:
                out[m] = [(self.cells[i].method, self.cells[i].baseline) for i in top]
        return out

    def r_oms(self) -> dict[str, tuple[float, float, float, int]]:
        """removal -> ``(mean, ci_low, ci_high, n)`` of its R-OMS (once per audit, in [0, 1])."""
        from captum_cf.audit.stats import t_ci

        out = {}
        for r, v in self.roms.items():
            v = v.double()[v.double().isfinite()]
            if v.numel() == 0:
                continue
            inside = 0 <= float(v.min()) and float(v.max()) <= 1
            lo, hi = t_ci(v, bounds=(0.0, 1.0) if inside else None) if v.numel() > 1 \
                else (math.nan, math.nan)
            out[r] = (float(v.mean()), lo, hi, v.numel())
        return out

    def consistency(self) -> dict[str, dict[str, Any]]:
        """Per method and metric kind (srg, morf, lerf): Kendall's tau of the baselines' ranking
        between every pair of removals, and its mean (1 = every removal ranks them alike).

        Returns:
            dict: ``method -> {kind: {"pairs": {"zero/road": tau, ...}, "mean_tau": tau}}`` for
            methods with at least two baselines (with signal) and two removals.
        """
        from captum_cf.audit.stats import ranking_consistency

        out: dict[str, dict[str, Any]] = {}
        if len(self.removals) < 2:
            return out
        for method in dict.fromkeys(c.method for c in self.cells):
            cells = [c for c in self.cells if c.method == method and not c.no_signal]
            if len(cells) < 2:
                continue
            for kind in ("srg", "morf", "lerf"):
                scores = {
                    r: {c.baseline: c.stats(f"{kind}_{r}")[0] for c in cells
                        if not math.isnan(c.stats(f"{kind}_{r}")[0])}
                    for r in self.removals
                }
                cons = ranking_consistency(scores)
                out.setdefault(method, {})[kind] = {
                    "pairs": {f"{a}/{b}": t for (a, b), t in cons.pairs.items()},
                    "mean_tau": cons.mean_tau,
                }
        return out

    def verdict(self, alpha: float = 0.05) -> dict[str, Any]:
        """Per method, the baselines best by SRG under each removal, with statistical support.

        :func:`captum_cf.audit.stats.verdict` on the per-image SRG of every removal: paired
        Wilcoxon signed-rank tests of the leader against each other baseline, Holm-corrected,
        with the rank-biserial effect size and n; images are paired by their index (those scored
        under every baseline of the method). Cells without signal are left out and named; a
        baseline that is the metric's own removal carries a caveat when it is among the best.
        Methods that ignore baselines have no verdict.

        Returns:
            dict: method -> :class:`~captum_cf.audit.stats.MethodVerdict`.
        """
        from captum_cf.audit.stats import verdict

        values: dict[tuple[str, str, str], Any] = {}
        directions, own = {}, {}
        for method in dict.fromkeys(c.method for c in self.cells):
            cells = [c for c in self.cells if c.method == method and c.baseline != NO_BASELINE]
            for r in self.removals:
                m = f"srg_{r}"
                have = [c for c in cells if m in c.values]
                if not have:
                    continue
                common = set.intersection(*(set(c.index[m]) for c in have))
                for c in have:
                    keep = [j for j, i in enumerate(c.index[m]) if i in common]
                    values[(method, c.baseline, m)] = c.values[m][keep]
                directions[m], own[m] = True, r
        flags = {(c.method, c.baseline): c.no_signal for c in self.cells}
        return verdict(values, directions, own, flags, alpha) if values else {}

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per cell and metric (the rows of ``results.csv``)."""
        rows = []
        for c in self.cells:
            for m in self.metrics:
                mean, lo, hi, n = c.stats(m)
                rows.append({
                    "method": c.method, "baseline": c.baseline, "metric": m,
                    "higher_is_better": metric_spec(m).higher_is_better,
                    "mean": mean, "ci_low": lo, "ci_high": hi, "n": n,
                    "no_signal": c.no_signal, "explain_s_per_image": round(c.seconds_per_image, 4),
                    "error": c.error or "",
                })
        return rows

    def table(self) -> str:
        """The results as a plain-text table; ``^`` marks the best mean of each column (ties
        share it; not a test), ``°`` a cell whose baseline is the column's own removal."""
        from captum_cf.audit.report import text_table

        return text_table(self)

    def write(self, out: str) -> list[str]:
        """Write ``results.csv``, ``results.json``, ``report.html`` and the figures into ``out``.

        Files are built in a temporary folder and moved into place, so ``out`` never holds a
        half-written file. Returns the paths written.
        """
        from captum_cf.audit.report import write_report

        return write_report(self, out)
