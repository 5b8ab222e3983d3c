"""The audit's explainers that split large calls (IG, DeepLift): one shared run for their tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from captum_cf._registry import AuditContext
from captum_cf.attr import METHODS
from captum_cf.baselines import NoiseBaseline


def run_split_explainer(
    model: nn.Module, method: str, internal: int, device: torch.device
) -> tuple[Tensor, list[int], Tensor, Tensor, Tensor]:
    """The registered ``method`` with internal batch ``internal`` on 5 images and a noisy
    baseline (whose reference depends on the batch it is drawn for).

    Returns:
        tuple: the maps, the batch size of every model call, the references of the whole batch,
        the images and the targets.
    """
    x = torch.rand(5, 2, 6, 6, generator=torch.Generator().manual_seed(3)).to(device)
    target = torch.tensor([0, 1, 2, 1, 0], device=device)
    baseline = NoiseBaseline(std=0.2, seed=4)
    ctx = AuditContext(model=model, data_name="toy", train_data=None, num_classes=3,
                       image_shape=(2, 6, 6), extras={"internal_batch_size": internal})
    seen: list[int] = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        got = METHODS.create(method, ctx)(x, target, baseline)
    finally:
        handle.remove()
    refs = baseline.reference(x, target)
    # the references of a part of the batch differ: drawing them per chunk would show
    assert not torch.equal(refs[2:4], baseline.reference(x[2:4], target[2:4]))
    return got, seen, refs, x, target
