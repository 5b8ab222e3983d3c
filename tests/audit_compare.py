"""One comparison of two audits' results, cell by cell (shared by the audit, store and device
tests; at the root of ``tests`` so that every test folder can import it)."""

from __future__ import annotations

import torch


def assert_same_cells(a, b, atol: float | None = None,
                      method_atol: dict[str, float] | None = None) -> None:
    """``a`` and ``b`` (``AuditResult``) have the same cells in the same order, no cell failed,
    each has the same metrics, and every per-image value is equal (``atol`` None: bit for bit;
    else ``torch.allclose`` with that tolerance; ``method_atol``: a tolerance per method),
    wherever the values live."""
    assert [(c.method, c.baseline) for c in a.cells] == [(c.method, c.baseline) for c in b.cells]
    for x, y in zip(a.cells, b.cells):
        where = (x.method, x.baseline)
        assert x.error is None and y.error is None, (where, x.error, y.error)
        assert sorted(x.values) == sorted(y.values), where
        tol = (method_atol or {}).get(x.method, atol)
        for metric, value in x.values.items():
            other = y.values[metric].to(value.device)
            same = torch.equal(value, other) if tol is None else torch.allclose(
                value, other, atol=tol)
            assert same, (*where, metric)
