"""What an audit measured: the metric columns, per-cell per-image values, and the result object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from captum_cf.metrics import deletion, insertion, pointing_game, randomization_test

__all__ = ["AuditResult", "CellResult", "DEFAULT_METHODS", "METRICS", "MetricSpec", "NO_BASELINE"]

#: the baseline column of a method that ignores baselines (it is one cell, not one per baseline)
NO_BASELINE = "-"


@dataclass(frozen=True)
class MetricSpec:
    """A column of the audit table."""

    label: str
    higher_is_better: bool
    description: str


#: methods audited when none are named: the core grid, so that the default audit stays short;
#: ``methods=["all"]`` (``--methods all``) runs every registered method available
DEFAULT_METHODS = ("integrated-gradients", "deeplift", "occlusion", "feature-ablation")

#: every metric the audit can report, in column order
METRICS: dict[str, MetricSpec] = {
    "deletion_auc": MetricSpec(
        "deletion AUC", deletion.higher_is_better, "area under the deletion curve (RISE)"
    ),
    "insertion_auc": MetricSpec(
        "insertion AUC", insertion.higher_is_better, "area under the insertion curve (RISE)"
    ),
    "pointing_game": MetricSpec(
        "pointing game", pointing_game.higher_is_better, "map maximum on the object (Zhang et al.)"
    ),
    "sanity_ssim": MetricSpec(
        "sanity SSIM",
        randomization_test.higher_is_better,
        "SSIM of |map| to |map| after re-initialising the top layer (Adebayo et al.)",
    ),
}


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

    def stats(self, metric: str) -> tuple[float, float, float, int]:
        """``(mean, ci_low, ci_high, n)`` with a 95 % Student-t interval (NaN when unknown)."""
        v = self.values.get(metric)
        if v is None or v.numel() == 0:
            return (math.nan, math.nan, math.nan, 0)
        return _mean_ci(v.double())


def _mean_ci(v: Tensor) -> tuple[float, float, float, int]:
    n, mean = v.numel(), float(v.mean())
    if n < 2:
        return (mean, math.nan, math.nan, n)
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1)) * float(v.std(unbiased=True)) / math.sqrt(n)
    return (mean, mean - half, mean + half, n)


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
        images (list of dict): ``{"id", "label", "target"}`` per audited image, in order: its
            path (folder) or index, true label (None when unknown) and the explained class.
    """

    config: dict[str, Any]
    metrics: list[str]
    cells: list[CellResult]
    examples: Tensor
    example_maps: dict[tuple[str, str], Tensor]
    references: dict[str, Tensor]
    seconds: float = 0.0
    images: list[dict[str, Any]] = field(default_factory=list)

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
            seconds, error, _ = store.cell_summary(method, baseline)
            cell = CellResult(method, baseline, seconds=seconds, error=error)
            for metric, pairs in store.scores(method, baseline).items():
                cell.index[metric] = [i for i, _ in pairs]
                cell.values[metric] = torch.tensor([v for _, v in pairs])
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
        return cls(
            config, list(config.get("metrics", [])), cells, examples, maps, refs, seconds, images
        )

    def best(self) -> dict[str, tuple[str, str]]:
        """metric -> (method, baseline) of the best mean (direction-aware; first among ties)."""
        out = {}
        for m in self.metrics:
            sign = 1.0 if METRICS[m].higher_is_better else -1.0
            scored = [(sign * c.stats(m)[0], i) for i, c in enumerate(self.cells)]
            scored = [(s, i) for s, i in scored if not math.isnan(s)]
            if scored:
                best_i = max(scored, key=lambda si: (si[0], -si[1]))[1]
                out[m] = (self.cells[best_i].method, self.cells[best_i].baseline)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per cell (the rows of ``results.csv``)."""
        rows = []
        for c in self.cells:
            row: dict[str, Any] = {"method": c.method, "baseline": c.baseline}
            for m in self.metrics:
                mean, lo, hi, n = c.stats(m)
                row.update({f"{m}_mean": mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi, f"{m}_n": n})
            row.update({"explain_seconds": round(c.seconds, 3), "error": c.error or ""})
            rows.append(row)
        return rows

    def table(self) -> str:
        """The results as a plain-text table; ``*`` marks the best cell of each column."""
        from captum_cf.audit.report import text_table

        return text_table(self)

    def write(self, out: str) -> list[str]:
        """Write ``results.csv``, ``results.json``, ``report.html`` and the figures into ``out``.

        Files are built in a temporary folder and moved into place, so ``out`` never holds a
        half-written file. Returns the paths written.
        """
        from captum_cf.audit.report import write_report

        return write_report(self, out)
