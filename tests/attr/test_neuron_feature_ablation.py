"""captum_cf.attr.NeuronFeatureAblation: removed features filled by a mask-conditional Baseline."""

from __future__ import annotations

import torch
from perturbation_helpers import MeanFill

from captum_cf.attr import NeuronFeatureAblation

MASK = torch.arange(36).view(1, 1, 6, 6) // 9  # 4 bands of rows (1.5 rows each)


def test_each_group_is_scored_with_the_fill_of_its_removal(cnn, images, device, on_device):
    """A_g = y_k(x) - y_k(fill(x, keep = 1 - m_g)), the fill seeing each group's mask."""
    fill, mask = MeanFill(), MASK.to(device)
    attr = NeuronFeatureAblation(cnn, cnn.act).attribute(
        images, (2, 0, 0), fill, feature_mask=mask, perturbations_per_eval=2
    )
    assert on_device(attr, [call[:2] for call in fill.calls])
    assert len(fill.calls) == 2  # one fill call per chunk of 2 groups (4 groups)

    def neuron(x):
        with torch.no_grad():
            return cnn.act(cnn.pool(cnn.conv(x)))[:, 2, 0, 0]

    for g in range(4):
        keep = (mask != g).float().expand_as(images)
        want = neuron(images) - neuron(MeanFill().fill(images, keep))
        got = attr[:, 0][mask[0, 0].expand(3, 6, 6) == g].view(3, -1)[:, 0]
        assert torch.allclose(got, want, atol=1e-6)
    assert attr.abs().max() > 1e-3
