"""The audited model: weights files, probability outputs, ``.logits`` outputs, method probes."""

from __future__ import annotations

import pickle
import shutil
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
from audit_compare import assert_same_cells
from torch import Tensor

from captum_cf._registry import AuditContext, _Entry
from captum_cf.attr import METHODS
from captum_cf.audit import AuditInputError, audit
from captum_cf.audit.model import check_logits, load_model, logits_model, probe_methods
from captum_cf.cli import main
from captum_cf.zoo import LogitsOf

# --- models -------------------------------------------------------------------------------------


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3))


class Detached(nn.Module):
    """Its output does not depend on the input through autograd: gradient methods cannot run."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.detach())


@dataclass
class Output:
    """What a Hugging Face image classifier returns (a ``ModelOutput``), reduced to its core."""

    logits: Tensor
    hidden_states: Tensor | None = None


class HFStyle(nn.Module):
    """A Hugging Face style classifier: ``forward(pixel_values)`` -> an object with ``.logits``
    (or, with ``as_dict=True``, an ordered dict with ``"logits"``)."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.net, self.as_dict = _net(), as_dict

    def forward(self, pixel_values: Tensor):
        logits = self.net(pixel_values)
        if self.as_dict:
            return OrderedDict(logits=logits, hidden_states=pixel_values)
        return Output(logits=logits, hidden_states=pixel_values)


def _state(model: nn.Module) -> tuple:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [(m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
    )


def _same(a: tuple, b: tuple) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:]


def _ctx(model, x: Tensor) -> AuditContext:
    return AuditContext(model, "custom", None, 3, tuple(x.shape[1:]), device=x.device)


# --- probabilities ------------------------------------------------------------------------------


def test_probabilities_are_detected_and_the_warning_names_the_fix(device) -> None:
    x = torch.rand(4, 1, 8, 8).to(device)
    with pytest.warns(UserWarning, match=r"probabilities.*return the logits"):
        assert check_logits(nn.Sequential(_net(), nn.Softmax(dim=1)).to(device), x) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # logits and log-probabilities: no warning
        assert check_logits(_net().to(device), x) == 3
        assert check_logits(nn.Sequential(_net(), nn.LogSoftmax(dim=1)).to(device), x) == 3
        # non-negative rows that do not sum to 1 are not probabilities
        times2 = nn.Sequential(_net(), nn.Softmax(dim=1), _Times(2.0)).to(device)
        assert check_logits(times2, x) == 3


def test_a_channel_or_size_mismatch_names_the_option(device) -> None:
    rgb_net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3)).to(device)
    with pytest.raises(AuditInputError, match=r"images have 1 channel; .*--channels 3"):
        check_logits(rgb_net, torch.rand(2, 1, 8, 8, device=device))
    # a size mismatch names the size option instead
    fixed = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3)).to(device)
    with pytest.raises(AuditInputError) as info:
        check_logits(fixed, torch.rand(2, 3, 8, 8, device=device))
    assert "the model failed on images of shape (2, 3, 8, 8)" in str(info.value)
    assert "--channels" not in str(info.value)
    assert "the images are 8x8; an image folder is resized" in str(info.value)
    assert "--image-size S" in str(info.value)

    class GreyOnly(nn.Module):  # its own check, whose message does not say "channel"
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

        def forward(self, x: Tensor) -> Tensor:
            if x.shape[1] != 1:
                raise ValueError(f"input must have shape (N, 1, H, W), got {tuple(x.shape)}")
            return self.net(x)

    with pytest.raises(AuditInputError) as info:  # found by trying the grey images
        check_logits(GreyOnly().to(device), torch.rand(2, 3, 8, 8, device=device))
    assert "the model takes 1-channel images and the images have 3 channels" in str(info.value)
    assert "--channels 1" in str(info.value) and "--image-size" not in str(info.value)

    class Fails(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            raise RuntimeError("no weights loaded")

    with pytest.raises(AuditInputError) as info:  # other failures: no hint
        check_logits(Fails(), torch.rand(2, 3, 8, 8, device=device))
    assert str(info.value).endswith("RuntimeError: no weights loaded")


class _Times(nn.Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: Tensor) -> Tensor:
        return x * self.c


def test_the_audit_warns_about_a_softmax_model(device) -> None:
    with pytest.warns(UserWarning, match="probabilities"):
        audit(nn.Sequential(_net(), nn.Softmax(dim=1)).to(device),
              torch.rand(2, 1, 8, 8).to(device), methods=["integrated-gradients"],
              baselines=["zero"], n_steps=2, sanity_n=0)


# --- .logits outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("as_dict", [False, True])
def test_logits_of_unwraps_hugging_face_style_outputs(as_dict: bool, device) -> None:
    hf = HFStyle(as_dict).to(device)
    x = torch.rand(3, 1, 8, 8, device=device)
    assert torch.equal(LogitsOf(hf)(x), hf.net(x))
    assert torch.equal(LogitsOf(hf.net)(x), hf.net(x))  # tensors pass through
    assert logits_model(hf.net, x) is hf.net  # no wrapper where none is needed
    wrapped = logits_model(hf, x)
    assert isinstance(wrapped, LogitsOf) and wrapped.model is hf
    from captum_cf.zoo import Normalized

    norm = Normalized(hf, [0.5], [0.25]).to(device)
    assert torch.equal(norm(x), hf.net((x - 0.5) / 0.25))
    with pytest.raises(TypeError, match="without logits"):
        LogitsOf(nn.Sequential(_Tuple()))(x)


class _Tuple(nn.Module):
    def forward(self, x: Tensor):
        return (x,)


@pytest.mark.parametrize("as_dict", [False, True])
def test_audit_of_a_hugging_face_style_model_equals_the_audit_of_its_logits(
    as_dict, device
) -> None:
    hf = HFStyle(as_dict).to(device)
    x = torch.rand(3, 1, 8, 8).to(device)
    kw = dict(methods=["integrated-gradients", "occlusion"], baselines=["zero", "blur"],
              n_steps=3, sanity_n=2, seed=3)
    before = _state(hf)
    ours, plain = audit(hf, x, **kw), audit(hf.net, x, **kw)
    assert len(ours.cells) == 4
    assert_same_cells(ours, plain, atol=1e-6)
    assert _same(before, _state(hf))
    with pytest.raises(AuditInputError, match=r"LogitsOf"):
        check_logits(hf, x)  # check_logits alone names the wrapper


def test_load_model_builds_a_factory_model_with_logits(tmp_path, device) -> None:
    (tmp_path / "hfmodel.py").write_text(
        "import torch.nn as nn\n"
        "class Out:\n    def __init__(self, logits):\n        self.logits = logits\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n"
        "    def forward(self, x):\n        return Out(self.net(x))\n"
        "def make():\n    return M()\n"
    )
    model, _ = load_model(f"{tmp_path / 'hfmodel.py'}:make", "folder", device=str(device))
    assert all(p.device.type == device.type for p in model.parameters())
    res = audit(model, torch.rand(2, 1, 8, 8).to(device), methods=["deeplift"],
                baselines=["zero"], n_steps=2, sanity_n=0)
    assert res.cells[0].error is None and res.config["num_classes"] == 3
    assert res.config["device"].startswith(device.type)


def test_load_model_reads_a_trainers_weights_file(tmp_path) -> None:
    from captum_cf import zoo

    path = tmp_path / "cls.pt"
    shutil.copy(zoo.entry("digits-cnn").path, path)
    model, name = load_model(str(path), "folder")
    expected = zoo.load("digits-cnn").state_dict()
    assert name == str(path) and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    with pytest.raises(AuditInputError, match="--weights is for a module:factory model"):
        load_model(str(path), "folder", weights=str(path))
    state = tmp_path / "state.pt"
    torch.save(_net().state_dict(), state)
    with pytest.raises(AuditInputError, match="a state dict goes with --model module:factory"):
        load_model(str(state), "folder")
    with pytest.raises(AuditInputError, match="--model must be zoo:NAME, module:factory or a "):
        load_model(str(tmp_path / "missing.pt"), "folder")


def test_a_model_in_training_mode_is_audited_in_eval_mode_and_left_unchanged(device) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).to(device)
    net[1].running_mean.uniform_(-0.2, 0.2)  # statistics a forward in train mode would move
    x = torch.rand(3, 1, 8, 8, device=device)
    kw = dict(methods=["integrated-gradients", "occlusion", "deeplift"], baselines=["zero"],
              n_steps=2, sanity_n=2, seed=1)
    before = _state(net.train())
    in_train = audit(net, x, **kw)
    assert net.training and _same(before, _state(net))
    in_eval = audit(net.eval(), x, **kw)
    assert_same_cells(in_train, in_eval)


# --- the applicability probe --------------------------------------------------------------------


def test_probe_leaves_out_methods_that_fail_with_a_one_line_reason(device) -> None:
    model = Detached().to(device).eval()
    x = torch.rand(4, 1, 8, 8, device=device)
    before, rng = _state(model), torch.get_rng_state()
    ok, skipped = probe_methods(model, ["integrated-gradients", "occlusion", "deeplift"],
                                _ctx(model, x), x)
    assert ok == ["occlusion"]
    assert set(skipped) == {"integrated-gradients", "deeplift"}
    assert all(r.startswith("RuntimeError: ") and "\n" not in r for r in skipped.values())
    assert "not have been used in the graph" in skipped["integrated-gradients"]
    assert _same(before, _state(model)) and torch.equal(rng, torch.get_rng_state())


def test_probe_catches_non_finite_and_misshapen_maps(monkeypatch, device) -> None:
    def nan_maps(ctx):
        return lambda inputs, target, baseline: inputs * float("nan")

    def flat_maps(ctx):
        return lambda inputs, target, baseline: inputs.flatten(1)

    monkeypatch.setitem(METHODS._entries, "nan-maps", _Entry(nan_maps, "", lambda ctx: True))
    monkeypatch.setitem(METHODS._entries, "flat-maps", _Entry(flat_maps, "", lambda ctx: True))
    model, x = _net().to(device).eval(), torch.rand(2, 1, 8, 8).to(device)
    ok, skipped = probe_methods(model, ["nan-maps", "flat-maps", "occlusion"], _ctx(model, x), x)
    assert ok == ["occlusion"]
    assert skipped == {
        "nan-maps": "returned non-finite attributions",
        "flat-maps": "returned maps of shape (1, 64) for images of shape (1, 1, 8, 8) (expected "
                     "(1, 1, 8, 8))",
    }
    with pytest.raises(ValueError, match="n_images"):
        probe_methods(model, ["occlusion"], _ctx(model, x), x, n_images=0)


def test_audit_records_and_prints_the_methods_it_leaves_out(capsys, device) -> None:
    model = Detached().to(device).eval()
    x = torch.rand(3, 1, 8, 8).to(device)
    before = _state(model)
    res = audit(model, x, methods=["integrated-gradients", "occlusion"], baselines=["zero"],
                n_steps=2, sanity_n=0)
    assert [c.method for c in res.cells] == ["occlusion"] and res.cells[0].error is None
    assert res.config["methods"] == ["occlusion"]
    reason = res.config["skipped_methods"]["integrated-gradients"]
    assert reason.startswith("RuntimeError: ")
    err = capsys.readouterr().err
    assert f"method 'integrated-gradients' left out, it fails on this model: {reason}" in err
    assert _same(before, _state(model))
    with pytest.raises(AuditInputError, match="no method applies to this model: deeplift: "):
        audit(model, x, methods=["deeplift"], baselines=["zero"], n_steps=2, sanity_n=0)


def test_a_resnet_style_model_with_reused_relus_keeps_deeplift(device) -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu = nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(inplace=True)
            self.head = nn.Linear(64, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.head(self.relu(self.conv(self.relu(x - 0.5)) + x).flatten(1))

    model = Block().to(device).eval()
    x = torch.rand(2, 1, 8, 8).to(device)
    before = _state(model)
    res = audit(model, x, methods=["deeplift"], baselines=["zero", "blur"], n_steps=2,
                sanity_n=1)
    assert res.config["skipped_methods"] == {} and [c.error for c in res.cells] == [None, None]
    assert _same(before, _state(model)) and model.relu.inplace


# --- weights files ------------------------------------------------------------------------------


def _factory_file(tmp_path) -> str:
    (tmp_path / "netfile.py").write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n"
    )
    return f"{tmp_path / 'netfile.py'}:make"


class _Evil:
    calls: list[str] = []

    def __reduce__(self):
        return (_Evil.calls.append, ("unpickled",))


def _bad_files(tmp_path) -> dict[str, str]:
    files = {
        "model.pt": "a pickled torch.nn.modules.container.Sequential object",
        "evil.pt": "which captum_cf does not unpickle",
        "notes.txt": "not a file written by torch.save",
        "empty.pt": "not a file written by torch.save",
    }
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), tmp_path / "model.pt")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    (tmp_path / "notes.txt").write_text("hello, these are not weights\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    return files


def test_weights_that_are_not_a_state_dict_get_one_line(tmp_path) -> None:
    spec = _factory_file(tmp_path)
    for name, expected in _bad_files(tmp_path).items():
        path = str(tmp_path / name)
        with pytest.raises(AuditInputError) as info:
            load_model(spec, "folder", path)
        msg = str(info.value)
        assert expected in msg and path in msg and "state dict" in msg, msg
        assert "\n" not in msg
    assert _Evil.calls == []  # nothing was unpickled


def test_a_state_dict_with_other_keys_names_them(tmp_path) -> None:
    spec = _factory_file(tmp_path)
    good = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).state_dict()
    torch.save({"module." + k: v for k, v in good.items()}, tmp_path / "dp.pt")
    with pytest.raises(AuditInputError) as info:
        load_model(spec, "folder", str(tmp_path / "dp.pt"))
    msg = str(info.value)
    assert "missing keys 1.weight, 1.bias" in msg and "unexpected keys module.1.weight" in msg
    assert "'module.'" in msg and "\n" not in msg
    torch.save({"1.weight": torch.zeros(2, 64), "1.bias": torch.zeros(3)}, tmp_path / "s.pt")
    with pytest.raises(AuditInputError, match=r"mismatches.*1\.weight \(2, 64\) vs \(3, 64\)"):
        load_model(spec, "folder", str(tmp_path / "s.pt"))


def test_cli_exits_2_with_one_line_for_a_pickled_model(tmp_path, capsys) -> None:
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), tmp_path / "model.pt")
    rc = main(["audit", "--data", "digits", "--model", _factory_file(tmp_path), "--weights",
               str(tmp_path / "model.pt"), "--out", str(tmp_path / "o"), "--n", "2",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "model.pt" in err
    assert "not a whole model" in err and not (tmp_path / "o").exists()


def test_model_help_names_the_file_form(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "path/file.py:factory" in out


def test_the_probe_does_not_change_the_audit_numbers(monkeypatch, device) -> None:
    import captum_cf.audit.model as audit_model

    model, x = _net().to(device).eval(), torch.rand(3, 1, 8, 8).to(device)
    kw = dict(methods=["integrated-gradients", "lime"], baselines=["noise"], n_steps=2,
              sanity_n=0, seed=5)
    probed = audit(model, x, **kw)
    monkeypatch.setattr(audit_model, "applicable_methods", lambda names, *a: (list(names), {}))
    unprobed = audit(model, x, **kw)
    assert_same_cells(probed, unprobed)


def test_the_command_prints_the_audits_warnings_as_one_line_each(
    image_folder, tmp_path, capsys
) -> None:
    from captum_cf.cli import main

    path = tmp_path / "softmax_net.py"
    path.write_text(
        "import torch\nimport torch.nn as nn\n\n\ndef make():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(),\n"
        "                         nn.Linear(4 * 16 * 16, 2), nn.Softmax(dim=1))\n"
    )
    images = image_folder(n_per_class=1, side=16)
    code = main(["audit", "--model", f"{path}:make", "--data", str(images), "--n", "all",
                 "--methods", "occlusion", "--baselines", "zero", "--steps", "2",
                 "--sanity-n", "0", "--no-progress", "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 0
    lines = [ln for ln in err.splitlines() if "probabilities" in ln]
    assert len(lines) == 1 and lines[0].startswith("captum-cf: warning: the model seems to "
                                                   "return probabilities")
    assert "UserWarning" not in err and "warnings.warn" not in err
    # outside the command, Python shows warnings as before
    import warnings

    assert warnings.showwarning.__module__ == "warnings"


# --- labels the model does not predict ----------------------------------------------------------


class _Brightness(nn.Module):
    """Class 1 for bright images, class 0 for dark ones (``swap``: the other way round)."""

    def __init__(self, swap: bool = False, classes: int = 2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(-8.0 if swap else 8.0))
        self.classes = classes

    def forward(self, x: Tensor) -> Tensor:
        bright = (x.mean(dim=(1, 2, 3)) - 0.5) * self.scale
        rest = [torch.zeros_like(bright)] * (self.classes - 2)
        return torch.stack([-bright, bright, *rest], 1)


def _dark_and_bright(n: int = 16) -> torch.utils.data.TensorDataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 8, 8, generator=gen) * 0.4
    labels = (torch.arange(n) >= n // 2).long()
    images[labels == 1] += 0.6
    return torch.utils.data.TensorDataset(images, labels)


def _agreement_warnings(model: nn.Module, data, device) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audit(model.to(device), data, methods=["integrated-gradients"], baselines=["zero"],
              n_steps=2, sanity_n=0, device=device)
    return [str(w.message) for w in caught if "audited images" in str(w.message)]


def test_a_model_that_does_not_predict_the_labels_is_told_before_the_grid(device) -> None:
    """A factory run without its weights gives an untrained model, audited for an hour without a
    word: its predictions on the audited images are compared with their labels first."""
    data = _dark_and_bright()
    told = _agreement_warnings(_Brightness(swap=True), data, device)
    assert len(told) == 1
    assert told[0].startswith("the model puts 0% of 16 audited images in their folder's class "
                              "(guessing the largest class: 50%)")
    assert "Is the model trained" in told[0] and "--weights" in told[0]
    # a model that predicts the labels, and labels that cannot be its classes: nothing
    assert _agreement_warnings(_Brightness(), data, device) == []
    unlabelled = torch.utils.data.TensorDataset(data.tensors[0], data.tensors[1] + 5)
    assert _agreement_warnings(_Brightness(swap=True, classes=3), unlabelled, device) == []
    one_class = torch.utils.data.TensorDataset(data.tensors[0][8:], data.tensors[1][8:])
    assert _agreement_warnings(_Brightness(), one_class, device) == []


def test_the_command_tells_an_untrained_model_in_one_line(tmp_path, capsys) -> None:
    from PIL import Image

    root = tmp_path / "photos"
    for name, level in (("dark", 40), ("light", 215)):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), level + i).save(root / name / f"{i}.png")
    model_file = tmp_path / "net.py"
    model_file.write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self, classes):\n        super().__init__()\n"
        "        self.scale = nn.Parameter(torch.tensor(-8.0))\n        self.classes = classes\n\n"
        "    def forward(self, x):\n        b = (x.mean(dim=(1, 2, 3)) - 0.5) * self.scale\n"
        "        return torch.stack([-b, b] + [torch.zeros_like(b)] * (self.classes - 2), 1)\n\n\n"
        "def make():\n    return Net(2)\n\n\ndef make3():\n    return Net(3)\n"
    )
    args = ["--data", str(root), "--channels", "1", "--n", "all", "--methods",
            "integrated-gradients", "--baselines", "zero", "--steps", "2", "--sanity-n", "0",
            "--no-progress"]
    assert main(["audit", "--model", f"{model_file}:make", *args,
                 "--out", str(tmp_path / "r1")]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "audited images" in ln]
    assert len(lines) == 1 and lines[0].startswith(
        "captum-cf: warning: the model puts 0% of 8 audited images in their folder's class "
        "(guessing the largest class: 50%); it predicts those of 'dark' mostly as class 1, "
        "those of 'light' mostly as class 0.")
    # two class folders for a 3-class model: its classes are not the folders', no check
    assert main(["audit", "--model", f"{model_file}:make3", *args,
                 "--out", str(tmp_path / "r2")]) == 0
    assert "audited images" not in capsys.readouterr().err


def test_images_of_another_dtype_follow_the_dtype_rule(device) -> None:
    """float64 images and a float32 model: the dtype rule's TypeError naming both dtypes, not
    torch's "Input type (double) and bias type (float)" from inside the model."""
    from captum_cf.audit import AuditDtypeError

    model = _net().to(device)
    with pytest.raises(TypeError, match=r"images has dtype torch.float64 but the model computes "
                       r"in torch.float32") as info:
        audit(model, torch.rand(2, 1, 8, 8, dtype=torch.float64).to(device),
              methods=["integrated-gradients"], baselines=["zero"], n_steps=2, sanity_n=0)
    assert isinstance(info.value, AuditDtypeError) and isinstance(info.value, AuditInputError)
