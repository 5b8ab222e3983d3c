"""ExaggerationTrainer: the KL term falls, resume is exact, the classifier is untouched."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn as nn

from captum_cf.generative.conditional import bin_centers, posterior_to_bin
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
from captum_cf.generative.exaggeration_trainer import (
    ExaggerationTrainConfig,
    ExaggerationTrainer,
    binary_kl,
    evaluate_exaggeration,
    positive_posterior,
)

TINY = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1, critic_channels=4,
                          num_bins=5, positive_class=1, num_classes=3)
FAST = ExaggerationTrainConfig(batch_size=16, lr_generator=2e-3, lr_critic=2e-3, lambda_rec=1.0,
                               lambda_cyc=0.5, val_images=12)


def _data(n: int = 36) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 3
    images = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.3
    images[labels == 1, :, :4] += 0.6  # class 1 (positive): bright top
    images[labels == 2, :, 4:] += 0.6  # class 2: bright bottom
    return images.clamp(0, 1), labels


class _Classifier(nn.Module):
    """Logits from top- and bottom-half brightness; records the mode it was called in."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[-4.0, -4.0], [8.0, -4.0], [-4.0, 8.0]]))
            self.linear.bias.copy_(torch.tensor([2.0, 0.0, 0.0]))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        halves = torch.stack([x[:, :, :4].mean((1, 2, 3)), x[:, :, 4:].mean((1, 2, 3))], 1)
        return self.linear(halves)


def _trainer(device: torch.device | str = "cpu", **kwargs) -> ExaggerationTrainer:
    """Images and validation images on the CPU, moved by the trainer to ``device``."""
    torch.manual_seed(0)
    x, y = _data()
    clf = kwargs.pop("classifier", None) or _Classifier().to(device)
    config = kwargs.pop("config", FAST)
    trainer = ExaggerationTrainer(ExaggerationGenerator(TINY), clf, x, y, x[:12], config=config,
                                  device=device, **kwargs)
    assert trainer.images.device.type == torch.device(device).type
    assert all(p.device == trainer.images.device for p in trainer.generator.parameters())
    return trainer


def test_positive_posterior_and_binary_kl_by_hand(device) -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0], [1.0, 3.0, -2.0]]).to(device)
    log_p, log_q = positive_posterior(logits, 1)
    assert log_p.device == device and log_q.device == device
    p = torch.softmax(logits, 1)[:, 1]
    assert torch.allclose(log_p.exp(), p) and torch.allclose(log_q.exp(), 1 - p)
    d = torch.tensor([0.25, 0.95]).to(device)
    kl = binary_kl(d, log_p, log_q)
    expected = d * torch.log(d / p) + (1 - d) * torch.log((1 - d) / (1 - p))
    assert kl.device == device and torch.allclose(kl, expected)
    assert torch.allclose(binary_kl(p, log_p, log_q), torch.zeros(2, device=device), atol=1e-6)


def _mean_kl(trainer: ExaggerationTrainer) -> float:
    x = trainer.images[:24]
    bins = torch.arange(TINY.num_bins).repeat_interleave(24).to(x.device)
    with torch.no_grad():
        out = trainer.generator(x.repeat(TINY.num_bins, 1, 1, 1), bins)
        log_p, log_q = positive_posterior(trainer.classifier(out), TINY.positive_class)
    centers = bin_centers(TINY.num_bins).to(x.device)
    return float(binary_kl(centers[bins], log_p, log_q).mean())


def test_training_reduces_kl_term(device) -> None:
    trainer = _trainer(device)
    before = _mean_kl(trainer)
    trainer.fit(12)
    after = _mean_kl(trainer)
    assert after < 0.7 * before, (before, after)


def test_resume_is_exact(tmp_path, device) -> None:
    straight = _trainer(device, validate_every=2)
    straight.fit(4)
    first = _trainer(device, validate_every=2, checkpoint_path=tmp_path / "ck.pt",
                     checkpoint_every=2)
    first.fit(2)
    torch.manual_seed(123)  # a fresh process would start from other global RNG states
    resumed = _trainer(device, validate_every=2)
    resumed.resume(tmp_path / "ck.pt")
    assert resumed.step == 2
    resumed.fit(4)
    for (name, a), b in zip(straight.generator.state_dict().items(),
                            resumed.generator.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.history == resumed.history
    assert straight.best["step"] == resumed.best["step"]


def test_classifier_untouched_and_frozen_in_loop(device) -> None:
    clf = _Classifier().to(device).train()
    clf.linear.weight.requires_grad_(True)
    clf.linear.bias.requires_grad_(False)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    trainer = _trainer(device, classifier=clf)
    trainer.fit(3)
    assert clf.training and clf.linear.weight.requires_grad and not clf.linear.bias.requires_grad
    assert all(torch.equal(before[k], v) for k, v in clf.state_dict().items())
    assert clf.linear.weight.grad is None
    assert clf.modes and not any(clf.modes)  # every call in the loop saw eval mode


def test_keep_best_and_evaluation_keys(device) -> None:
    trainer = _trainer(device, validate_every=2)
    trainer.fit(4)
    assert trainer.best is not None and trainer.best["step"] in (2, 4)
    metrics = evaluate_exaggeration(trainer.generator.eval(), trainer.classifier,
                                    trainer.images[:8])
    assert set(metrics) == {"r", "mae", "identity", "monotone"}
    assert 0.0 <= metrics["monotone"] <= 1.0 and metrics["mae"] >= 0.0


def test_trainer_bad_input() -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="positive class 1"):
        ExaggerationTrainer(ExaggerationGenerator(TINY), _Classifier(), x, torch.zeros_like(y))
    with pytest.raises(ValueError, match="positive_share"):
        ExaggerationTrainer(ExaggerationGenerator(TINY), _Classifier(), x, y,
                            config=ExaggerationTrainConfig(positive_share=1.5))
    with pytest.raises(ValueError, match="images"):
        ExaggerationTrainer(ExaggerationGenerator(TINY), _Classifier(), x * 3, y)


def test_trainer_checks_the_classifiers_on_one_image_first() -> None:
    """A classifier that does not take the training images fails before training, by name."""
    x, y = _data()
    sized_for_16px = nn.Sequential(nn.Flatten(), nn.Linear(256, 3)).train()
    with pytest.raises(ValueError, match=r"^classifier fails on the training images of shape "
                       r"\(1, 1, 8, 8\) \(RuntimeError: mat1 and mat2"):
        ExaggerationTrainer(ExaggerationGenerator(TINY), sized_for_16px, x, y)
    assert sized_for_16px.training  # the probe's eval mode is restored after the failure
    two_classes = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(ValueError, match=r"aux_classifier must return \(1, 3\) logits"):
        ExaggerationTrainer(ExaggerationGenerator(TINY), _Classifier(), x, y,
                            config=ExaggerationTrainConfig(lambda_aux=1.0),
                            aux_classifier=two_classes)


def test_recalibrated_copy_is_deterministic_and_leaves_generator(device) -> None:
    trainer = _trainer(device)
    trainer.fit(2)
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    a, b = trainer.recalibrated(), trainer.recalibrated()
    assert not a.training and all(p.device == trainer.images.device for p in a.parameters())
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), name
    assert all(torch.equal(before[k], v) for k, v in trainer.generator.state_dict().items())
    # exact statistics: the mean of the first norm's input over the recalibration batches
    mean = a.enc0.norm.bn.running_mean
    assert not torch.allclose(mean, before["enc0.norm.bn.running_mean"])
    assert int(a.enc0.norm.bn.num_batches_tracked) == FAST.recalibration_batches


def _aux_pair(
    aux: nn.Module, weight: float, device: torch.device | str = "cpu"
) -> tuple[ExaggerationTrainer, ExaggerationTrainer]:
    """Twin trainers (same initialisation and seed): with and without the auxiliary term."""
    with_aux = _trainer(device, config=dataclasses.replace(FAST, lambda_aux=weight),
                        aux_classifier=aux)
    return with_aux, _trainer(device)


def test_aux_classifier_term_enters_the_loss_and_the_validation_score(device) -> None:
    aux = _Classifier().to(device).train()
    with torch.no_grad():  # a second classifier: the positive class needs the bottom half
        aux.linear.weight.copy_(aux.linear.weight[[0, 2, 1]])
    with_aux, without = _aux_pair(aux, 2.0, device)
    x, c_x, c_t, _ = with_aux._batch()
    without._batch()
    n = x.shape[0]
    both = with_aux.generator(torch.cat([x, x]), torch.cat([c_t, c_x]))
    with torch.no_grad():
        log_p, log_q = positive_posterior(aux(both[:n]), 1)
        expected = float(binary_kl(bin_centers(5).to(device)[c_t], log_p, log_q).mean())
    a = with_aux._generator_step(x, c_x, c_t, both[:n], both[n:])
    both = without.generator(torch.cat([x, x]), torch.cat([c_t, c_x]))
    b = without._generator_step(x, c_x, c_t, both[:n], both[n:])
    assert a["g_aux"] == pytest.approx(expected, rel=1e-5) and "g_aux" not in b
    assert a["g_kl"] == pytest.approx(b["g_kl"], rel=1e-6)
    assert any(not torch.equal(p, q) for p, q in zip(with_aux.generator.parameters(),
                                                    without.generator.parameters()))
    metrics = with_aux.validate()
    assert metrics["score"] == pytest.approx(metrics["r"] - metrics["mae"] - metrics["identity"]
                                             + metrics["aux_r"] - metrics["aux_mae"])
    assert "aux_r" not in without.validate()


def test_aux_temperature_softens_only_the_auxiliary_term(device) -> None:
    aux = _Classifier().to(device)
    with torch.no_grad():
        aux.linear.weight.copy_(aux.linear.weight[[0, 2, 1]])
    temperature = 3.0
    tempered = _trainer(device, config=dataclasses.replace(FAST, lambda_aux=1.0,
                                                          aux_temperature=temperature),
                        aux_classifier=aux)
    plain, _ = _aux_pair(aux, 1.0, device)
    assert tempered.validate() == plain.validate()  # validation's aux scores stay at T = 1
    x, c_x, c_t, _ = tempered._batch()
    plain._batch()
    n = x.shape[0]
    results = {}
    for name, trainer, t in (("tempered", tempered, temperature), ("plain", plain, 1.0)):
        both = trainer.generator(torch.cat([x, x]), torch.cat([c_t, c_x]))
        with torch.no_grad():
            p = torch.softmax(aux(both[:n]) / t, 1)[:, 1]
            d = bin_centers(TINY.num_bins).to(device)[c_t]
            expected = float((d * (d / p).log() + (1 - d) * ((1 - d) / (1 - p)).log()).mean())
        results[name] = trainer._generator_step(x, c_x, c_t, both[:n], both[n:])
        assert results[name]["g_aux"] == pytest.approx(expected, rel=1e-4)
    assert results["tempered"]["g_aux"] != pytest.approx(results["plain"]["g_aux"], rel=1e-2)
    # the main classifier's term is not tempered by aux_temperature
    assert results["tempered"]["g_kl"] == pytest.approx(results["plain"]["g_kl"], rel=1e-6)
    for bad in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match="aux_temperature must be > 0"):
            ExaggerationTrainConfig(aux_temperature=bad)


def test_critic_steps_update_the_critic_that_often_per_generator_step() -> None:
    trainer = _trainer(config=dataclasses.replace(FAST, critic_steps=3))
    calls = {"critic": 0, "generator": 0}
    critic, generator = trainer._critic_step, trainer._generator_step

    def count_critic(*args):
        calls["critic"] += 1
        return critic(*args)

    def count_generator(*args):
        calls["generator"] += 1
        return generator(*args)

    trainer._critic_step, trainer._generator_step = count_critic, count_generator
    trainer.fit(2)
    assert calls == {"critic": 6, "generator": 2}


def test_aux_classifier_untouched_and_bad_arguments(device) -> None:
    aux = _Classifier().to(device).train()
    aux.linear.bias.requires_grad_(False)
    before = {k: v.clone() for k, v in aux.state_dict().items()}
    with_aux, _ = _aux_pair(aux, 1.0, device)
    aux.modes.clear()
    with_aux.fit(2)
    assert aux.modes and not any(aux.modes)
    assert aux.training and aux.linear.weight.requires_grad and not aux.linear.bias.requires_grad
    assert aux.linear.weight.grad is None
    assert all(torch.equal(v, before[k]) for k, v in aux.state_dict().items())
    with pytest.raises(ValueError, match="lambda_aux must be >= 0"):
        ExaggerationTrainConfig(lambda_aux=-0.5)
    with pytest.raises(ValueError, match="lambda_cyc must be >= 0"):
        ExaggerationTrainConfig(lambda_cyc=-1.0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="critic_steps must be an int >= 1"):
            ExaggerationTrainConfig(critic_steps=bad)
    with pytest.raises(ValueError, match="needs an aux_classifier"):
        _trainer(config=dataclasses.replace(FAST, lambda_aux=1.0))


def _generator_grads(trainer: ExaggerationTrainer, batch) -> tuple[dict[str, float], list]:
    """One generator step on ``batch``; returns its losses and the gradients it applied."""
    x, c_x, c_t = batch[:3]
    n = x.shape[0]
    both = trainer.generator(torch.cat([x, x]), torch.cat([c_t, c_x]))
    losses = trainer._generator_step(x, c_x, c_t, both[:n], both[n:])
    return losses, [p.grad.clone() for p in trainer.generator.parameters()]


def _term_grads(trainer: ExaggerationTrainer, batch, term) -> list:
    """Gradients of ``term(fake, x)`` alone at the trainer's current generator weights."""
    x, c_x, c_t = batch[:3]
    n = x.shape[0]
    both = trainer.generator(torch.cat([x, x]), torch.cat([c_t, c_x]))
    params = list(trainer.generator.parameters())
    grads = torch.autograd.grad(term(both[:n], x), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize("name", ["lambda_l1", "lambda_real"])
def test_l1_and_realism_terms_add_exactly_their_gradient(name: str) -> None:
    weight = 30.0
    with_term = _trainer(config=dataclasses.replace(FAST, **{name: weight}))
    without = _trainer()
    batch = with_term._batch()
    without._batch()
    # a copy: its spectral norms take the same power iteration as the step's critic call
    disc = copy.deepcopy(with_term.discriminator)
    if name == "lambda_l1":
        def term(fake, x):
            return weight * (fake - x).abs().mean()
    else:
        def term(fake, x):  # the critic's unconditional score w . phi, by hand
            phi = disc.features(fake).sum(dim=(2, 3))
            return -weight * disc.linear(phi).mean()
    expected = _term_grads(with_term, batch, term)
    for p in with_term.generator.parameters():
        p.grad = None
    a, grads_a = _generator_grads(with_term, batch)
    b, grads_b = _generator_grads(without, batch)
    assert a["g_kl"] == pytest.approx(b["g_kl"], rel=1e-6)
    key = "g_l1" if name == "lambda_l1" else "g_real"
    assert key in a and key not in b
    differ = [ga - gb for ga, gb in zip(grads_a, grads_b)]
    assert max(float(e.abs().max()) for e in expected) > 0.1  # far above the tolerance
    scale = max(float(g.abs().max()) for g in grads_a)  # float32 rounding of the other terms
    for d, e in zip(differ, expected):
        torch.testing.assert_close(d, e, rtol=1e-3, atol=1e-5 * scale)


def test_realism_term_in_the_critic_loss() -> None:
    with_term = _trainer(config=dataclasses.replace(FAST, lambda_real=0.5))
    without = _trainer()
    x, c_x, c_t, _ = with_term._batch()
    for trainer in (with_term, without):  # eval: spectral norms without power iterations
        trainer.discriminator.eval()
    with torch.no_grad():
        fake = with_term.generator(x, c_t)
        disc = with_term.discriminator
        u_real = disc.linear(disc.features(x).sum(dim=(2, 3))).squeeze(1)
        u_fake = disc.linear(disc.features(fake).sum(dim=(2, 3))).squeeze(1)
        d_real, d_fake = disc(x, c_x), disc(fake, c_t)

        def hinge(r, f):
            return float(torch.relu(1 - r).mean() + torch.relu(1 + f).mean())

        expected_with = hinge(d_real, d_fake) + hinge(u_real, u_fake)
        expected_without = hinge(d_real, d_fake)
    # the critic's weight does not scale its own loss; lambda_real only switches the term on
    assert with_term._critic_step(x, c_x, fake, c_t)["d_hinge"] == pytest.approx(
        expected_with, rel=1e-5)
    assert without._critic_step(x, c_x, fake, c_t)["d_hinge"] == pytest.approx(
        expected_without, rel=1e-5)
    assert expected_with > expected_without


def test_discriminator_scores_split_conditional_and_unconditional() -> None:
    torch.manual_seed(0)
    from captum_cf.generative.exaggeration import ExaggerationDiscriminator

    disc = ExaggerationDiscriminator(TINY).eval()  # no power iterations between calls
    x = torch.rand(6, 1, 8, 8)
    bins = torch.tensor([0, 1, 2, 3, 4, 0])
    score, unconditional = disc.scores(x, bins)
    torch.testing.assert_close(score, disc(x, bins))
    # bin 0 has an all-zero thermometer code: its score is the unconditional part alone
    torch.testing.assert_close(unconditional, disc(x, torch.zeros(6, dtype=torch.long)))
    assert not torch.allclose(score[1:5], unconditional[1:5])


def test_step_term_adds_exactly_its_gradient() -> None:
    weight = 30.0
    with_term = _trainer(config=dataclasses.replace(FAST, lambda_step=weight))
    without = _trainer()
    # at initialisation the bin code has no effect (G(x, b) is the same for every b): move
    # both generators' weights the same way so that neighbouring bins differ
    for trainer in (with_term, without):
        noise = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in trainer.generator.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=noise))
    x, c_x, c_t, _ = with_term._batch()
    without._batch()
    c_n = with_term._neighbour_bins(c_t)
    n = x.shape[0]
    params = list(with_term.generator.parameters())

    def forward(trainer):  # the three-part pass of a step with the term on
        return trainer.generator(torch.cat([x, x, x]), torch.cat([c_t, c_x, c_n]))

    out = forward(with_term)
    grads = torch.autograd.grad(weight * (out[:n] - out[2 * n :]).square().mean(), params,
                                allow_unused=True)
    expected = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    results = []
    for trainer, near in ((with_term, True), (without, False)):
        out = forward(trainer)
        losses = trainer._generator_step(x, c_x, c_t, out[:n], out[n : 2 * n],
                                         out[2 * n :] if near else None)
        results.append((losses, [p.grad.clone() for p in trainer.generator.parameters()]))
    (a, grads_a), (b, grads_b) = results
    assert a["g_kl"] == pytest.approx(b["g_kl"], rel=1e-6)
    assert a["g_step"] > 0 and "g_step" not in b
    assert max(float(e.abs().max()) for e in expected) > 0.1  # far above the tolerance
    scale = max(float(g.abs().max()) for g in grads_a)
    for ga, gb, e in zip(grads_a, grads_b, expected):
        torch.testing.assert_close(ga - gb, e, rtol=1e-3, atol=1e-5 * scale)


def test_step_term_neighbour_bins_and_cost(device) -> None:
    trainer = _trainer(device, config=dataclasses.replace(FAST, lambda_step=1.0))
    last = TINY.num_bins - 1
    bins = torch.arange(TINY.num_bins, device=device).repeat(40)
    near = trainer._neighbour_bins(bins)
    assert near.device == bins.device
    assert torch.equal((near - bins).abs(), torch.ones_like(bins))  # a neighbour, in range
    assert near.min() >= 0 and near.max() <= last
    assert near[bins == 0].eq(1).all() and near[bins == last].eq(last - 1).all()
    middle = (bins > 0) & (bins < last)
    assert (near[middle] > bins[middle]).any() and (near[middle] < bins[middle]).any()
    # with the term on a step passes the batch three times through the generator; off: twice,
    # and no draw from the trainer's generator beyond the batch's (runs stay as before)
    for weight, parts in ((1.0, 3), (0.0, 2)):
        trainer = _trainer(device, config=dataclasses.replace(FAST, lambda_step=weight))
        reference = torch.Generator().manual_seed(0)
        reference.set_state(trainer.rng.get_state())
        sizes: list[int] = []
        hook = trainer.generator.register_forward_hook(
            lambda m, args, out, sizes=sizes: sizes.append(args[0].shape[0]))
        try:
            losses = trainer.train_step()
        finally:
            hook.remove()
        assert sizes[0] == parts * FAST.batch_size
        assert ("g_step" in losses) == (weight > 0)
        trainer._batch(reference)
        assert torch.equal(reference.get_state(), trainer.rng.get_state()) == (weight == 0)
        # batch-norm re-estimation composes its batches as training does
        sizes.clear()
        hook = trainer.generator.register_forward_hook(
            lambda m, args, out, sizes=sizes: sizes.append(args[0].shape[0]))
        try:
            trainer.recalibrated()  # a deep copy: it carries the hook
        finally:
            hook.remove()
        assert sizes and set(sizes) == {parts * FAST.batch_size}


@pytest.mark.parametrize("name", ["lambda_l1", "lambda_real", "lambda_aux", "lambda_step",
                                  "lambda_cls"])
def test_new_weights_validated(name: str) -> None:
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"{name} must be >= 0"):
            ExaggerationTrainConfig(**{name: bad})
    with pytest.raises(TypeError, match=name):
        ExaggerationTrainConfig(**{name: "1"})
    assert getattr(ExaggerationTrainConfig(), name) == (10.0 if name == "lambda_cls" else 0.0)


def test_real_temperature_bins_the_critics_real_images(device) -> None:
    temperature = 4.0
    tempered = _trainer(device, config=dataclasses.replace(FAST, real_temperature=temperature))
    plain = _trainer(device)
    x, _ = _data()
    with torch.no_grad():
        logits = _Classifier()(x)
    by_hand = posterior_to_bin(torch.softmax(logits / temperature, 1)[:, 1], TINY.num_bins)
    own = posterior_to_bin(torch.softmax(logits, 1)[:, 1], TINY.num_bins)
    assert tempered._real_bins.device == tempered.images.device
    assert torch.equal(tempered._real_bins.cpu(), by_hand)
    assert torch.equal(tempered._bins.cpu(), own)  # the generator's own bins stay at T = 1
    assert torch.equal(plain._real_bins.cpu(), own)
    # the positives (bin 4 at T = 1) move down to bin 3: the middle bins get real images
    assert own[x[:, :, :4].mean((1, 2, 3)) > 0.5].tolist() == [4] * 12
    assert by_hand[x[:, :, :4].mean((1, 2, 3)) > 0.5].tolist() == [3] * 12
    # the critic step scores the real images at their tempered bins, the fakes at c_t
    calls: list[torch.Tensor] = []
    scores = tempered.discriminator.scores

    def record(images, bins):
        calls.append(bins.clone())
        return scores(images, bins)

    tempered.discriminator.scores = record
    state = tempered.rng.get_state()
    _, c_x, c_t, c_real = tempered._batch()
    tempered.rng.set_state(state)
    tempered.train_step()
    assert not torch.equal(c_real, c_x)
    assert torch.equal(calls[0], c_real) and torch.equal(calls[1], c_t)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="real_temperature must be > 0"):
            ExaggerationTrainConfig(real_temperature=bad)
    with pytest.raises(TypeError, match="real_temperature"):
        ExaggerationTrainConfig(real_temperature="2")


def test_cls_temperature_softens_the_generators_classifier_term() -> None:
    temperature = 2.5
    tempered = _trainer(config=dataclasses.replace(FAST, cls_temperature=temperature))
    plain = _trainer()
    # validation stays at T = 1: same generator weights, same metrics
    assert tempered.validate() == plain.validate()
    x, c_x, c_t, _ = tempered._batch()
    plain._batch()
    n = x.shape[0]
    expected = {}
    for name, trainer, t in (("tempered", tempered, temperature), ("plain", plain, 1.0)):
        with torch.no_grad():
            both = trainer.generator(torch.cat([x, x]), torch.cat([c_t, c_x]))
            p = torch.softmax(_Classifier()(both[:n]) / t, 1)[:, 1]
            d = bin_centers(TINY.num_bins)[c_t]
            expected[name] = float((d * (d / p).log() + (1 - d) * ((1 - d) / (1 - p)).log()).mean())
        losses, _ = _generator_grads(trainer, (x, c_x, c_t))
        assert losses["g_kl"] == pytest.approx(expected[name], rel=1e-4)
    assert expected["tempered"] != pytest.approx(expected["plain"], rel=1e-2)
    with pytest.raises(ValueError, match="cls_temperature must be > 0"):
        ExaggerationTrainConfig(cls_temperature=0.0)
