"""Posterior bins, thermometer codes, the exaggeration generator and discriminator."""

from __future__ import annotations

import copy

import pytest
import torch

from captum_cf.generative.conditional import (
    ThermometerBatchNorm2d,
    bin_centers,
    bin_code,
    one_hot_bins,
    posterior_to_bin,
    thermometer,
)
from captum_cf.generative.exaggeration import (
    ExaggerationConfig,
    ExaggerationDiscriminator,
    ExaggerationGenerator,
)

TINY = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1, critic_channels=4,
                          num_bins=5, positive_class=1, num_classes=3)


def test_posterior_to_bin_edges(device) -> None:
    p = torch.tensor([0.0, 0.0999, 0.1, 0.55, 0.8999, 0.9, 1.0]).to(device)
    assert posterior_to_bin(p, 10).device == device
    assert posterior_to_bin(p, 10).tolist() == [0, 0, 1, 5, 8, 9, 9]
    assert posterior_to_bin(torch.tensor([0.49, 0.5]), 2).tolist() == [0, 1]


def test_bin_centers() -> None:
    assert torch.allclose(bin_centers(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.equal(posterior_to_bin(bin_centers(10), 10), torch.arange(10))


def test_thermometer_is_ordinal(device) -> None:
    code = thermometer(torch.arange(4).to(device), 4)
    assert code.device == device
    code = code.cpu()
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.float32)
    assert torch.equal(code, expected)
    # neighbouring bins differ in exactly one bit, distant bins in |a - b| bits
    dist = torch.cdist(code, code, p=1)
    assert torch.equal(dist, (torch.arange(4)[:, None] - torch.arange(4)[None]).abs().float())


def test_thermometer_bad_input() -> None:
    with pytest.raises(ValueError, match=r"bins must lie in \[0, 4\)"):
        thermometer(torch.tensor([4]), 4)
    with pytest.raises(TypeError, match="integer"):
        thermometer(torch.tensor([0.5]), 4)
    with pytest.raises(ValueError, match="num_bins"):
        posterior_to_bin(torch.tensor([0.5]), 1)


def test_thermometer_batchnorm_accumulates_bits(device) -> None:
    norm = ThermometerBatchNorm2d(2, num_bins=3).eval()
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        norm.beta.copy_(torch.tensor([[0.5, 0.0], [0.0, -1.0]]))
    norm = norm.to(device)
    x = torch.ones(3, 2, 1, 1).to(device)  # eval BN, running mean 0 / var 1: normalised x ~= 1
    out = norm(x, torch.tensor([0, 1, 2]).to(device)).flatten(1)
    assert out.device == device
    out = out.cpu()
    scale = 1 / (1 + norm.bn.eps) ** 0.5
    expected = torch.tensor([[1.0 * scale, 1.0 * scale],
                             [2.0 * scale + 0.5, 3.0 * scale],
                             [5.0 * scale + 0.5, 7.0 * scale - 1.0]])
    assert torch.allclose(out, expected)


def test_generator_shape_and_identity_start(device) -> None:
    g = ExaggerationGenerator(TINY).to(device)
    x = torch.rand(3, 1, 8, 8).to(device)
    out = g(x, torch.tensor([0, 2, 4]).to(device))
    assert out.shape == (3, 1, 8, 8) and out.device == device
    # zero-initialised last layer: output = clamp(x, 0.01, 0.99) for every bin
    assert torch.allclose(out, x.clamp(0.01, 0.99), atol=1e-6)
    assert torch.allclose(g(x, 3), out, atol=1e-6)  # an int bin broadcasts


def test_generator_output_depends_on_bin(device) -> None:
    g = ExaggerationGenerator(TINY)
    torch.nn.init.normal_(g.out.weight, std=0.5)
    torch.nn.init.normal_(g.enc0.norm.beta, std=0.5)  # bin offsets start at zero
    g = g.to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    g.eval()
    assert not torch.allclose(g(x, 0), g(x, 4))


def test_discriminator_shape_and_bit_projection(device) -> None:
    d = ExaggerationDiscriminator(TINY).to(device)
    x = torch.rand(4, 1, 8, 8).to(device)
    scores = d(x, torch.tensor([0, 1, 3, 4]).to(device))
    assert scores.shape == (4,) and scores.device == device
    # one projection per bit: same image, bins differing by one bit differ in score
    same = x[:1].expand(5, -1, -1, -1)
    s = d(same, torch.arange(5).to(device))
    assert len(set(torch.round(s, decimals=6).tolist())) > 1


def test_generator_bad_input() -> None:
    g = ExaggerationGenerator(TINY)
    with pytest.raises(ValueError, match=r"bins must lie in \[0, 5\)"):
        g(torch.rand(2, 1, 8, 8), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"bins must have shape \(2,\)"):
        g(torch.rand(2, 1, 8, 8), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="bins must be an integer tensor"):
        g(torch.rand(2, 1, 8, 8), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 8, 8\)"):
        g(torch.rand(2, 1, 16, 16), 0)
    with pytest.raises(ValueError, match="images"):
        g(torch.rand(2, 1, 8, 8) + 1.5, 0)


def test_config_bad_values() -> None:
    with pytest.raises(ValueError, match="image_size"):
        ExaggerationConfig(image_size=10)
    with pytest.raises(ValueError, match="positive_class"):
        ExaggerationConfig(positive_class=10, num_classes=10)
    with pytest.raises(ValueError, match="num_bins"):
        ExaggerationConfig(num_bins=1)
    for name, bad in (("base_channels", 0), ("critic_channels", 2.5), ("residual_blocks", -1),
                      ("base_channels", True)):
        with pytest.raises(ValueError, match=f"{name} must be an int"):
            ExaggerationConfig(**{name: bad})
    ExaggerationConfig(residual_blocks=0)  # no residual block is a valid (small) generator


def test_one_hot_code(device) -> None:
    code = one_hot_bins(torch.tensor([0, 3, 1]).to(device), 4)
    assert code.device == device
    assert torch.equal(code.cpu(), torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]))
    # every pair of distinct bins differs in exactly two bits: no ordinal sharing
    all_bins = one_hot_bins(torch.arange(4), 4)
    assert torch.equal(torch.cdist(all_bins, all_bins, p=1), 2 * (1 - torch.eye(4)))
    assert torch.equal(bin_code(torch.arange(4), 4, "onehot"), all_bins)
    assert torch.equal(bin_code(torch.arange(4), 4), thermometer(torch.arange(4), 4))
    with pytest.raises(ValueError, match=r"bins must lie in \[0, 4\)"):
        one_hot_bins(torch.tensor([4]), 4)
    with pytest.raises(ValueError, match="code must be one of"):
        bin_code(torch.arange(2), 4, "binary")
    with pytest.raises(ValueError, match="code must be one of"):
        ThermometerBatchNorm2d(2, 4, code="ordinal")


def test_onehot_batchnorm_has_independent_parameters_per_bin(device) -> None:
    norm = ThermometerBatchNorm2d(2, num_bins=3, code="onehot").eval()
    assert norm.gamma.shape == (3, 2) and norm.beta.shape == (3, 2)
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        norm.beta.copy_(torch.tensor([[0.5, 0.0], [0.0, -1.0], [2.0, 1.0]]))
    norm = norm.to(device)
    x = torch.ones(3, 2, 1, 1).to(device)
    out = norm(x, torch.tensor([0, 1, 2]).to(device)).flatten(1)
    assert out.device == device
    scale = 1 / (1 + norm.bn.eps) ** 0.5
    # bin c uses only row c (thermometer: rows 0..c-1 summed)
    expected = torch.tensor([[2.0 * scale + 0.5, 3.0 * scale],
                             [4.0 * scale, 5.0 * scale - 1.0],
                             [6.0 * scale + 2.0, 7.0 * scale + 1.0]])
    assert torch.allclose(out.cpu(), expected)


def _perturb_row(g: ExaggerationGenerator, row: int) -> None:
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, ThermometerBatchNorm2d):
                m.gamma[row] += 0.7
                m.beta[row] -= 0.4


@pytest.mark.parametrize("code", ["onehot", "thermometer"])
def test_generator_conditioning_shares_or_separates_bins(code: str, device) -> None:
    torch.manual_seed(0)
    cfg = ExaggerationConfig(**{**TINY.to_dict(), "conditioning": code})
    g = ExaggerationGenerator(cfg)
    torch.nn.init.normal_(g.out.weight, std=0.5)
    g.eval()
    g2 = copy.deepcopy(g)
    _perturb_row(g2, 0)  # onehot: bin 0's parameters; thermometer: the first bit's
    g, g2 = g.to(device), g2.to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    changed = [not torch.equal(g(x, b), g2(x, b)) for b in range(cfg.num_bins)]
    if code == "onehot":  # only bin 0 moves
        assert changed == [True, False, False, False, False]
    else:  # the bit every bin >= 1 shares: all but bin 0 move
        assert changed == [False, True, True, True, True]


def test_discriminator_onehot_projection_by_hand(device) -> None:
    torch.manual_seed(0)
    cfg = ExaggerationConfig(**{**TINY.to_dict(), "critic_conditioning": "onehot"})
    d = ExaggerationDiscriminator(cfg).to(device).eval()
    assert d.embed.weight.shape[1] == cfg.num_bins  # one embedding per bin
    x = torch.rand(1, 1, 8, 8).to(device).expand(5, -1, -1, -1)
    bins = torch.arange(5).to(device)
    with torch.no_grad():
        score, unconditional = d.scores(x, bins)
        phi = d.features(x).sum(dim=(2, 3))
        emb = d.embed.weight  # (F, B), spectrally normalised
        expected = unconditional + (emb.T * phi).sum(1)  # row c: <e_c, phi(x)>
    assert score.device == device
    assert torch.allclose(score, expected, atol=1e-5)
    with pytest.raises(ValueError, match="critic_conditioning must be one of"):
        ExaggerationConfig(critic_conditioning="ordinal")
    with pytest.raises(ValueError, match="conditioning must be one of"):
        ExaggerationConfig(conditioning="embedding")
