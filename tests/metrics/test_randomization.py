"""randomization_test: cascade order, similarity values, exact model restoration."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from captum.attr import Saliency

from captum_cf.metrics import map_similarity, randomization_test


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 144, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def _saliency(model: nn.Module):
    return lambda x, t: Saliency(model).attribute(x, target=t)


def test_cascade_goes_top_down_and_randomises_cumulatively(device) -> None:
    model = _model().to(device)
    original = [p.detach().clone() for p in model.parameters()]
    seen: list[list[bool]] = []

    def explain(x, t):
        seen.append([not torch.equal(p, o) for p, o in zip(model.parameters(), original)])
        return _saliency(model)(x, t)

    res = randomization_test(model, explain, torch.rand(2, 1, 12, 12).to(device), 0)
    assert res.layers == ["5", "3", "0"] and res.similarity.shape == (2, 3) and res.cascade
    assert res.similarity.device == device
    # parameters: conv w, b, linear3 w, b, linear5 w, b
    assert seen == [
        [False] * 6,
        [False, False, False, False, True, True],
        [False, False, True, True, True, True],
        [True] * 6,
    ]


def test_independent_randomises_one_layer_at_a_time(device) -> None:
    model = _model().to(device)
    original = [p.detach().clone() for p in model.parameters()]
    seen: list[list[bool]] = []

    def explain(x, t):
        seen.append([not torch.equal(p, o) for p, o in zip(model.parameters(), original)])
        return _saliency(model)(x, t)

    randomization_test(
        model, explain, torch.rand(1, 1, 12, 12).to(device), 0, cascade=False, layers=["3", "0"]
    )
    assert seen == [
        [False] * 6,
        [False, False, True, True, False, False],
        [True, True] + [False] * 4,
    ]


def test_similarity_separates_model_dependent_and_model_independent_maps(device) -> None:
    model, x = _model().to(device), torch.rand(3, 1, 12, 12).to(device)
    edge = randomization_test(model, lambda xx, t: xx * 1.0, x, 0)  # ignores the model
    assert edge.similarity.device == device
    torch.testing.assert_close(edge.similarity.cpu(), torch.ones(3, 3))
    grad = randomization_test(model, _saliency(model), x, 0, similarity="spearman")
    assert grad.similarity.device == device
    assert bool((grad.similarity[:, -1] < 0.5).all())  # fully randomised: the map changed
    assert not grad.higher_is_better and not randomization_test.higher_is_better
    assert grad.mean.shape == (3,)


def test_model_is_restored_exactly_also_after_an_exception(device) -> None:
    model = _model().to(device)
    model[3].train()  # mixed modes
    model.eval()
    model[3].train()
    model[0].weight.requires_grad_(False)
    params = list(model.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 1, 12, 12).to(device)
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    calls = {"n": 0}

    def failing(x, t):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return _saliency(model)(x, t)

    for explain in (_saliency(model), failing):
        try:
            randomization_test(model, explain, x, 1)
        except RuntimeError as err:
            assert str(err) == "boom"
        assert list(model.parameters()) == params  # same objects
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
        assert [m.training for m in model.modules()] == [
            False,
            False,
            False,
            False,
            True,
            False,
            False,
        ]
        assert [p.requires_grad for p in model.parameters()] == [False] + [True] * 5
    assert calls["n"] == 3
    assert torch.equal(torch.get_rng_state(), rng)  # seeded re-initialisation leaves the global RNG
    if cuda_rng is not None:  # the CUDA generator too (the layers are re-initialised there)
        assert torch.equal(torch.cuda.get_rng_state(device), cuda_rng)


def test_spearman_with_ties_matches_scipy(device) -> None:
    stats = pytest.importorskip("scipy.stats")
    a = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]])
    b = torch.tensor([[[0.0, 0.0], [3.0, 1.0]]])
    expected = stats.spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    a, b = a.to(device), b.to(device)
    ours = map_similarity(a, b, "spearman", absolute=False)
    assert ours.device == device
    torch.testing.assert_close(ours.cpu(), torch.tensor([expected]).float())
    torch.testing.assert_close(
        map_similarity(a, -a, "spearman", absolute=False).cpu(), torch.tensor([-1.0])
    )
    torch.testing.assert_close(
        map_similarity(a, -a, "spearman", absolute=True).cpu(), torch.tensor([1.0])
    )


def test_constant_maps_under_spearman_are_the_same_map_not_unrelated(device) -> None:
    # a constant map ranks nothing (scipy: NaN); 0 made a method without signal pass the
    # randomisation test under spearman while SSIM failed it
    const, other = torch.full((2, 4, 4), 0.3, device=device), torch.rand(2, 4, 4, device=device)
    other[1] = 0.0
    got = map_similarity(const, torch.stack([const[0] * 1, other[0]]), "spearman")
    torch.testing.assert_close(got.cpu(), torch.tensor([1.0, 0.0]))
    assert map_similarity(const, const, "ssim").cpu().tolist() == [1.0, 1.0]
    # two different constants: no ranking on either side, the same (empty) order
    assert map_similarity(const, other * 0 + 0.7, "spearman").cpu().tolist() == [1.0, 1.0]
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device)
    flat = randomization_test(model, lambda x, t: torch.zeros_like(x), torch.rand(
        2, 1, 4, 4, device=device), 0, similarity="spearman")
    assert bool((flat.similarity == 1).all())  # fails the check: nothing changed


def test_a_block_randomises_every_layer_in_it(device) -> None:
    """A ResNet stage ("layer4") owns no parameters itself: naming it was refused as "not a
    module with parameters"; now every layer in it is re-initialised in one step."""
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(4, 4, 3, padding=1)),
                          nn.Flatten(), nn.Linear(4 * 144, 3)).to(device)
    original = [p.detach().clone() for p in model.parameters()]
    seen: list[list[bool]] = []

    def explain(x, t):
        seen.append([not torch.equal(p, o) for p, o in zip(model.parameters(), original)])
        return _saliency(model)(x, t)

    res = randomization_test(model, explain, torch.rand(1, 1, 12, 12).to(device), 0,
                             layers=["2", "0"])
    assert res.layers == ["2", "0"]
    assert seen == [[False] * 6, [False] * 4 + [True] * 2, [True] * 6]
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), original))  # restored


def test_bad_input() -> None:
    model, x = _model(), torch.rand(1, 1, 12, 12)
    with pytest.raises(ValueError, match="similarity must be"):
        randomization_test(model, _saliency(model), x, 0, similarity="pearson")
    with pytest.raises(ValueError, match="available"):
        randomization_test(model, _saliency(model), x, 0, layers=["1"])
    with pytest.raises(TypeError, match="nn.Module"):
        randomization_test(lambda t: t, _saliency(model), x, 0)


def test_map_similarity_rejects_integer_maps() -> None:
    a = (torch.rand(2, 8, 8) * 255).to(torch.uint8)
    with pytest.raises(TypeError, match="a must be a floating-point map"):
        map_similarity(a, a.float())
    with pytest.raises(TypeError, match="b must be a floating-point map"):
        map_similarity(a.float(), a)


def test_randomization_test_names_a_dtype_mismatch() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(TypeError, match="inputs has dtype torch.float64 but the model"):
        randomization_test(model, lambda i, t: Saliency(model).attribute(i, target=t), x, 0)


@pytest.mark.simdev
def test_randomised_weights_are_the_same_on_every_device(device) -> None:
    """The re-initialisation is drawn on the CPU: on a GPU it drew from CUDA's generator, so the
    audit's sanity check gave another value there (0.10 apart on 3 images) than on the CPU."""
    from captum_cf.metrics.randomization import _randomize

    torch.manual_seed(0)
    cpu = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(3, 3))
    cpu[1].running_mean.fill_(0.5)
    moved = copy.deepcopy(cpu).to(device)
    state = torch.random.get_rng_state()
    for layer in ("0", "1", "2"):
        _randomize(cpu.get_submodule(layer), seed=7)
        _randomize(moved.get_submodule(layer), seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator untouched
    for (name, a), b in zip(cpu.state_dict().items(), moved.state_dict().values(), strict=True):
        assert b.device == torch.empty(0).to(device).device and torch.equal(a, b.cpu()), name
    assert float(cpu[1].running_mean.abs().sum()) == 0.0  # buffers re-initialised too


def _weight_normed(kind: str) -> nn.Module:
    linear = nn.Linear(4 * 144, 3)
    wrap = {"weight_norm": nn.utils.weight_norm,  # the hook-based ones
            "spectral_norm": nn.utils.spectral_norm,
            "parametrizations.weight_norm": nn.utils.parametrizations.weight_norm,
            "parametrizations.spectral_norm": nn.utils.parametrizations.spectral_norm}[kind]
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), wrap(linear))


@pytest.mark.simdev
@pytest.mark.parametrize("kind", ["weight_norm", "spectral_norm", "parametrizations.weight_norm",
                                  "parametrizations.spectral_norm"])
def test_a_weight_normed_layer_is_randomised_and_restored(device, kind) -> None:
    """reset_parameters() of such a layer wrote into the computed weight, which the next pass
    recomputes from its own parameters: the layer was never randomised (SSIM 1.0, the method
    failed the check it passes); on a GPU the parametrized ones raised (copying refused)."""
    if device.type == "meta" and kind == "weight_norm":
        pytest.skip("torch cannot move a hook-based weight_norm layer to the simulated device")
    torch.manual_seed(0)
    model = _weight_normed(kind).to(device).eval()  # eval: spectral norm's vectors stay put
    x = torch.rand(2, 1, 12, 12).to(device)
    with torch.no_grad():
        before = model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def explain(inputs, target):
        with torch.no_grad():
            seen.append(model(inputs))
        return _saliency(model)(inputs, target)

    randomization_test(model, explain, x, 0, layers=["3"])
    assert not torch.allclose(seen[1], seen[0])  # the randomised layer computes another output
    with torch.no_grad():
        assert torch.equal(model(x), before)  # restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_non_persistent_buffers_and_lazy_layers_are_restored() -> None:
    class Scaled(nn.Linear):
        def __init__(self) -> None:
            super().__init__(4 * 144, 3)
            self.register_buffer("scale", torch.rand(3), persistent=False)

        def reset_parameters(self) -> None:
            super().reset_parameters()
            if hasattr(self, "scale"):
                self.scale.uniform_()

        def forward(self, x):
            return super().forward(x) * self.scale

    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), Scaled())
    scale = model[2].scale.clone()
    randomization_test(model, _saliency(model), torch.rand(2, 1, 12, 12), 0)
    assert torch.equal(model[2].scale, scale)  # a non-persistent buffer (not in state_dict)
    lazy = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))  # parameters appear at the first pass
    res = randomization_test(lazy, _saliency(lazy), torch.rand(2, 1, 12, 12), 0)
    assert res.layers == ["1"] and res.similarity.shape == (2, 1)


def test_a_train_mode_models_batch_norm_statistics_are_restored() -> None:
    """The original explanation's pass updated a train-mode model's running statistics, and
    they were kept."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(2 * 144, 3)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    randomization_test(model, _saliency(model), torch.rand(2, 1, 12, 12), 0)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def _head(parametrization=None) -> nn.Module:
    head = nn.Linear(16, 3)
    if parametrization is not None:
        head = parametrization(head)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), head)


def test_an_orthogonal_head_stays_orthogonal_and_is_one_layer() -> None:
    """A non-square orthogonal weight (PyTorch's Householder map) was set to zero by a normal
    draw on its parametrization's tensor (its diagonal is read as signs): constant maps, a
    perfect sanity score for every method. And a parametrized layer was two cascade steps
    ('3.parametrizations.weight', then '3')."""
    from captum_cf.metrics.randomization import layer_names

    torch.manual_seed(0)
    model = _head(nn.utils.parametrizations.orthogonal).eval()
    assert layer_names(model) == ["1", "3"]
    x = torch.rand(2, 1, 12, 12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def explain(inputs, target):
        seen.append((model[3].weight.detach().clone(), model[3].bias.detach().clone()))
        return _saliency(model)(inputs, target)

    res = randomization_test(model, explain, x, 0)
    assert res.layers == ["3", "1"]
    (w0, b0), (w1, b1) = seen[0], seen[1]
    assert not torch.equal(w1, w0) and not torch.equal(b1, b0)  # the whole layer at once
    torch.testing.assert_close(w1 @ w1.t(), torch.eye(3), atol=1e-5, rtol=0)  # orthogonal rows
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_hook_weight_norms_computed_weight_is_restored() -> None:
    model = _head(nn.utils.weight_norm)
    x = torch.rand(2, 1, 12, 12)
    model(x)
    weight = model[3].weight
    randomization_test(model, _saliency(model), x, 0)
    assert model[3].weight is weight and torch.equal(model[3].weight, weight.detach().clone())


def test_a_lazy_model_with_a_given_original_is_restored() -> None:
    """With ``original=`` given, a lazy layer that materialised during the run was left with
    its randomised weights."""
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.rand(2, 1, 12, 12)
    first = []

    def explain(inputs, target):
        out = _saliency(model)(inputs, target)
        if not first:
            first.append(model[1].weight.detach().clone())  # as it materialised
        return out

    res = randomization_test(model, explain, x, 0, original=torch.rand(2, 1, 12, 12))
    assert res.layers == ["3", "1"] and torch.equal(model[1].weight, first[0])


def test_seed_and_torchscript_models_are_refused_before_any_work() -> None:
    model = _head()
    calls = []

    def explain(inputs, target):
        calls.append(1)
        return _saliency(model)(inputs, target)

    x = torch.rand(2, 1, 12, 12)
    with pytest.raises(TypeError, match="^seed must be an int, got str$"):
        randomization_test(model, explain, x, 0, seed="1")
    with pytest.raises(TypeError, match="TorchScript module"):
        randomization_test(torch.jit.script(model), explain, x, 0)
    assert calls == []


class _Symmetric(nn.Module):  # PyTorch's tutorial parametrization: no right_inverse
    def forward(self, x):
        return x.triu() + x.triu(1).transpose(-1, -2)


def test_a_parametrization_without_right_inverse_is_redrawn_through_its_tensor() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 16),
                          nn.ReLU(), nn.Linear(16, 3))
    nn.utils.parametrize.register_parametrization(model[3], "weight", _Symmetric())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def explain(inputs, target):
        seen.append(model[3].weight.detach().clone())
        return _saliency(model)(inputs, target)

    randomization_test(model, explain, torch.rand(2, 1, 12, 12), 0, layers=["3"])
    assert not torch.equal(seen[1], seen[0]) and torch.equal(seen[1], seen[1].t())  # symmetric
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match=r"inside the parametrization of \['3'\]: name the"):
        randomization_test(model, explain, torch.rand(2, 1, 12, 12), 0,
                           layers=["3.parametrizations.weight"])
    with pytest.raises(TypeError, match="^cascade must be a bool, got str$"):
        randomization_test(model, explain, torch.rand(2, 1, 12, 12), 0, cascade="no")


def test_an_error_of_explain_on_a_lazy_model_reaches_the_caller() -> None:
    """It was replaced by PyTorch's "Attempted to use an uninitialized parameter", raised while
    the flags were restored."""
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 3))

    def explain(inputs, target):
        raise RuntimeError("boom from my explain")

    with pytest.raises(RuntimeError, match="^boom from my explain$"):
        randomization_test(model, explain, torch.rand(2, 1, 12, 12), 0)


def test_a_parametrized_model_itself_is_one_layer() -> None:
    """A model that is itself parametrized: its parametrization's modules ('parametrizations.
    weight', without a leading name) were neither left out of the layers nor refused."""
    from captum_cf.metrics.randomization import layer_names

    model = nn.utils.parametrizations.weight_norm(nn.Linear(144, 3))
    flat = nn.Sequential(nn.Flatten(), model)
    assert layer_names(model) == [""] and layer_names(flat) == ["1"]
    with pytest.raises(ValueError, match=r"inside the parametrization of \[''\]"):
        randomization_test(model, lambda x, t: x, torch.rand(2, 144, 1, 1), 0,
                           layers=["parametrizations.weight"])
