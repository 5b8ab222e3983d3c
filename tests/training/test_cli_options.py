"""Options every ``captum-cf train`` command shares: errors come before any data is read."""

from __future__ import annotations

import pytest
import torch

from captum_cf.cli import main

COMMANDS = ["classifier", "robust", "inpainter", "ganmex", "exaggeration"]


@pytest.mark.parametrize("what", COMMANDS)
def test_shared_options_reject_bad_values_with_one_line(what: str, tmp_path, capsys) -> None:
    base = ["train", what, "--out", str(tmp_path / "x.pt"), "--no-progress"]
    assert main([*base, "--data", "digits", "--amp", "bf16"]) == 2
    assert "amp='bf16' (--amp bf16) needs a CUDA device" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path / "missing")]) == 2
    assert "or an image folder DIR/<class>/<image>" in capsys.readouterr().err
    assert main([*base, "--data", "digits", "--workers", "-1"]) == 2
    assert "workers must be an int >= 0, got -1" in capsys.readouterr().err
    assert main([*base, "--data", "digits", "--image-size", "16", "--resize", "20"]) == 2
    assert "resize applies to an image folder, not to 'digits'" in capsys.readouterr().err
    (tmp_path / "photos" / "a").mkdir(parents=True)
    for flags, message in ((["--resize", "20"], "resize 20 needs an image size"),
                           (["--image-size", "16", "--resize", "8"],
                            "resize (8) must be >= the image size (16)")):
        assert main([*base, "--data", str(tmp_path / "photos"), *flags]) == 2
        assert message in capsys.readouterr().err
    for flag in ("--batch-size", "--checkpoint-every", "--image-size"):
        assert main([*base, "--data", "digits", flag, "0"]) == 2
        assert f"{flag} must be >= 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--data", "digits", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]  # nothing written
