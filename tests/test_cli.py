"""The ``captum-cf`` command, run in-process through ``captum_cf.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pytest

import captum_cf
from captum_cf import zoo
from captum_cf.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"captum-cf {captum_cf.__version__}"


# --- train classifier ---------------------------------------------------------------------------


def test_train_classifier_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "digits.pt"
    code = main(["train", "classifier", "--data", "digits", "--out", str(out), "--epochs", "1",
                 "--limit", "64", "--seed", "3", "--no-progress"])
    assert code == 0
    payload = zoo.read_weights(out)
    assert payload["metrics"]["seed"] == 3 and payload["metrics"]["epochs"] == 1
    assert f"test accuracy {payload['metrics']['test_accuracy']:.4f}" in capsys.readouterr().out
    images = captum_cf.datasets.load_digits("test").tensors[0][:2]
    assert zoo.load_file(out)(images).shape == (2, 10)


def test_train_classifier_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.pt")
    assert main(["train", "classifier", "--data", "digits", "--out", out, "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
    # --data is digits, shapes or an existing image folder; anything else: one line, exit 2
    assert main(["train", "classifier", "--data", "mnist", "--out", out]) == 2
    assert "an image folder DIR/<class>/<image>, got 'mnist'" in capsys.readouterr().err
    assert not Path(out).exists()
