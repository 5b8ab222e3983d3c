"""``save_checkpoint``: atomic, and the same state gives the same bytes whatever the file name."""

from __future__ import annotations

import torch

from captum_cf.training.checkpoint import load_checkpoint, save_checkpoint


def test_same_state_same_bytes_under_any_name(tmp_path, device) -> None:
    state = {"weights": torch.arange(6.0).view(2, 3).to(device), "step": 3, "name": "x"}
    a, b = tmp_path / "first.pt", tmp_path / "sub" / "other-name.ckpt"
    save_checkpoint(a, state)
    save_checkpoint(b, state)
    assert a.read_bytes() == b.read_bytes()  # a rerun writes an identical file
    loaded = load_checkpoint(b)
    assert loaded["weights"].device.type == "cpu"  # load_checkpoint maps to the CPU
    assert torch.equal(loaded["weights"], state["weights"].cpu()) and loaded["step"] == 3
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []  # no temporary file left
    save_checkpoint(a, {**state, "step": 4})
    assert a.read_bytes() != b.read_bytes() and load_checkpoint(a)["step"] == 4
