"""``captum-cf train``: every sub-command takes ``--checkpoint-every`` and honours it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from captum_cf import cli
from captum_cf.cli import main

# sub-command -> (module of its training function, function name)
_FUNCTIONS = {
    "classifier": ("captum_cf.zoo.train", "train_classifier"),
    "robust": ("captum_cf.zoo.robust", "train_robust_classifier"),
    "ganmex": ("captum_cf.zoo.generators", "train_ganmex"),
    "exaggeration": ("captum_cf.zoo.exaggeration", "train_exaggeration"),
    "inpainter": ("captum_cf.zoo.inpainters", "train_inpainter"),
}


class _Called(BaseException):  # BaseException: the commands catch ValueError & co. only
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.kwargs = kwargs


def test_every_train_command_is_covered() -> None:
    import captum_cf._cli_train  # noqa: F401  (the sub-commands register on import)

    assert set(cli.TRAIN_COMMANDS) == set(_FUNCTIONS)


@pytest.mark.parametrize("command", sorted(_FUNCTIONS))
def test_checkpoint_every_reaches_the_trainer(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module, name = _FUNCTIONS[command]

    def fake(*args: Any, **kwargs: Any) -> None:
        raise _Called(kwargs)

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    with pytest.raises(_Called) as called:
        main(["train", command, "--data", "digits", "--out", str(tmp_path / "w.pt"),
              "--checkpoint-every", "7", "--no-progress"])
    assert called.value.kwargs["checkpoint_every"] == 7


@pytest.mark.parametrize("command", sorted(_FUNCTIONS))
def test_checkpoint_every_must_be_positive(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", command, "--data", "digits", "--out", str(tmp_path / "w.pt"),
                 "--checkpoint-every", "0", "--no-progress"])
    assert code == 2
    assert "--checkpoint-every must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


def _record_saves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Steps at which the shared training loop writes a checkpoint."""
    from captum_cf.training import loop

    saved: list[int] = []
    real = loop.Trainer.save

    def record(self: Any, path: Any) -> None:
        saved.append(self.step)
        real(self, path)

    monkeypatch.setattr(loop.Trainer, "save", record)
    return saved


def test_inpainter_checkpoints_at_the_asked_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = _record_saves(monkeypatch)
    args = ["train", "inpainter", "--data", "digits", "--out", str(tmp_path / "inp.pt"),
            "--steps", "5", "--limit", "16", "--checkpoint-every", "2", "--no-progress"]
    assert main(args) == 0
    assert saved == [2, 4, 5]  # every 2 steps, and the last one


def test_classifier_checkpoints_at_the_asked_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the classifier's --checkpoint-every counts optimiser steps, as every trainer's does
    saved = _record_saves(monkeypatch)
    args = ["train", "classifier", "--data", "digits", "--out", str(tmp_path / "c.pt"),
            "--epochs", "1", "--limit", "64", "--batch-size", "16",
            "--checkpoint", str(tmp_path / "c.ckpt"), "--checkpoint-every", "2", "--no-progress"]
    assert main(args) == 0
    assert saved and saved[-1] >= 3
    total = saved[-1]
    assert saved == [s for s in range(1, total + 1) if s % 2 == 0 or s == total]


@pytest.mark.parametrize("command", sorted(_FUNCTIONS))
def test_channels_and_workers_reach_the_trainer_and_are_checked(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib

    import numpy as np
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "photos" / cls / "x.png")
    module, name = _FUNCTIONS[command]

    def fake(*args: Any, **kwargs: Any) -> None:
        raise _Called(kwargs)

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    extra = ["--classifier", "zoo:digits-cnn"] if command == "ganmex" else []
    with pytest.raises(_Called) as called:
        main(["train", command, "--data", str(tmp_path / "photos"), "--out",
              str(tmp_path / "w.pt"), "--channels", "3", "--workers", "2", "--cache-dir",
              str(tmp_path / "cache"), "--image-size", "8", "--resize", "10", "--no-progress",
              *extra])
    assert called.value.kwargs["channels"] == 3 and called.value.kwargs["workers"] == 2
    assert called.value.kwargs["cache_dir"] == str(tmp_path / "cache")
    assert called.value.kwargs["resize"] == 10 and called.value.kwargs["image_size"] == 8
    code = main(["train", command, "--data", "digits", "--out", str(tmp_path / "w.pt"),
                 "--channels", "1", "--no-progress"])
    assert code == 2 and "channels applies to an image folder" in capsys.readouterr().err


def _press_ctrl_c_at(monkeypatch: pytest.MonkeyPatch, cls: type, step: int) -> None:
    """``cls.train_step`` sends SIGINT to this process during step ``step``."""
    import os
    import signal

    real = cls.train_step

    def train_step(self: Any) -> Any:
        losses = real(self)
        if self.step + 1 == step:
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(cls, "train_step", train_step)


def test_ctrl_c_in_train_ends_with_a_line_and_the_same_command_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import torch

    from captum_cf import zoo
    from captum_cf.zoo.train import ClassifierTrainer

    def command(name: str) -> list[str]:
        return ["train", "classifier", "--data", "digits", "--limit", "48", "--epochs", "2",
                "--batch-size", "16", "--no-progress", "--checkpoint",
                str(tmp_path / f"{name}.ckpt"), "--out", str(tmp_path / f"{name}.pt")]

    assert main(command("straight")) == 0
    with monkeypatch.context() as patch:
        _press_ctrl_c_at(patch, ClassifierTrainer, 2)
        assert main(command("cut")) == 130
    err = capsys.readouterr().err
    assert "interrupted by SIGINT after step 2 of 6; checkpoint written to" in err
    assert "Traceback" not in err and not (tmp_path / "cut.pt").exists()
    resume = err.split("to continue exactly where it stopped: captum-cf ")[1].strip()
    assert resume.split() == command("cut")  # this command resumes by itself: no --resume
    assert main(command("cut")) == 0
    straight = zoo.read_weights(tmp_path / "straight.pt")
    cut = zoo.read_weights(tmp_path / "cut.pt")
    assert cut["metrics"]["losses"] == straight["metrics"]["losses"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key


def test_ctrl_c_hint_adds_resume_where_the_command_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from captum_cf.inpainters._fit import InpainterTrainer

    _press_ctrl_c_at(monkeypatch, InpainterTrainer, 1)
    base = ["train", "inpainter", "--data", "digits", "--limit", "16", "--steps", "3",
            "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "inp.pt")]
    assert main(base) == 130
    err = capsys.readouterr().err
    assert f"checkpoint written to {tmp_path / 'inp.pt.ckpt'}" in err
    assert err.strip().endswith("--resume")


def test_the_continue_command_of_a_torchrun_run_is_a_torchrun_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The printed command resumed with one process, which a checkpoint of two refuses."""
    from captum_cf.cli import _launcher

    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert _launcher() == ("captum-cf ", "")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert _launcher() == ("torchrun --nproc-per-node 2 -m captum_cf ", "")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert _launcher() == ("torchrun --nproc-per-node 2 -m captum_cf ",
                           " (on each node, with this run's --nnodes and rendezvous)")


def _trainer_config(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Any:
    """The GANMEXTrainConfig that ``captum-cf train ganmex ARGV`` hands its trainer."""
    import captum_cf.zoo.generators as generators

    def fake(*args: Any, config: Any = None, **kwargs: Any) -> None:
        raise _Called({"config": config})

    monkeypatch.setattr(generators, "GANMEXTrainer", fake)
    with pytest.raises(_Called) as called:
        main(["train", "ganmex", *argv, "--limit", "40", "--no-progress"])
    return called.value.kwargs["config"]


def test_an_explicit_ganmex_loss_weight_wins_over_the_data_sets_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from captum_cf.generative import GANMEXTrainConfig
    from captum_cf.zoo.generators import GANMEX_SETUPS

    shapes = GANMEX_SETUPS["shapes"]["train_config"]["lambda_mask"]
    assert shapes != GANMEXTrainConfig().lambda_mask  # the case that went wrong
    out = ["--data", "shapes", "--out", str(tmp_path / "g.pt")]
    assert _trainer_config(monkeypatch, out).lambda_mask == shapes
    # equal to the class default: it was taken for "not given" and replaced by the shapes value
    given = _trainer_config(monkeypatch, [*out, "--lambda-mask",
                                          str(GANMEXTrainConfig().lambda_mask)])
    assert given.lambda_mask == GANMEXTrainConfig().lambda_mask


def test_bad_ganmex_loss_weights_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from captum_cf.generative import GANMEXTrainConfig

    out = ["train", "ganmex", "--data", "digits", "--out", str(tmp_path / "g.pt"), "--no-progress"]
    for flag, value, said in (("--lambda-cls", "nan", "lambda_cls must be >= 0 and finite"),
                              ("--lambda-sim", "-1", "lambda_sim must be >= 0 and finite")):
        assert main([*out, flag, value]) == 2
        assert f"{flag}: {said}" in capsys.readouterr().err
    # digits' generator edits the full image: a mask weight would be ignored silently
    assert main([*out, "--lambda-mask", "3"]) == 2
    assert "edits the full image" in capsys.readouterr().err
    for bad, error in (({"batch_size": 0}, ValueError), ({"lambda_mask": "10"}, TypeError),
                       ({"lr_critic": 0.0}, ValueError)):
        with pytest.raises(error, match=next(iter(bad))):
            GANMEXTrainConfig(**bad)


def test_an_unknown_zoo_init_is_one_line_without_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "robust", "--data", "digits", "--out", str(tmp_path / "r.pt"),
                 "--init", "zoo:nope", "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.startswith("captum-cf: error: unknown zoo model 'nope'")


def test_a_dataloader_workers_error_is_its_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --workers: the error carried the worker's traceback, printed after "captum-cf: error:"
    import captum_cf.zoo.train as train

    def fake(*args: Any, **kwargs: Any) -> None:
        raise ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback "
                         "(most recent call last):\n  File \"folder.py\", line 341\nValueError: "
                         "cannot read image d/dog/photo.jpg: image file is truncated")

    monkeypatch.setattr(train, "train_classifier", fake)
    code = main(["train", "classifier", "--data", "digits", "--out", str(tmp_path / "c.pt"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err == ("captum-cf: error: cannot read image "
                                 "d/dog/photo.jpg: image file is truncated\n")


@pytest.mark.parametrize("command", sorted(_FUNCTIONS))
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    # it failed after the whole training, with a traceback (the trained model lost)
    import importlib

    module, name = _FUNCTIONS[command]

    def fake(*args: Any, **kwargs: Any) -> None:
        raise _Called(kwargs)

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    folder = tmp_path / "outdir"
    folder.mkdir()
    (tmp_path / "afile").write_text("x")
    base = ["train", command, "--data", "digits", "--no-progress"]
    for extra, said in (
        (["--out", str(folder)], f"--out {folder} is a folder: name the file to write"),
        (["--out", str(tmp_path / "afile" / "w.pt")], "cannot write there"),
        (["--out", str(tmp_path / "w.pt"), "--checkpoint", str(folder)],
         f"--checkpoint {folder} is a folder"),
    ):
        assert main([*base, *extra]) == 2
        assert said in capsys.readouterr().err
    assert os.listdir(folder) == []
