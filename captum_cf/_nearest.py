"""Nearest samples by chunked ``cdist``: the nearest-sample baseline and GANMEX validation.

Samples may be float or ``uint8`` (8-bit images, read as ``value / 255`` by
:func:`~captum_cf.training.data.unit_images`); ``chunk`` of them at a time are converted to
float32, flattened and moved to the queries' device, so neither a float copy of the whole set
nor the full distance matrix is ever held.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_cf.training.data import unit_images

__all__ = ["nearest_index"]


def nearest_index(queries: Tensor, samples: Tensor, chunk: int, p: float = 2.0,
                  subset: Tensor | None = None) -> Tensor:
    """For each row of ``queries`` (Q, D), the position of its nearest sample (L``p``).

    Distances are taken after subtracting the queries' mean from both sides (they do not
    change; ``cdist``'s fast ``|a|^2 + |b|^2 - 2ab`` form then keeps its precision on values
    that are large against their spread, such as raw tabular features or timestamps), in
    float64 for float64 queries, else float32.

    Args:
        queries (Tensor): float rows (Q, D).
        samples (Tensor): (M, ...) with ``D`` values per sample, float or ``uint8``, any device.
        chunk (int): samples per ``cdist`` call.
        p (float): the norm of ``torch.cdist``.
        subset (Tensor, optional): int64 positions into ``samples`` (CPU): only these are
            candidates, and the result indexes ``subset``.

    Returns:
        Tensor: (Q,) int64 on the queries' device; among equally near samples the first, as
        ``argmin`` (one chunk gives exactly ``cdist(...).argmin(1)``).
    """
    n = samples.shape[0] if subset is None else subset.numel()
    dtype = torch.float64 if queries.dtype == torch.float64 else torch.float32
    shift = queries.to(dtype).mean(dim=0, keepdim=True)
    queries = queries.to(dtype) - shift
    best = torch.full((queries.shape[0],), float("inf"), dtype=dtype, device=queries.device)
    best_i = torch.zeros(queries.shape[0], dtype=torch.long, device=queries.device)
    for start in range(0, n, chunk):
        rows = (samples[start : start + chunk] if subset is None
                else samples[subset[start : start + chunk].to(samples.device)])
        refs = unit_images(rows.to(queries.device)).to(dtype).flatten(1) - shift
        dist, idx = torch.cdist(queries, refs, p=p).min(1)
        closer = dist < best
        best = torch.where(closer, dist, best)
        best_i = torch.where(closer, idx + start, best_i)
    return best_i
