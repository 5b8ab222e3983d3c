"""``captum-cf train exaggeration`` in-process, and the shipped zoo generator's file."""

from __future__ import annotations

import pytest
import torch
from simulated_device import PUBLIC_TRAINERS

from captum_cf import cli, zoo
from captum_cf.generative.exaggeration import ExaggerationGenerator


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_trains_resumes_and_writes_zoo_file(tmp_path, capsys, device) -> None:
    out = tmp_path / "gen.pt"
    args = ["train", "exaggeration", "--classifier", "zoo:digits-cnn", "--data", "digits",
            "--positive", "8", "--device", device.type, "--out", str(out), "--steps", "1",
            "--limit", "40", "--no-progress"]
    assert cli.main(args) == 0
    assert "test compatibility r" in capsys.readouterr().out
    gen = zoo.load_file(out)
    assert isinstance(gen, ExaggerationGenerator) and not gen.training
    assert gen.config.positive_class == 8
    payload = zoo.read_weights(out)
    assert payload["arch"] == "exaggeration-generator" and payload["metrics"]["steps"] == 1
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values()
               if v.is_floating_point())
    # the checkpoint next to --out exists: a second run must ask for --resume
    assert cli.main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*args[:-5], "--steps", "2", "--limit", "40", "--no-progress",
                     "--resume"]) == 0
    assert zoo.read_weights(out)["metrics"]["steps"] == 2


def test_cli_bad_arguments(tmp_path, capsys) -> None:
    base = ["train", "exaggeration", "--data", "digits", "--out", str(tmp_path / "g.pt")]
    assert cli.main([*base, "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert cli.main([*base, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume: the checkpoint" in err and "g.pt.ckpt does not exist" in err
    assert cli.main([*base, "--positive", "12", "--steps", "1", "--limit", "20"]) == 2
    assert "--positive) must be one of the data's classes 0..9, got 12" in capsys.readouterr().err


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_aux_classifier(tmp_path, capsys, device) -> None:
    out = tmp_path / "aux.pt"
    base = ["train", "exaggeration", "--data", "digits", "--out", str(out), "--steps", "1",
            "--limit", "40", "--device", device.type, "--no-progress"]
    assert cli.main([*base, "--aux-weight", "3"]) == 2
    assert "--aux-weight needs --aux-classifier" in capsys.readouterr().err
    assert cli.main([*base, "--aux-classifier", "zoo:digits-cnn-robust", "--aux-weight",
                     "3"]) == 0
    metrics = zoo.read_weights(out)["metrics"]
    assert metrics["aux_classifier"] == "zoo:digits-cnn-robust"
    assert metrics["train_config"]["lambda_aux"] == 3.0


@pytest.mark.skipif(not zoo.entry("digits-exaggeration").path.is_file(),
                    reason="digits-exaggeration weights not shipped")
def test_shipped_weights_file(device) -> None:
    payload = zoo.read_weights(zoo.entry("digits-exaggeration").path)
    assert payload["config"]["positive_class"] == 8 and payload["config"]["num_bins"] == 10
    assert payload["metrics"]["test_r"] >= zoo.entry("digits-exaggeration").expected
    gen = zoo.load("digits-exaggeration").to(device)
    x = torch.rand(2, 1, 32, 32).to(device)
    out = gen(x, 9)
    assert out.shape == (2, 1, 32, 32) and out.device == x.device


def test_cli_l1_and_realism_weights(tmp_path, capsys) -> None:
    out = tmp_path / "l1.pt"
    base = ["train", "exaggeration", "--data", "digits", "--out", str(out), "--steps", "1",
            "--limit", "40", "--no-progress"]
    assert cli.main([*base, "--lambda-l1", "-1"]) == 2
    assert "--lambda-l1: lambda_l1 must be >= 0 and finite" in capsys.readouterr().err
    assert cli.main([*base, "--lambda-real", "nan"]) == 2
    assert "--lambda-real: lambda_real must be >= 0 and finite" in capsys.readouterr().err
    assert cli.main([*base, "--lambda-cyc", "-3"]) == 2
    assert "--lambda-cyc: lambda_cyc must be >= 0 and finite" in capsys.readouterr().err
    assert cli.main([*base, "--critic-steps", "0"]) == 2
    assert "--critic-steps: critic_steps must be an int >= 1" in capsys.readouterr().err
    assert cli.main([*base, "--lambda-step", "-2"]) == 2
    assert "--lambda-step: lambda_step must be >= 0 and finite" in capsys.readouterr().err
    assert cli.main([*base, "--lambda-cls", "nan"]) == 2
    assert "--lambda-cls: lambda_cls must be >= 0 and finite" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main([*base, "--lambda-l1", "4", "--lambda-real", "0.5", "--lambda-cyc", "1",
                     "--critic-steps", "2", "--lambda-step", "7", "--lambda-cls", "20"]) == 0
    train_config = zoo.read_weights(out)["metrics"]["train_config"]
    assert train_config["lambda_l1"] == 4.0 and train_config["lambda_real"] == 0.5
    assert train_config["lambda_cyc"] == 1.0 and train_config["critic_steps"] == 2
    assert train_config["lambda_step"] == 7.0 and train_config["lambda_cls"] == 20.0


def test_cli_conditioning_and_real_temperature(tmp_path, capsys) -> None:
    out = tmp_path / "onehot.pt"
    base = ["train", "exaggeration", "--data", "digits", "--out", str(out), "--steps", "1",
            "--limit", "40", "--no-progress"]
    assert cli.main([*base, "--real-temperature", "0"]) == 2
    assert "--real-temperature: real_temperature must be > 0" in capsys.readouterr().err
    assert cli.main([*base, "--cls-temperature", "inf"]) == 2
    assert "--cls-temperature: cls_temperature must be > 0" in capsys.readouterr().err
    assert cli.main([*base, "--aux-temperature", "-1"]) == 2
    assert "--aux-temperature: aux_temperature must be > 0" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main([*base, "--conditioning", "onehot", "--critic-conditioning", "onehot",
                     "--real-temperature", "3", "--cls-temperature", "2",
                     "--aux-classifier", "zoo:digits-cnn-robust", "--aux-temperature", "1.5"]) == 0
    payload = zoo.read_weights(out)
    assert payload["config"]["conditioning"] == "onehot"
    assert payload["config"]["critic_conditioning"] == "onehot"
    assert payload["metrics"]["train_config"]["real_temperature"] == 3.0
    assert payload["metrics"]["train_config"]["cls_temperature"] == 2.0
    assert payload["metrics"]["train_config"]["aux_temperature"] == 1.5
    gen = zoo.load_file(out)  # the stored config rebuilds one scale and shift per bin
    assert gen.config.conditioning == "onehot" and gen.enc0.norm.gamma.shape == (10, 16)
    assert torch.equal(gen.enc0.norm.gamma.half(), payload["state_dict"]["enc0.norm.gamma"])


@pytest.mark.no_simdev(PUBLIC_TRAINERS)
def test_cli_generator_and_critic_sizes(tmp_path, capsys, device) -> None:
    out = tmp_path / "wide.pt"
    base = ["train", "exaggeration", "--data", "digits", "--out", str(out), "--steps", "1",
            "--limit", "40", "--device", device.type, "--no-progress"]
    assert cli.main([*base, "--base-channels", "0"]) == 2
    assert "--base-channels: base_channels must be an int >= 1" in capsys.readouterr().err
    assert cli.main([*base, "--critic-channels", "-4"]) == 2
    assert "--critic-channels: critic_channels must be an int >= 1" in capsys.readouterr().err
    assert cli.main([*base, "--residual-blocks", "-1"]) == 2
    assert "--residual-blocks: residual_blocks must be an int >= 0" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main([*base, "--base-channels", "8", "--residual-blocks", "3",
                     "--critic-channels", "12"]) == 0
    payload = zoo.read_weights(out)
    assert payload["config"]["base_channels"] == 8 and payload["config"]["residual_blocks"] == 3
    assert payload["config"]["critic_channels"] == 12
    gen = zoo.load_file(out)  # the stored sizes rebuild the generator
    assert gen.enc0.conv.out_channels == 8
    assert torch.equal(gen.enc0.norm.gamma.half(), payload["state_dict"]["enc0.norm.gamma"])
    blocks = {k.split(".")[1] for k in payload["state_dict"] if k.startswith("blocks.")}
    assert len(blocks) == 3
