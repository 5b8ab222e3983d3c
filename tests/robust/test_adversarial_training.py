"""PGD attack and adversarial training: the threat model, learning, exact resume, the CLI."""

from __future__ import annotations

import pytest
import torch
from simulated_device import PUBLIC_TRAINERS
from torch import nn

from captum_cf.cli import main
from captum_cf.robust import adversarial_train, pgd_attack, robust_accuracy


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1 = bright left half, class 0 = bright right half, plus noise."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = 0.2 * torch.rand(n, 1, 4, 4, generator=g)
    x[y == 1, :, :, :2] += 0.7
    x[y == 0, :, :, 2:] += 0.7
    return x.clamp(0, 1), y


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_respects_threat_model_and_raises_loss(norm: str, device) -> None:
    model, (x, y) = _model().to(device), _data()
    x, y = x.to(device), y.to(device)
    eps = 0.5 if norm == "l2" else 0.05
    adv = pgd_attack(model, x, y, norm, eps, steps=10, generator=torch.Generator().manual_seed(0))
    assert adv.device == device
    d = (adv - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().amax(1)
    assert (size <= eps + 1e-5).all() and (adv >= 0).all() and (adv <= 1).all()
    ce = nn.functional.cross_entropy
    assert float(ce(model(adv), y)) > float(ce(model(x), y))


def test_adversarial_training_learns_and_is_robust(device) -> None:
    model, data = _model(1).to(device), tuple(t.to(device) for t in _data())
    model.eval()
    history = adversarial_train(model, data, eps=0.5, steps=60, attack_steps=3, batch_size=8,
                                lr=1e-2, log_every=20)
    assert [h["step"] for h in history] == [20, 40, 60]
    assert history[-1]["loss"] < history[0]["loss"]
    assert not model.training  # mode restored
    assert all(p.device == device for p in model.parameters())  # trained where it lies
    clean, robust = robust_accuracy(model, *data, eps=0.5, steps=10)
    assert clean == 1.0 and robust >= 0.9


class _Interrupted(nn.Module):
    """The model, raising KeyboardInterrupt at forward call number ``stop_at`` (a crash)."""

    def __init__(self, seed: int, stop_at: int | None = None) -> None:
        super().__init__()
        self.net, self.calls, self.stop_at = _model(seed), 0, stop_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.net(x)


def test_checkpoint_resume_is_exact(tmp_path, device) -> None:
    data = _data()
    kw = {"eps": 0.5, "steps": 7, "attack_steps": 2, "batch_size": 8, "log_every": 1}
    straight = _Interrupted(1).to(device)
    h1 = adversarial_train(straight, data, **kw)
    ckpt = tmp_path / "adv.ckpt"
    # 3 forward calls per step: dies in step 6
    crashing = _Interrupted(1, stop_at=3 * 5 + 1).to(device)
    with pytest.raises(KeyboardInterrupt):
        adversarial_train(crashing, data, checkpoint=ckpt, checkpoint_every=2, **kw)
    assert crashing.training is True  # mode restored after the crash (it was train mode)
    # other initial weights: everything must come from the checkpoint
    resumed = _Interrupted(5).to(device)
    h2 = adversarial_train(resumed, data, checkpoint=ckpt, **kw)  # resumes at step 4, mid-epoch
    assert [h["loss"] for h in h2] == [h["loss"] for h in h1]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert a.device == device and torch.equal(a, b)


def test_bad_input() -> None:
    model, (x, y) = _model(), _data()
    with pytest.raises(ValueError, match="norm"):
        adversarial_train(model, (x, y), norm="l1")
    with pytest.raises(ValueError, match="eps"):
        adversarial_train(model, (x, y), eps=0)
    with pytest.raises(ValueError, match="batch_size"):
        adversarial_train(model, (x, y), batch_size=100)
    with pytest.raises(ValueError, match="labels"):
        adversarial_train(model, (x, y.float()))
    with pytest.raises(ValueError, match="dataset images must be images in"):
        adversarial_train(model, (x + 1, y))
    with pytest.raises(TypeError, match="model"):
        adversarial_train(lambda v: v, (x, y))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        pgd_attack(model, x, y, steps=0)


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_train_robust(tmp_path, capsys, device) -> None:
    from captum_cf import zoo

    out = tmp_path / "robust.pt"
    code = main(["train", "robust", "--data", "digits", "--out", str(out), "--steps", "2",
                 "--attack-steps", "1", "--limit", "64", "--no-progress",
                 "--device", device.type])
    assert code == 0 and "robust accuracy" in capsys.readouterr().out
    model = zoo.load_file(out)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    metrics = zoo.read_weights(out)["metrics"]
    assert metrics["steps"] == 2 and 0 <= metrics["robust_accuracy"] <= metrics["test_accuracy"]
    assert zoo.read_weights(out)["config"]["pool"] == "max"  # as the shipped weights
    assert main(["train", "robust", "--data", "digits", "--out", str(out), "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err


def _lin() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()


@pytest.mark.parametrize("inputs, labels, kwargs, error, message", [
    (torch.full((2, 1, 4, 4), float("nan")), [0, 1], {}, ValueError, "inputs contains NaN"),
    (torch.rand(2, 1, 4, 4) * 3, [0, 1], {}, ValueError, r"inputs must be images in \[0, 1\]"),
    (torch.rand(0, 1, 4, 4), [], {}, ValueError, "inputs is empty"),
    (torch.rand(2, 1, 4, 4), [0, 1], {"step_size": -0.1}, ValueError, "step_size must be"),
    ((torch.rand(2, 1, 4, 4) * 255).to(torch.uint8), [0, 1], {}, TypeError,
     "inputs must be a floating-point tensor"),
    (torch.rand(2, 1, 4, 4).double(), [0, 1], {}, TypeError, "inputs has dtype torch.float64"),
    (torch.rand(2, 1, 4, 4), [0, 3], {}, ValueError, r"labels must be class indices in \[0, 3\)"),
    (torch.rand(2, 1, 4, 4), [0, -1], {}, ValueError, "labels must be class indices"),
    (torch.rand(2, 1, 4, 4), [0, 1, 2], {}, ValueError, "labels must have one entry per example"),
])
def test_pgd_attack_rejects_bad_input(
    inputs: torch.Tensor, labels: list, kwargs: dict, error: type, message: str
) -> None:
    model = _lin()
    with pytest.raises(error, match=message):
        pgd_attack(model, inputs, torch.tensor(labels, dtype=torch.long), steps=2, **kwargs)


def test_pgd_attack_accepts_an_int_label_like_a_tensor_of_it(device) -> None:
    model, x = _lin().to(device), torch.rand(2, 1, 4, 4).to(device)
    a = pgd_attack(model, x, 1, steps=2, random_start=False, eps=0.3)
    b = pgd_attack(model, x, torch.tensor([1, 1]), steps=2, random_start=False, eps=0.3)
    assert a.device == device and b.device == device
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_robust_accuracy_rejects_bad_batch_size_and_labels() -> None:
    model, x = _lin(), torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        robust_accuracy(model, x, torch.tensor([0, 1]), batch_size=0)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\)"):
        robust_accuracy(model, x, torch.tensor([0, 7]), steps=1)


def test_adversarial_train_names_attack_steps() -> None:
    data = (torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="attack_steps must be an int >= 1"):
        adversarial_train(_lin(), data, attack_steps=0, steps=1, batch_size=4)


def test_pgd_attack_puts_back_the_batchnorm_statistics_of_a_model_in_train_mode(device) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                          nn.Linear(8, 2)).to(device).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 1, 4, 4, device=device)
    adv = pgd_attack(model, x, torch.tensor([0, 1, 0, 1]), eps=0.5, steps=3)
    assert not torch.equal(adv, x)  # attacked (in train mode, as documented)
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
