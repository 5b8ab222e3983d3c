"""captum-cf audit end to end (through captum_cf.cli.main) and the Python API, tiny configs."""

from __future__ import annotations

import csv
import json
import os
import textwrap

import pytest
import torch
import torch.nn as nn

from captum_cf.attr import METHODS
from captum_cf.audit import audit
from captum_cf.audit.stats import wilson_ci
from captum_cf.baselines import BASELINES, Baseline
from captum_cf.cli import main
from captum_cf.metrics import deletion, pointing_game, road

TINY = ["--n", "4", "--steps", "4", "--sanity-n", "2", "--no-progress"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["audit", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_digits_end_to_end(tmp_path, capsys, device) -> None:
    out = tmp_path / "report"
    rc, stdout, _ = _run(
        capsys,
        "--data",
        "digits",
        "--methods",
        "deeplift",
        "--baselines",
        "zero,blur",
        "--out",
        str(out),
        "--device",
        str(device),
        *TINY,
    )
    assert rc == 0
    assert sorted(os.listdir(out)) == [
        "counterfactuals.png",
        "curves.png",
        "example_0.png",
        "example_1.png",
        "example_2.png",
        "example_3.png",
        "report.html",
        "results.csv",
        "results.json",
    ]
    removals = ["zero", "blur", "inpaint-pushpull", "road"]
    metrics = [f"{k}_{r}" for r in removals for k in ("srg", "morf", "lerf")] + ["sanity_ssim"]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # one row per cell and metric
    assert [(r["method"], r["baseline"], r["metric"]) for r in rows] == [
        ("deeplift", b, m) for b in ("zero", "blur") for m in metrics
    ]
    for r in rows:
        lo, mean, hi = float(r["ci_low"]), float(r["mean"]), float(r["ci_high"])
        assert lo <= mean <= hi
        low_bound = -1 if r["metric"].startswith(("srg", "sanity")) else 0
        assert low_bound <= lo and hi <= 1  # intervals are clipped to the metric's range
        assert r["n"] == ("2" if r["metric"] == "sanity_ssim" else "4")
    report = json.loads((out / "results.json").read_text())
    assert report["config"]["n"] == 4 and report["config"]["model"] == "zoo:digits-cnn"
    assert report["config"]["device"].startswith(device.type)
    assert report["config"]["removals"] == removals
    cells = report["cells"]
    for c in cells:
        v = c["metrics"]
        assert len(v["srg_road"]["values"]) == 4 and len(v["srg_road"]["ids"]) == 4
        for r in removals:  # SRG = LeRF - MoRF, image by image
            srg = [lerf - morf for lerf, morf in zip(v[f"lerf_{r}"]["values"],
                                                      v[f"morf_{r}"]["values"])]
            assert srg == pytest.approx(v[f"srg_{r}"]["values"], abs=1e-6)
    means = [c["metrics"]["morf_zero"]["mean"] for c in cells]
    best = report["best"]["morf_zero"]
    assert [(b["method"], b["baseline"]) for b in best] == [
        [("deeplift", "zero"), ("deeplift", "blur")][means.index(min(means))]
    ]
    assert report["metrics"]["lerf_road"]["higher_is_better"] is True
    assert report["metrics"]["morf_road"]["higher_is_better"] is False
    assert set(report["r_oms"]) == set(removals)
    assert report["r_oms"]["inpaint-pushpull"]["mean"] == pytest.approx(1.0)  # the reference
    assert set(report["verdict"]["deeplift"]["metrics"]) == {f"srg_{r}" for r in removals}
    assert set(report["consistency"]["deeplift"]) == {"srg", "morf", "lerf"}
    assert [im["label"] is not None for im in report["images"]] == [True] * 4
    assert report["command"].startswith("captum-cf audit --data digits")
    html = (out / "report.html").read_text()
    assert '<table id="results">' in html and "deeplift" in html and "▲" in html
    assert '<ul id="verdict">' in html and 'src="curves.png"' in html
    assert "SRG road" in stdout and "deeplift" in stdout  # the table is printed


def _write_model_file(tmp_path, body: str) -> str:
    path = tmp_path / "user_model.py"
    path.write_text(textwrap.dedent(body))
    return f"{path}:make"


_TINY_MODEL = """
import torch.nn as nn

def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 2))
"""


def _image_folder(tmp_path, with_masks: bool = True):
    from PIL import Image

    root = tmp_path / "images"
    gen = torch.Generator().manual_seed(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            arr = (torch.rand(16, 16, 3, generator=gen) * 255).byte().numpy()
            Image.fromarray(arr).save(root / label / f"{i}.png")
            if with_masks:
                mask = torch.zeros(16, 16, dtype=torch.uint8)
                mask[4:10, 4:10] = 255
                Image.fromarray(mask.numpy()).save(root / label / f"{i}_mask.png")
    return root


def test_image_folder_with_masks_and_user_model(tmp_path, capsys, device) -> None:
    root = _image_folder(tmp_path)
    model = _write_model_file(tmp_path, _TINY_MODEL)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 2),
    )
    torch.save({"state_dict": net.state_dict()}, tmp_path / "w.pt")
    rc, _, err = _run(
        capsys,
        "--data",
        str(root),
        "--model",
        model,
        "--weights",
        str(tmp_path / "w.pt"),
        "--methods",
        "integrated-gradients",
        "--baselines",
        "zero",
        "--out",
        str(tmp_path / "o"),
        "--device",
        str(device),
        *TINY,
    )
    assert rc == 0, err
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    assert report["config"]["image_shape"] == [3, 16, 16] and report["config"]["masks"] is True
    assert set(report["cells"][0]["metrics"]["pointing_game"]["values"]) <= {0.0, 1.0}
    from captum_cf.audit.model import load_model

    loaded, _ = load_model(model, str(root), str(tmp_path / "w.pt"), str(device))
    assert all(
        a.device.type == device.type and torch.equal(a.cpu(), b)
        for a, b in zip(loaded.state_dict().values(), net.state_dict().values())
    )
    torch.save({"state_dict": {"0.weight": torch.zeros(1)}}, tmp_path / "bad.pt")
    rc, _, err = _run(
        capsys,
        "--data",
        str(root),
        "--model",
        model,
        "--weights",
        str(tmp_path / "bad.pt"),
        "--out",
        str(tmp_path / "o2"),
        *TINY,
    )
    assert rc == 2 and "cannot load weights" in err and not (tmp_path / "o2").exists()


def test_a_mask_of_another_size_or_damaged_pixels_stop_before_any_work(tmp_path,
                                                                        capsys) -> None:
    from PIL import Image

    root = _image_folder(tmp_path)
    model = _write_model_file(tmp_path, _TINY_MODEL)
    Image.fromarray(torch.zeros(12, 12, dtype=torch.uint8).numpy()).save(
        root / "dog" / "1_mask.png")  # the last image's mask: 12x12 beside a 16x16 image
    for size in ([], ["--image-size", "8"]):  # resized separately it would be misaligned
        rc, _, err = _run(capsys, "--data", str(root), "--model", model, "--out",
                          str(tmp_path / "o"), *size, *TINY)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert "the mask" in err and "1_mask.png is 12x12 but its image" in err
        assert not (tmp_path / "o").exists() and not (tmp_path / "o.sqlite").exists()
    (root / "dog" / "1_mask.png").unlink()
    for label in ("cat", "dog"):
        for i in range(2):
            (root / label / f"{i}_mask.png").unlink(missing_ok=True)
    first = root / "cat" / "0.png"  # the header reads, the pixels do not: the first image
    first.write_bytes(first.read_bytes()[:60])
    rc, _, err = _run(capsys, "--data", str(root), "--model", model, "--out",
                      str(tmp_path / "o"), "--image-size", "8", *TINY)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot read image" in err and "0.png" in err


def test_a_trained_model_file_of_another_size_names_its_size(tmp_path, capsys) -> None:
    from captum_cf import zoo

    config = {"in_channels": 3, "num_classes": 2, "image_size": 16, "channels": [4, 8],
              "hidden": 8, "mean": [0.5] * 3, "std": [0.25] * 3, "pool": "avg"}
    zoo.save_weights(tmp_path / "cnn.pt", name="cnn", arch="small-cnn", config=config,
                     model=zoo.build_classifier(config), metrics={})
    root = _image_folder(tmp_path, with_masks=False)
    rc, _, err = _run(capsys, "--data", str(root), "--model", str(tmp_path / "cnn.pt"),
                      "--image-size", "12", "--out", str(tmp_path / "o"), *TINY)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "the images are 12x12, the model was trained on 16x16 images" in err
    assert "--image-size 16" in err


def test_unknown_names_list_the_valid_ones(tmp_path, capsys) -> None:
    rc, _, err = _run(
        capsys, "--data", "digits", "--methods", "nope", "--out", str(tmp_path / "o"), *TINY
    )
    assert rc == 2 and "unknown method 'nope'" in err and "integrated-gradients" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = _run(
        capsys, "--data", "digits", "--baselines", "zero,nope", "--out", str(tmp_path / "o"), *TINY
    )
    assert rc == 2 and "unknown baseline 'nope'" in err and "blur" in err
    assert not (tmp_path / "o").exists()


def test_unreadable_image_and_bad_model_exit_2_and_leave_nothing(tmp_path, capsys) -> None:
    root = _image_folder(tmp_path, with_masks=False)
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    model = _write_model_file(tmp_path, _TINY_MODEL)
    out = tmp_path / "o"
    rc, _, err = _run(
        capsys,
        "--data",
        str(root),
        "--model",
        model,
        "--out",
        str(out),
        "--n",
        "100",
        "--no-progress",
    )
    assert (
        rc == 2
        and "cannot read image" in err
        and "broken.png" in err
        and len(err.strip().splitlines()) == 1
    )
    os.remove(root / "cat" / "broken.png")
    flat = _write_model_file(
        tmp_path, "import torch.nn as nn\n\ndef make():\n    return nn.Flatten(0)\n"
    )
    rc, _, err = _run(
        capsys, "--data", str(root), "--model", flat, "--out", str(out), "--no-progress"
    )
    assert rc == 2 and "(N, classes) logits" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _run(
        capsys, "--data", "digits", "--model", "no_such_module:make", "--out", str(out)
    )
    assert rc == 2 and "cannot build the model" in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["images", "user_model.py"]


def test_failure_while_writing_leaves_no_partial_report(
    tmp_path, monkeypatch, capsys, device
) -> None:
    import captum_cf.audit.report as report

    def boom(result):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "_references_figure", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        main(
            [
                "audit",
                "--data",
                "digits",
                "--methods",
                "deeplift",
                "--baselines",
                "zero",
                "--out",
                str(tmp_path / "o"),
                "--device",
                str(device),
                *TINY,
            ]
        )
    # neither the report folder nor the temporary one; the results store stays (for --resume)
    assert os.listdir(tmp_path) == ["o.sqlite"]


def test_python_api_scores_equal_the_metric_functions(device) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 144, 3)
    ).to(device)
    x = torch.rand(5, 1, 12, 12, device=device)
    masks = torch.zeros(5, 1, 12, 12, dtype=torch.bool, device=device)
    masks[..., :6, :6] = True
    res = audit(
        model,
        x,
        target=[0, 1, 2, 0, 1],
        masks=masks,
        methods=["integrated-gradients"],
        baselines=["zero"],
        n_steps=6,
        sanity_n=3,
    )
    assert res.metrics == [
        f"{k}_{r}" for r in ("zero", "blur", "inpaint-pushpull", "road")
        for k in ("srg", "morf", "lerf")
    ] + ["pointing_game", "sanity_ssim"]
    explain = METHODS.create("integrated-gradients", _ctx_for(model, x))
    t = torch.tensor([0, 1, 2, 0, 1], device=device)
    attr = explain(x, t, BASELINES.create("zero", _ctx_for(model, x)))
    cell = res.cells[0]
    # MoRF under the black removal is RISE's deletion (same counts: 144 pixels / 6 steps)
    torch.testing.assert_close(
        cell.values["morf_zero"], deletion(model, x, attr, [0, 1, 2, 0, 1], n_steps=6).auc.cpu()
    )
    blur = BASELINES.create("blur", _ctx_for(model, x))
    pcs = [0, *(100 * (24 * i + 0.5) / 144 for i in range(1, 6)), 100]  # 24 pixels a step
    morf = road(model, x, attr, [0, 1, 2, 0, 1], "morf", pcs, blur)
    lerf = road(model, x, attr, [0, 1, 2, 0, 1], "lerf", pcs, blur)
    torch.testing.assert_close(cell.values["morf_blur"], morf.auc.cpu())
    torch.testing.assert_close(cell.values["srg_blur"], (lerf.auc - morf.auc).cpu())
    torch.testing.assert_close(cell.values["pointing_game"], pointing_game(attr, masks).cpu())
    assert res.config["device"] == str(x.device)
    mean, lo, hi, n = cell.stats("morf_zero")
    assert (
        n == 5 and lo < mean < hi and abs(mean - float(cell.values["morf_zero"].mean())) < 1e-6
    )
    assert 0 <= lo and hi <= 1
    pg = cell.stats("pointing_game")  # Wilson's interval of the hits
    assert (pg[1], pg[2]) == pytest.approx(
        wilson_ci(int(cell.values["pointing_game"].sum()), 5)
    )
    assert cell.values["sanity_ssim"].shape == (3,)
    assert cell.values["no_signal"].tolist() == [0.0] * 5 and not cell.no_signal
    assert "integrated-gradients" in res.table() and "SRG road" in res.table()


def _ctx_for(model, x):
    from captum_cf._registry import AuditContext

    return AuditContext(model, "custom", None, 3, tuple(x.shape[1:]), device=x.device)


@pytest.mark.parametrize("baseline", BASELINES.names())
def test_every_registered_baseline_audits(baseline, device) -> None:
    from captum_cf.datasets import load_digits
    from captum_cf.zoo import load

    train = load_digits("train")  # for baselines that need samples (nearest-sample)
    x = load_digits("test").tensors[0][:2].to(device)
    res = audit(
        load("digits-cnn").to(device),
        x,
        methods=["deeplift"],
        baselines=[baseline],
        n_steps=2,
        sanity_n=1,
        data_name="digits",
        train_data=train,
        extras={"zoo_name": "digits-cnn"},
    )
    cell = res.cells[0]
    assert cell.error is None and all(bool(torch.isfinite(v).all()) for v in cell.values.values())
    assert res.references[baseline].shape == (2, 1, 32, 32)
    assert res.config["device"] == str(x.device)


def test_nearest_sample_tells_training_labels_that_are_not_the_models_classes() -> None:
    import warnings

    from torch.utils.data import TensorDataset

    from captum_cf.datasets import load_digits
    from captum_cf.zoo import load

    images, labels = load_digits("train").tensors
    x = load_digits("test").tensors[0][:2]
    told = {}
    for name, train_labels in (("right", labels), ("shifted", (labels + 1) % 10)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audit(load("digits-cnn"), x, methods=["occlusion"], baselines=["nearest-sample"],
                  sanity_n=0, data_name="digits", train_data=TensorDataset(images, train_labels),
                  extras={"zoo_name": "digits-cnn"})
        told[name] = [str(w.message) for w in caught if "folder's class" in str(w.message)]
    assert told["right"] == []
    (message,) = told["shifted"]
    import re

    assert re.match(r"the model \(for the nearest-sample baseline's training images\) puts "
                    r"[0-2]% of 256 training images", message)
    assert "those of class 0 mostly as class 9" in message
    # an image folder's source (a dataset with the class folders' names) names the folders
    from torch.utils.data import Dataset

    class _Named(Dataset):
        classes = [f"digit{k}" for k in range(10)]

        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audit(load("digits-cnn"), _Named(), methods=["occlusion"], baselines=["nearest-sample"],
              sanity_n=0, data_name="digits", extras={"zoo_name": "digits-cnn"},
              train_data=TensorDataset(images, (labels + 1) % 10))
    (named,) = [str(w.message) for w in caught if "folder's class" in str(w.message)]
    assert "those of 'digit0' mostly as class 9" in named


@pytest.mark.parametrize("method", METHODS.names())
def test_every_registered_method_audits(method, device) -> None:
    from captum_cf.zoo import load

    x = torch.rand(2, 1, 32, 32).to(device)
    res = audit(
        load("digits-cnn").to(device),
        x,
        methods=[method],
        baselines=["zero"],
        n_steps=2,
        sanity_n=1,
        data_name="digits",
        extras={"zoo_name": "digits-cnn"},
    )
    cell = res.cells[0]
    assert cell.baseline == ("zero" if METHODS.uses_baseline(method) else "-")
    assert cell.error is None and res.example_maps[(method, cell.baseline)].shape == (2, 32, 32)


def test_a_failing_cell_is_reported_and_the_others_still_run(monkeypatch, device) -> None:
    from captum_cf._registry import _Entry

    calls = []

    def broken(ctx):
        def explain(inputs, target, baseline):
            calls.append(len(inputs))
            if len(calls) > 1:  # passes the applicability probe (the first call), then fails
                raise RuntimeError("cannot explain")
            return inputs * 0

        return explain

    monkeypatch.setitem(
        METHODS._entries, "broken", _Entry(broken, "always fails", lambda ctx: True)
    )
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    x = torch.rand(3, 1, 8, 8).to(device)
    res = audit(model, x, methods=["broken", "deeplift"], baselines=["zero"], n_steps=2)
    assert [c.error for c in res.cells] == ["RuntimeError: cannot explain", None]
    assert res.best()["morf_zero"] == [("deeplift", "zero")]
    assert "error: RuntimeError: cannot explain" in res.table()


def test_python_api_rejects_unknown_and_unavailable_names() -> None:
    from captum_cf.audit import AuditInputError

    x = torch.rand(2, 1, 8, 8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(AuditInputError,
                       match=r"unknown baseline 'grey'; valid baselines \(--baselines\): zero"):
        audit(model, x, baselines=["grey"])
    with pytest.raises(AuditInputError, match=r"\(N, classes\) logits"):
        audit(nn.Flatten(0), x)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        audit(model, x * 5)


class _CountingTargetBaseline(Baseline):
    """A composite, target-dependent baseline that counts how many rows it computes."""

    needs_target = True

    def __init__(self) -> None:
        self.rows = 0

    def _reference(self, inputs, target):
        self.rows += len(inputs)
        return (inputs * 0 + target.view(-1, 1, 1, 1) / 10).clamp(0, 1)


def test_reference_cache_computes_each_image_once_and_matches_the_baseline(device) -> None:
    from captum_cf.audit.runner import _cached

    inner = _CountingTargetBaseline()
    x, t = torch.rand(3, 1, 8, 8).to(device), torch.tensor([1, 2, 3]).to(device)
    cached = _cached(inner, x, t)
    assert inner.rows == 3
    keep = (torch.rand(6, 1, 8, 8) > 0.5).float().to(device)
    tiled, tiled_t = x.repeat(2, 1, 1, 1), t.repeat(2)
    filled = cached.fill(tiled, keep, tiled_t)
    assert filled.device == x.device
    torch.testing.assert_close(filled, _CountingTargetBaseline().fill(tiled, keep, tiled_t))
    assert inner.rows == 3  # served from the cache
    cached.reference(x, torch.tensor([3, 2, 1]).to(device))  # other targets: computed
    assert inner.rows == 6


def test_default_methods_and_all(device) -> None:
    from captum_cf.audit import DEFAULT_METHODS

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    res = audit(model, x, baselines=["zero"], n_steps=1, sanity_n=0, methods=None)
    assert [c.method for c in res.cells] == [m for m in DEFAULT_METHODS if m in METHODS.names()]
    res = audit(model, x, baselines=["zero"], n_steps=1, sanity_n=0, methods=["all"])
    assert len(res.cells) == len(METHODS.names(_ctx_for(model, x)))
