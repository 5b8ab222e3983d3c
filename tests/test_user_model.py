"""``module:factory`` specs (``captum-cf audit --model``, the trainers' ``--classifier``)."""

from __future__ import annotations

import os
import sys

import pytest
import torch.nn as nn

from captum_cf._user_model import build_factory_model, is_factory_spec


def test_a_module_in_the_current_folder_is_found_as_the_console_script_runs(
    tmp_path, monkeypatch
) -> None:
    # the `captum-cf` script has its own folder on sys.path, not the current one
    (tmp_path / "own_net_for_spec_test.py").write_text(
        "import torch.nn as nn\n\ndef make():\n    return nn.Linear(3, 2)\n"
    )
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", cwd)])
    monkeypatch.delitem(sys.modules, "own_net_for_spec_test", raising=False)
    model = build_factory_model("own_net_for_spec_test:make")
    assert isinstance(model, nn.Linear) and sys.path[0] == cwd
    monkeypatch.delitem(sys.modules, "own_net_for_spec_test", raising=False)
    # a module that is nowhere still fails with its name
    with pytest.raises(ValueError, match="No module named 'no_such_net_module'"):
        build_factory_model("no_such_net_module:make")


def test_factory_specs_are_told_from_zoo_names_and_files(tmp_path) -> None:
    existing = tmp_path / "weights:v1.pt"
    existing.write_bytes(b"")
    assert is_factory_spec("net.py:make") and is_factory_spec("pkg.models:make")
    assert not is_factory_spec("zoo:digits-cnn") and not is_factory_spec(str(existing))
    assert not is_factory_spec("weights.pt")


def test_a_model_file_imports_the_modules_beside_it(tmp_path, monkeypatch) -> None:
    """``--model a/net.py:make`` where net.py does ``from blocks_for_spec_test import ...``: its
    folder is importable while it runs (it was ModuleNotFoundError), and a second model file
    whose folder has a module of the same name gets its own (not the first one's, cached)."""
    for name, out in (("a", 3), ("b", 5)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "blocks_for_spec_test.py").write_text(
            f"import torch.nn as nn\n\nOUT = {out}\n\nclass Tiny(nn.Linear):\n    pass\n")
        (folder / "net.py").write_text(
            "from blocks_for_spec_test import OUT, Tiny\n\ndef make():\n"
            "    return Tiny(3, OUT)\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    path_before = list(sys.path)
    monkeypatch.chdir(tmp_path)
    first = build_factory_model("a/net.py:make")
    second = build_factory_model("b/net.py:make")
    assert type(first).__name__ == "Tiny" and first.out_features == 3
    assert second.out_features == 5
    # sys.path and sys.modules as they were
    assert sys.path == path_before and "blocks_for_spec_test" not in sys.modules


def test_a_half_precision_factory_is_told_to_return_a_float32_model(tmp_path, capsys) -> None:
    # the dtype rule's advice, "convert them with .to(torch.float16)", cannot be followed on
    # the command line, which reads the images itself
    (tmp_path / "half.py").write_text(
        "import torch.nn as nn\n\ndef make():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10)).half()\n")
    from captum_cf.cli import main

    code = main(["audit", "--model", f"{tmp_path / 'half.py'}:make", "--data", "digits",
                 "--n", "2", "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "computes in torch.float16: the command reads the images as float32, so return " \
        "the model in float32 from the --model factory (model.float())" in err
