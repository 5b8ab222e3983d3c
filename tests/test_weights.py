"""Weights files that are not what they should be: one-line ValueErrors, exit 2, no unpickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from captum_cf import zoo
from captum_cf._weights import WeightsFileError, load_state_checked, load_weights_file
from captum_cf.cli import main
from captum_cf.inpainters import LearnedInpainter
from captum_cf.training.checkpoint import load_checkpoint, save_checkpoint

_UNPICKLED: list[str] = []


class _Evil:
    def __reduce__(self):  # unpickling would call _UNPICKLED.append
        return (_UNPICKLED.append, ("unpickled",))


def _bad_files(folder: Path) -> dict[str, str]:
    """name -> what the one-line message must say about the file."""
    torch.save(nn.Linear(2, 2), folder / "whole-model.pt")
    with open(folder / "object.pkl", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    torch.save({"format": 1, "metrics": _Evil()}, folder / "evil-zip.pt")
    (folder / "notes.txt").write_text("not weights\n")
    (folder / "empty.pt").write_bytes(b"")
    torch.save({"w": torch.ones(3)}, folder / "full.pt")
    (folder / "truncated.pt").write_bytes((folder / "full.pt").read_bytes()[:100])
    (folder / "a-folder.pt").mkdir()
    return {
        "whole-model.pt": "holds a pickled torch.nn.modules.linear.Linear object",
        "object.pkl": "which captum_cf does not unpickle (weights_only=True)",
        "evil-zip.pt": "which captum_cf does not unpickle (weights_only=True)",
        "notes.txt": "is not a file written by torch.save",
        "empty.pt": "is not a file written by torch.save",
        "truncated.pt": "is not a file written by torch.save, or it is damaged",
        "a-folder.pt": "is not a file",
    }


def test_load_weights_file_refuses_every_kind_of_bad_file(tmp_path: Path) -> None:
    for name, said in _bad_files(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(WeightsFileError) as info:
            load_weights_file(path, "a state dict")
        msg = str(info.value)
        assert isinstance(info.value, ValueError) and "\n" not in msg, msg
        assert msg.startswith(str(path)) and said in msg and msg.endswith("it must be a state dict")
    assert _UNPICKLED == []
    with pytest.raises(FileNotFoundError, match="nope.pt not found; it must be a state dict"):
        load_weights_file(tmp_path / "nope.pt", "a state dict")
    assert torch.equal(load_weights_file(tmp_path / "full.pt", "x")["w"], torch.ones(3))


@pytest.mark.parametrize(
    "loader",
    [zoo.load_file, zoo.read_weights, LearnedInpainter.load, load_checkpoint],
    ids=["zoo.load_file", "zoo.read_weights", "LearnedInpainter.load", "load_checkpoint"],
)
def test_every_loader_raises_a_one_line_value_error(tmp_path: Path, loader) -> None:
    for name in _bad_files(tmp_path):
        with pytest.raises(ValueError) as info:
            loader(tmp_path / name)
        msg = str(info.value)
        assert str(tmp_path / name) in msg and "\n" not in msg and "it must be a" in msg, msg
    assert _UNPICKLED == []


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_load_state_checked_names_keys_and_copies_nothing_on_refusal() -> None:
    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(4)])
    before = _snapshot(net)
    state = {k: torch.zeros_like(v) for k, v in before.items()}
    # torch's own load_state_dict copies the matching tensors before it complains
    partial = {**state, "extra": torch.zeros(1)}
    with pytest.raises(WeightsFileError) as info:
        load_state_checked(net, {k: v for k, v in partial.items() if k != "3.bias"}, "f.pt")
    assert str(info.value) == (
        "f.pt does not fit Sequential: missing keys 3.bias; unexpected keys extra"
    )
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    prefixed = {f"module.{k}": v for k, v in state.items()}
    with pytest.raises(WeightsFileError) as info:
        load_state_checked(net, prefixed, "dp.pt")
    msg = str(info.value)
    assert "missing keys 0.weight, 0.bias, 1.weight, 1.bias (+4 more)" in msg
    assert "unexpected keys module.0.weight, module.0.bias, module.1.weight, module.1.bias " \
           "(+4 more)" in msg and "DataParallel" in msg
    # the reverse: the bare network's weights for a wrapped model (Normalized(net) is model.*)
    wrapped = nn.Sequential()
    wrapped.add_module("model", nn.Sequential(*[nn.Linear(2, 2) for _ in range(4)]))
    with pytest.raises(WeightsFileError, match=r"the model's keys are the file's under "
                                               r"'model\.': the file holds the inner"):
        load_state_checked(wrapped, state, "bare.pt")
    with pytest.raises(WeightsFileError) as info:  # other keys besides: no prefix hint
        load_state_checked(wrapped, {**state, "extra": torch.zeros(1)}, "bare.pt")
    assert "under" not in str(info.value)
    # Normalized(net): model.* beside its own mean and std, both ways
    from captum_cf.zoo.models import Normalized, SmallCNN

    bare, normalized = SmallCNN(), Normalized(SmallCNN(), [0.5], [0.25])
    with pytest.raises(WeightsFileError, match=r"the model's keys are the file's under 'model\.'"):
        load_state_checked(normalized, bare.state_dict(), "bare.pt")
    with pytest.raises(WeightsFileError, match=r"the file's keys are the model's under 'model\.'"):
        load_state_checked(bare, normalized.state_dict(), "wrapped.pt")
    # the wrapper's own keys may outnumber the wrapped network's: every prefix is tried
    from captum_cf._weights import _prefix_hint

    hint = _prefix_hint(["weight", "bias"],
                        ["model.weight", "model.bias", "norm.mean", "norm.std", "norm.scale"])
    assert "under 'model.'" in hint
    with pytest.raises(WeightsFileError, match=r"mismatches \(file vs model\) 0\.weight \(3, 2\)"):
        load_state_checked(net, {**state, "0.weight": torch.zeros(3, 2)}, "s.pt")
    with pytest.raises(WeightsFileError, match="holds a list, expected a state dict"):
        load_state_checked(net, [1, 2], "l.pt")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    load_state_checked(net, state, "ok.pt")
    assert all(bool((v == 0).all()) for v in net.state_dict().values())


def test_zoo_file_with_other_keys_names_them(tmp_path: Path) -> None:
    payload = zoo.read_weights(zoo.entry("digits-cnn").path)
    payload["state_dict"] = {("x." + k): v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match=r"renamed\.pt does not fit Normalized: missing keys "
                                         r"mean, std, .*unexpected keys x\.mean, x\.std"):
        zoo.load_file(tmp_path / "renamed.pt")


def test_train_resume_from_a_bad_checkpoint_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    torch.save(nn.Linear(2, 2), tmp_path / "model.pt")
    # the classifier trainer resumes an existing --checkpoint (others need --resume)
    rc = main(["train", "classifier", "--data", "digits", "--out", str(tmp_path / "i.pt"),
               "--checkpoint", str(tmp_path / "model.pt"), "--limit", "8", "--epochs", "1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"captum-cf: error: {tmp_path / 'model.pt'} holds a pickled ")
    assert "captum_cf checkpoint" in err and not (tmp_path / "i.pt").exists()
    save_checkpoint(tmp_path / "old.ckpt", {"epoch": 0})
    (tmp_path / "old.ckpt").write_text("overwritten by an editor\n")
    rc = main(["train", "classifier", "--data", "digits", "--out", str(tmp_path / "c.pt"),
               "--checkpoint", str(tmp_path / "old.ckpt"), "--limit", "8", "--epochs", "1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "old.ckpt is not a file written by torch.save" in err
