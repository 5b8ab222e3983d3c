"""GANMEXTrainer and the base Trainer: learning, exact resume, keep-best, classifier untouched."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_cf.generative import (
    GANMEXConfig,
    GANMEXCritic,
    GANMEXGenerator,
    GANMEXTrainConfig,
    GANMEXTrainer,
    adapt_ganmex,
)
from captum_cf.generative.ganmex_trainer import random_other_class

TINY = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                    num_residual=1, critic_channels=4, critic_layers=2)
FAST = GANMEXTrainConfig(batch_size=12, lr_generator=2e-3, lr_critic=2e-3, lambda_sim=0.5,
                         val_images=12)


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 3
    images = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.3
    images[labels == 1, :, :4] += 0.6  # class 1: bright top, class 2: bright bottom
    images[labels == 2, :, 4:] += 0.6
    return images.clamp(0, 1), labels


class _Classifier(nn.Module):
    """Top-half vs bottom-half brightness; records the mode it was called in."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[-4.0, -4.0], [8.0, -4.0], [-4.0, 8.0]]))
            self.linear.bias.copy_(torch.tensor([2.0, 0.0, 0.0]))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        halves = [x[:, :, :4].mean((1, 2, 3)), x[:, :, 4:].mean((1, 2, 3))]
        return self.linear(torch.stack(halves, 1))


def _trainer(clf: nn.Module, device: torch.device | str = "cpu", **kwargs) -> GANMEXTrainer:
    """Images on the CPU, moved by the trainer to ``device`` (where ``clf`` must be)."""
    x, y = _data()
    torch.manual_seed(kwargs.get("seed", 0))  # model initialisation
    trainer = GANMEXTrainer(GANMEXGenerator(TINY), clf, x, y, config=FAST, device=device,
                            **kwargs)
    assert trainer.images.device.type == torch.device(device).type
    assert all(p.device == trainer.images.device for p in trainer.critic.parameters())
    return trainer


def _class_loss(trainer: GANMEXTrainer, clf: nn.Module) -> float:
    x, y = _data()
    t = random_other_class(y, 3, torch.Generator().manual_seed(5))
    x, t = x.to(trainer.images.device), t.to(trainer.images.device)
    with torch.no_grad():
        return float(F.cross_entropy(clf(trainer.generator(x, t)), t))


def test_training_lowers_the_class_loss(device):
    clf = _Classifier().to(device)
    trainer = _trainer(clf, device, seed=0)
    before = _class_loss(trainer, clf)
    history = trainer.fit(15)
    after = _class_loss(trainer, clf)
    assert after < 0.5 * before, (before, after)
    assert history[-1]["step"] == 10 and {"g_cls", "g_l1", "d_gp", "d_wgan"} <= set(history[-1])


def test_classifier_is_used_frozen_and_left_untouched(device):
    clf = _Classifier().to(device).train()
    clf.linear.bias.requires_grad_(False)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    _trainer(clf, device, seed=0).fit(3)
    assert clf.modes and not any(clf.modes)  # eval mode inside the loop
    assert clf.training and clf.linear.weight.requires_grad and not clf.linear.bias.requires_grad
    assert clf.linear.weight.grad is None
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k])


def test_classifier_state_restored_after_an_exception(monkeypatch, device):
    clf = _Classifier().to(device).train()
    trainer = _trainer(clf, device, seed=0)

    def boom() -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer, "train_step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(2)
    assert clf.training and all(p.requires_grad for p in clf.parameters())


def test_resume_continues_exactly(tmp_path, device):
    full = _trainer(_Classifier().to(device), device, seed=3, validate_every=2)
    full.fit(6)
    ckpt = tmp_path / "g.ckpt"
    first = _trainer(_Classifier().to(device), device, seed=3, validate_every=2,
                     checkpoint_path=ckpt, checkpoint_every=4)
    first.fit(4)
    resumed = _trainer(_Classifier().to(device), device, seed=3, validate_every=2)
    resumed.resume(ckpt)
    assert resumed.step == 4
    resumed.fit(6)
    for name in ("generator", "critic"):
        for (k, a), b in zip(full.modules[name].state_dict().items(),
                             resumed.modules[name].state_dict().values()):
            assert torch.equal(a, b), (name, k)
    assert full.history == resumed.history


def test_keep_best_holds_the_best_validation(tmp_path, device):
    x, y = _data()
    trainer = GANMEXTrainer(GANMEXGenerator(TINY), _Classifier().to(device), x, y, x[:12],
                            y[:12], config=FAST, seed=0, validate_every=2, device=device)
    trainer.fit(8)
    scores = [(e["val_score"], e["step"]) for e in trainer.history if "val_score" in e]
    assert len(scores) == 4
    assert trainer.best["step"] == max(scores, key=lambda s: s[0])[1]
    assert {"flip", "l1", "nn_flip", "score"} <= set(trainer.best["metrics"])
    # the kept weights reproduce the best score
    gen = GANMEXGenerator(TINY)
    gen.load_state_dict(trainer.best_state("generator"))
    assert trainer.best_state("generator") is not trainer.generator.state_dict()


def test_bad_arguments_raise():
    x, y = _data()
    with pytest.raises(ValueError, match="built for"):
        GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), torch.rand(4, 1, 16, 16), y[:4])
    with pytest.raises(ValueError, match="missing \\[2\\]"):
        GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), x[:2], y[:2])
    with pytest.raises(ValueError, match="labels must be class indices"):
        GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), x, y + 1)
    two_classes = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).train()
    with pytest.raises(ValueError, match=r"\(1, 3\) logits .* returned \(1, 2\)"):
        GANMEXTrainer(GANMEXGenerator(TINY), two_classes, x, y)
    assert two_classes.training and all(p.requires_grad for p in two_classes.parameters())
    sized_for_16px = nn.Sequential(nn.Flatten(), nn.Linear(256, 3))
    with pytest.raises(ValueError, match=r"^classifier fails on the training images of shape "
                       r"\(1, 1, 8, 8\) \(RuntimeError: mat1 and mat2"):
        GANMEXTrainer(GANMEXGenerator(TINY), sized_for_16px, x, y)
    trainer = _trainer(_Classifier())
    trainer.fit(1)
    with pytest.raises(ValueError, match="below the steps already done"):
        trainer.fit(0)


class _SetsPixel(nn.Module):
    """A hand-made "generator": pixel (0, 0) becomes min(t / 2, 0.5), the rest is kept."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[:, 0, 0, 0] = (t.float() / 2).clamp(max=0.5)
        return y


class _ReadsPixel(nn.Module):
    """A hand-made classifier: class round(2 * pixel (0, 0)) of 3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot((x[:, 0, 0, 0] * 2).round().long(), 3).float()


def test_evaluate_counterfactuals_by_hand_with_a_cpu_reference(device):
    from captum_cf.generative.ganmex_trainer import evaluate_counterfactuals

    x = torch.tensor([[0.0, 0.2], [0.5, 0.4], [1.0, 0.6], [0.0, 0.8]]).view(4, 1, 1, 2)
    t = torch.tensor([1, 2, 0, 0])  # target 2 cannot be reached: pixel (0, 0) stops at 0.5
    # real data left on the CPU (nearest of the 4 edits: classes 1, 1, 0, 0)
    ref = torch.tensor([[0.0, 0.3], [0.5, 0.5], [1.0, 0.5]]).view(3, 1, 1, 2)
    out = evaluate_counterfactuals(_SetsPixel(), _ReadsPixel(), x.to(device), t,
                                   reference=(ref, torch.tensor([0, 1, 2])))
    # edits [0.5, 0.2], [0.5, 0.4], [0, 0.6], [0, 0.8]: read as 1, 1, 0, 0
    assert out["flip"] == pytest.approx(3 / 4)
    assert out["l1"] == pytest.approx((0.25 + 0.0 + 0.5 + 0.0) / 4)
    assert out["nn_flip"] == pytest.approx(3 / 4)


def test_random_other_class_never_returns_the_label():
    labels = torch.arange(1000) % 4
    other = random_other_class(labels, 4, torch.Generator().manual_seed(0))
    assert bool((other != labels).all())
    assert set(other[labels == 0].tolist()) == {1, 2, 3}


def test_focus_pairs_oversample_one_pair_and_keep_the_rest_uniform(device):
    x, y = _data(300)
    cfg = GANMEXTrainConfig(batch_size=300, focus_pairs=((1, 2),), focus_share=0.5)
    trainer = GANMEXTrainer(GANMEXGenerator(TINY), _Classifier().to(device), x, y, config=cfg,
                            device=device)
    batch = trainer._batch()
    assert all(b.device == trainer.images.device for b in batch)
    images, source, target, real = (b.cpu() for b in batch)
    assert torch.equal(y[_match(images, x)], source)
    assert bool((source != target).all()) and torch.equal(y[_match(real, x)], target)
    in_pair = ((source == 1) & (target == 2)) | ((source == 2) & (target == 1))
    # uniform draws hit (1 -> 2) or (2 -> 1) with probability 1/3; focused ones always
    assert 0.55 < in_pair.float().mean().item() < 0.78, in_pair.float().mean()
    assert (source == 0).any()  # the other classes still train
    only = GANMEXTrainConfig(batch_size=64, focus_pairs=((0, 2),), focus_share=1.0)
    _, source, target, _ = GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), x, y,
                                         config=only)._batch()
    assert set(zip(source.tolist(), target.tolist())) == {(0, 2), (2, 0)}
    with pytest.raises(ValueError, match="focus_share must be in"):
        GANMEXTrainConfig(focus_pairs=((0, 1),), focus_share=1.5)
    with pytest.raises(ValueError, match="needs focus_pairs"):
        GANMEXTrainConfig(focus_share=0.5)
    with pytest.raises(ValueError, match="two different classes"):
        GANMEXTrainConfig(focus_pairs=((1, 1),), focus_share=0.5)
    with pytest.raises(ValueError, match="outside 0..2"):
        GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), x, y,
                      config=GANMEXTrainConfig(focus_pairs=((0, 3),), focus_share=0.5))


def _match(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    return (images[:, None] == pool[None]).flatten(2).all(2).float().argmax(1)


MASKED = GANMEXConfig(**{**TINY.to_dict(), "edit": "mask"})


def _masked_trainer(device: torch.device | str = "cpu", **kwargs) -> GANMEXTrainer:
    x, y = _data()
    torch.manual_seed(kwargs.get("seed", 0))
    cfg = GANMEXTrainConfig(**{**FAST.to_dict(), "lambda_mask": 0.5, "lambda_mask_tv": 0.1})
    return GANMEXTrainer(GANMEXGenerator(MASKED), _Classifier().to(device), x, y, config=cfg,
                         device=device, **kwargs)


def test_masked_training_lowers_the_class_loss_and_logs_the_mask(device):
    clf = _Classifier().to(device)
    trainer = _masked_trainer(device, seed=0)
    before = _class_loss(trainer, clf)
    history = trainer.fit(30)
    after = _class_loss(trainer, clf)
    assert after < 0.5 * before, (before, after)
    assert {"g_mask", "g_mask_tv"} <= set(history[-1])
    assert 0 < history[-1]["g_mask"] <= 1


def test_mask_terms_enter_the_generator_loss(device):
    from captum_cf.generative.ganmex_trainer import _total_variation

    mask = torch.zeros(1, 1, 3, 3)
    mask[0, 0, 1, 1] = 1.0  # one on-pixel: 2 of 6 vertical and 2 of 6 horizontal diffs are 1
    assert float(_total_variation(mask.to(device))) == pytest.approx(2 / 6 + 2 / 6)
    a, b, ramped = (_masked_trainer(device, seed=1) for _ in range(3))
    b.config.lambda_mask = ramped.config.lambda_mask = 100.0
    ramped.config.mask_warmup = 10_000  # step 0: the mask terms count 1 / 10000
    x, c, t, _ = a._batch()
    la, lb = a._generator_step(x, c, t), b._generator_step(x, c, t)
    ramped._generator_step(x, c, t)
    assert la["g_mask"] == pytest.approx(lb["g_mask"])  # same generator, same mask
    with torch.no_grad():  # the heavier sparsity weight shrank b's mask more in that one step
        area = {k: float(tr.generator.edit(x, t)[1].mean())
                for k, tr in (("a", a), ("b", b), ("ramped", ramped))}
    assert area["b"] < area["a"] and area["b"] < area["ramped"], area


def test_masked_resume_continues_exactly(tmp_path, device):
    full = _masked_trainer(device, seed=3, validate_every=2)
    full.fit(4)
    ckpt = tmp_path / "m.ckpt"
    _masked_trainer(device, seed=3, validate_every=2, checkpoint_path=ckpt,
                    checkpoint_every=2).fit(2)
    resumed = _masked_trainer(device, seed=3, validate_every=2)
    resumed.resume(ckpt)
    resumed.fit(4)
    for (k, a), b in zip(full.generator.state_dict().items(),
                         resumed.generator.state_dict().values()):
        assert torch.equal(a, b), k
    assert full.history == resumed.history


def test_generator_files_without_the_edit_key_still_load(tmp_path, device):
    from captum_cf.generative.ganmex_trainer import load_generator
    from captum_cf.training.checkpoint import load_checkpoint, save_checkpoint

    trainer = _trainer(_Classifier().to(device), device)
    payload = trainer.export(tmp_path / "new.pt", best=False)
    assert payload["config"]["edit"] == "full"
    old = load_checkpoint(tmp_path / "new.pt")
    del old["config"]["edit"]  # the format written before the option existed
    save_checkpoint(tmp_path / "old.pt", old)
    g = load_generator(tmp_path / "old.pt")
    assert g.config.edit == "full"
    x = _data()[0][:4].to(device)
    with torch.no_grad():
        torch.testing.assert_close(g.to(device)(x, 1), trainer.generator(x, 1), atol=2e-3,
                                   rtol=0)  # fp16
    masked = _masked_trainer(device)
    masked.export(tmp_path / "mask.pt", best=False)
    assert load_generator(tmp_path / "mask.pt").config.edit == "mask"
    # the exported file is a zoo weights file: zoo.load_file and the audit read it
    from captum_cf import zoo

    loaded = zoo.load_file(tmp_path / "new.pt")
    assert isinstance(loaded, type(trainer.generator)) and not loaded.training
    for k, v in trainer.generator.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v.cpu().half().float(), rtol=0,
                                   atol=0)


class _Swapped(_Classifier):
    """The same features with classes 1 and 2 swapped: bright bottom is 1, bright top is 2."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.linear.weight.copy_(self.linear.weight[[0, 2, 1]].clone())


def test_adapt_ganmex_moves_the_edits_to_the_new_classifier_and_leaves_the_original(device):
    trained = _trainer(_Classifier().to(device), device, seed=0)
    trained.fit(15)
    generator = trained.generator.eval()
    next(generator.parameters()).requires_grad_(False)  # a frozen part stays frozen
    flags = {n: p.requires_grad for n, p in generator.named_parameters()}
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    swapped = _Swapped().to(device).train()
    x, y = _data()
    t = random_other_class(y, 3, torch.Generator().manual_seed(5)).to(device)
    x, y = x.to(device), y.to(device)

    def loss(g: GANMEXGenerator) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(swapped.eval()(g(x, t)), t))

    old_loss = loss(generator)
    swapped.train()
    adapted = adapt_ganmex(generator, swapped, x, y, steps=15, config=FAST, seed=1,
                           show_progress=False)
    assert adapted is not generator and not adapted.training
    assert all(p.device == x.device for p in adapted.parameters())
    assert loss(adapted) < 0.5 * old_loss, (old_loss, loss(adapted))
    # the original generator and the classifier are exactly as before
    assert not generator.training
    assert {n: p.requires_grad for n, p in generator.named_parameters()} == flags
    for k, v in generator.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in swapped.parameters())


def test_adapt_ganmex_is_seeded_and_returns_the_best_validated_copy(device):
    generator = _trainer(_Classifier().to(device), device, seed=0).generator
    x, y = (t.to(device) for t in _data())

    def adapt(**kwargs) -> GANMEXGenerator:
        return adapt_ganmex(generator, _Swapped().to(device), x, y, steps=6, config=FAST,
                            seed=2, show_progress=False, **kwargs)

    a, again = adapt(val_images=x, val_labels=y, validate_every=2), adapt(
        val_images=x, val_labels=y, validate_every=2)
    for k, v in a.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    # the same run by hand: a copy of the generator, a critic initialised from the seed
    torch.manual_seed(2)
    critic = GANMEXCritic(TINY)
    manual = GANMEXTrainer(copy.deepcopy(generator), _Swapped().to(device), x, y, x, y,
                           config=FAST, critic=critic, seed=2, validate_every=2)
    manual.fit(6)
    assert manual.best is not None
    for k, v in manual.best_state("generator").items():
        assert torch.equal(v, a.state_dict()[k])
    last = adapt()  # without validation: the last step's weights
    for k, v in manual.generator.state_dict().items():
        assert torch.equal(v, last.state_dict()[k])


def test_adapt_ganmex_rejects_bad_arguments():
    x, y = _data()
    g = GANMEXGenerator(TINY)
    with pytest.raises(TypeError, match="GANMEXGenerator"):
        adapt_ganmex(nn.Linear(2, 2), _Classifier(), x, y)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            adapt_ganmex(g, _Classifier(), x, y, steps=steps)
    with pytest.raises(ValueError, match="together"):
        adapt_ganmex(g, _Classifier(), x, y, steps=2, val_images=x)
    with pytest.raises(ValueError, match="every class"):
        adapt_ganmex(g, _Classifier(), x[y < 2], y[y < 2], steps=2)
    with pytest.raises(ValueError, match="labels are required: the class of each image"):
        adapt_ganmex(g, _Classifier(), x, None, steps=2)



def _aux_pair(
    aux: nn.Module, weight: float, device: torch.device | str = "cpu"
) -> tuple[GANMEXTrainer, GANMEXTrainer]:
    """Twin trainers (same initialisation and seed): with and without the auxiliary term."""
    x, y = _data()
    twins = []
    for cfg, extra in ((dataclasses.replace(FAST, lambda_aux=weight), {"aux_classifier": aux}),
                       (FAST, {})):
        torch.manual_seed(0)
        twins.append(GANMEXTrainer(GANMEXGenerator(TINY), _Classifier().to(device), x, y,
                                   x[:12], y[:12], config=cfg, seed=0, device=device, **extra))
    return twins[0], twins[1]


def test_aux_classifier_term_enters_the_loss_and_the_validation_score(device):
    aux = _Classifier().to(device).train()
    with torch.no_grad():  # a second classifier that disagrees with the first
        aux.linear.weight.copy_(aux.linear.weight.flip(0))
    with_aux, without = _aux_pair(aux, 2.0, device)
    x, c, t, _ = with_aux._batch()
    without._batch()  # keep both trainers' random streams aligned
    with torch.no_grad():
        expected = float(F.cross_entropy(aux(with_aux.generator(x, t)), t))
    a, b = with_aux._generator_step(x, c, t), without._generator_step(x, c, t)
    assert a["g_aux"] == pytest.approx(expected, rel=1e-5) and "g_aux" not in b
    assert a["g_cls"] == pytest.approx(b["g_cls"], rel=1e-6)  # same generator before the step
    moved = [not torch.equal(p, q) for p, q in zip(with_aux.generator.parameters(),
                                                  without.generator.parameters())]
    assert any(moved)  # the auxiliary gradient changed the update
    metrics = with_aux.validate()
    assert metrics["score"] == pytest.approx(
        metrics["flip"] + metrics["nn_flip"] - metrics["l1"] + metrics["aux_flip"])
    assert "aux_flip" not in without.validate()


def test_aux_classifier_is_used_frozen_and_left_untouched(device):
    aux = _Classifier().to(device).train()
    aux.linear.bias.requires_grad_(False)
    before = {k: v.clone() for k, v in aux.state_dict().items()}
    with_aux, _ = _aux_pair(aux, 1.0, device)
    aux.modes.clear()
    with_aux.fit(3)
    assert aux.modes and not any(aux.modes)
    assert aux.training and aux.linear.weight.requires_grad and not aux.linear.bias.requires_grad
    assert aux.linear.weight.grad is None
    assert all(torch.equal(v, before[k]) for k, v in aux.state_dict().items())


def test_aux_classifier_bad_arguments():
    x, y = _data()
    with pytest.raises(ValueError, match="lambda_aux must be >= 0"):
        GANMEXTrainConfig(lambda_aux=-1.0)
    with pytest.raises(ValueError, match="needs an aux_classifier"):
        GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), x, y,
                      config=dataclasses.replace(FAST, lambda_aux=1.0))
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.raises(ValueError, match=r"aux_classifier must return \(1, 3\) logits"):
        GANMEXTrainer(GANMEXGenerator(TINY), _Classifier(), x, y,
                      config=dataclasses.replace(FAST, lambda_aux=1.0), aux_classifier=wrong)
