"""The audit's judgement: no-signal cells, the verdict over SRG, ties sharing the star, R-OMS and
consistency once per audit, the report rendered in a real browser (headless chromium)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import torch
from audit_helpers import tiny_model

from captum_cf._registry import _Entry
from captum_cf.attr import METHODS
from captum_cf.audit import audit
from captum_cf.audit.result import AuditResult, CellResult
from captum_cf.audit.stats import verdict as stats_verdict


def _flat(ctx):
    def explain(inputs, target, baseline):
        return inputs * 0  # LIME on a model it cannot explain: exactly 0 everywhere

    return explain


@pytest.fixture(scope="module", params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def small_audit(request):
    """One audit per device (the ``device`` fixture's devices; module scope: computed once)."""
    METHODS._entries["flat"] = _Entry(_flat, "all-zero maps", lambda c: True)
    try:
        torch.manual_seed(1)
        x = torch.rand(6, 1, 8, 8)
        return audit(
            tiny_model().to(request.param),
            x.to(request.param),
            methods=["deeplift", "flat"],
            baselines=["zero", "blur"],
            removals=["zero", "blur", "road"],
            n_steps=4,
            sanity_n=2,
            n_examples=2,
        )
    finally:
        del METHODS._entries["flat"]


def test_constant_maps_are_flagged_and_kept_out_of_the_verdict(small_audit) -> None:
    res = small_audit
    flat = [c for c in res.cells if c.method == "flat"]
    assert [c.no_signal for c in flat] == [True, True]
    assert all(c.values["no_signal"].tolist() == [1.0] * 6 for c in flat)
    assert not any(c.no_signal for c in res.cells if c.method == "deeplift")
    v = res.verdict()
    assert v["flat"].excluded == ["blur", "zero"] and v["deeplift"].excluded == []
    assert all(not m.means for m in v["flat"].metrics.values())  # nothing left to compare
    assert all(("flat", b) not in cells for cells in res.best().values() for b in ("zero", "blur"))
    assert "flat with zero: the maps carry no signal" in " ".join(v["flat"].sentences)
    assert "(no signal)" in res.table()


def test_a_constant_map_orders_no_pixel_its_srg_is_0(small_audit) -> None:
    # ties go in raster order (MoRF) and its reverse (LeRF): a constant map's SRG was the
    # tie-break's artefact (up to 0.31 per image on digits); now the two orders' mean
    flat = [c for c in small_audit.cells if c.method == "flat"]
    for c in flat:
        for r in ("zero", "blur", "road"):
            assert torch.equal(c.values[f"srg_{r}"], torch.zeros(6, dtype=torch.float64))
            assert torch.equal(c.values[f"morf_{r}"], c.values[f"lerf_{r}"])
    deeplift = [c for c in small_audit.cells if c.method == "deeplift"]
    assert all(bool((c.values["srg_zero"] != 0).all()) for c in deeplift)


def test_removal_curves_with_the_configs_percentages_give_the_audits_values(device) -> None:
    from captum_cf.baselines import ConstantBaseline
    from captum_cf.metrics import removal_curves

    torch.manual_seed(0)
    model, x = tiny_model(side=10).to(device), torch.rand(4, 1, 10, 10, device=device)
    res = audit(model, x, methods=["integrated-gradients"], baselines=["zero"],
                removals=["zero"], n_steps=10, sanity_n=0, n_examples=4)
    pcs = res.config["percentages"]
    assert len(pcs) == 11 and pcs[0] == 0 and pcs[-1] == 100
    amap = res.example_maps[("integrated-gradients", "zero")].to(device)
    with torch.no_grad():
        t = model(x).argmax(1)
    morf, lerf = removal_curves(model, x, amap, t, {"zero": ConstantBaseline(0.0)}, pcs)["zero"]
    cell = res.cells[0]
    assert torch.allclose(cell.values["morf_zero"].double(), morf.auc.cpu().double(), atol=1e-6)
    assert torch.allclose(cell.values["lerf_zero"].double(), lerf.auc.cpu().double(), atol=1e-6)


def test_verdict_is_stats_verdict_on_the_per_image_srg(small_audit) -> None:
    res = small_audit
    cells = {c.baseline: c for c in res.cells if c.method == "deeplift"}
    expected = stats_verdict(
        {("deeplift", b, f"srg_{r}"): cells[b].values[f"srg_{r}"]
         for b in cells for r in ("zero", "blur", "road")},
        {f"srg_{r}": True for r in ("zero", "blur", "road")},
        {f"srg_{r}": r for r in ("zero", "blur", "road")},
    )["deeplift"]
    got = res.verdict()["deeplift"]
    assert got.sentences == expected.sentences
    assert {m: v.best for m, v in got.metrics.items()} == {
        m: v.best for m, v in expected.metrics.items()
    }
    assert got.metrics["srg_road"].n == 6 and got.metrics["srg_road"].own_removal == "road"


def test_r_oms_once_per_audit_and_consistency_per_method_and_kind(small_audit) -> None:
    res = small_audit
    assert set(res.roms) == {"zero", "blur", "road"} and res.roms["zero"].shape == (6,)
    assert all(0 <= lo <= mean <= hi <= 1 for mean, lo, hi, _ in res.r_oms().values())
    cons = res.consistency()
    assert set(cons) == {"deeplift"}  # flat has no baseline with signal
    srg = {r: {b: res.cells[i].stats(f"srg_{r}")[0] for i, b in ((0, "zero"), (1, "blur"))}
           for r in ("zero", "blur", "road")}
    # two baselines: tau is +1 when two removals order them alike, -1 otherwise
    for pair, tau in cons["deeplift"]["srg"]["pairs"].items():
        a, b = pair.split("/")
        same = (srg[a]["zero"] > srg[a]["blur"]) == (srg[b]["zero"] > srg[b]["blur"])
        assert tau == (1.0 if same else -1.0)


def _result_with_tie() -> AuditResult:
    values = {"pointing_game": torch.tensor([1.0, 1.0, 1.0, 0.0])}
    cells = [
        CellResult("ig", "zero", values=dict(values), done=4),
        CellResult("ig", "blur", values=dict(values), done=4),
        CellResult("ig", "road", values={"pointing_game": torch.tensor([0.0, 1.0, 0.0, 0.0])},
                   done=4),
    ]
    for c in cells:
        c.index = {"pointing_game": [0, 1, 2, 3]}
    config = {"n": 4, "cells": [[c.method, c.baseline] for c in cells], "removals": []}
    return AuditResult(config, ["pointing_game"], cells, torch.zeros(0, 1, 4, 4), {}, {})


def test_ties_share_the_star_and_bounded_intervals_stay_in_range() -> None:
    res = _result_with_tie()
    assert res.best()["pointing_game"] == [("ig", "zero"), ("ig", "blur")]
    rows = res.table().splitlines()[2:5]
    assert [r.rstrip().split()[-2] == "^" for r in rows] == [True, True, False]
    mean, lo, hi, n = res.cells[0].stats("pointing_game")
    assert (mean, n) == (0.75, 4) and 0 <= lo < mean < hi <= 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(small_audit, tmp_path) -> None:
    res = small_audit
    out = tmp_path / "report"
    res.write(str(out))
    url = (out / "report.html").as_uri()
    dom = _browser("--dump-dom", url).stdout
    assert '<ul id="verdict">' in dom and "deeplift, srg_road:" in dom
    for c in res.cells:  # every cell has its row in the full table
        assert f'data-method="{c.method}" data-baseline="{c.baseline}"' in dom
    for r in ("zero", "blur", "road"):  # a heat map per removal, one entry per cell of it
        assert len(re.findall(rf'class="heat"[^>]*data-removal="{r}"', dom)) == 4
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', dom)
    assert {"curves.png", "counterfactuals.png", "example_0.png", "example_1.png"} <= set(srcs)
    for src in srcs:  # every image resolves
        assert src.startswith("data:image/") or (out / src).is_file(), src
    assert 'id="consistency"' in dom and 'id="roms"' in dom and "explained class" in dom
    shot = tmp_path / "shot.png"
    _browser(f"--screenshot={shot}", "--window-size=1280,900", url)
    from PIL import Image

    img = Image.open(shot)
    assert img.size == (1280, 900)
    lo, hi = img.convert("L").getextrema()
    assert hi - lo > 100  # not blank: text and figures drawn
    assert os.path.getsize(shot) > 10_000
    # the page fits a 1280 px window: it is at most 1240 px wide, wide tables scroll in a box
    assert "max-width:1240px" in dom and ".box{overflow-x:auto" in dom
    assert dom.count('<div class="box">') >= 5


def test_r_oms_is_measured_on_the_first_images_whatever_the_explanation_batch(device) -> None:
    # it was the first batch's: n = min(32, --explain-batch), values changed with a memory setting
    torch.manual_seed(0)
    model, x = tiny_model().to(device), torch.rand(7, 1, 8, 8, device=device)
    kwargs = dict(methods=["integrated-gradients"], baselines=["zero"],
                  removals=["zero", "blur"], n_steps=4, sanity_n=0, n_examples=0)
    whole = audit(model, x, explain_batch=7, **kwargs)
    split = audit(model, x, explain_batch=3, **kwargs)
    for r in ("zero", "blur"):
        assert whole.roms[r].shape == split.roms[r].shape == (7,)
        torch.testing.assert_close(split.roms[r], whole.roms[r])


def test_an_empty_mask_costs_its_image_the_pointing_game_only(device) -> None:
    # it failed the image's every metric, and took a healthy image with it (split budget)
    torch.manual_seed(0)
    model, x = tiny_model().to(device), torch.rand(5, 1, 8, 8, device=device)
    masks = torch.zeros(5, 1, 8, 8, dtype=torch.bool, device=device)
    masks[:, :, 2:5, 2:5] = True
    masks[1] = masks[3] = False
    with pytest.warns(UserWarning, match=r"the mask of 1, 3 marks no object pixel") as caught:
        res = audit(model, x, masks=masks, methods=["integrated-gradients", "occlusion"],
                    baselines=["zero"], removals=["zero"], n_steps=4, sanity_n=0, n_examples=0)
    assert sum("marks no object pixel" in str(w.message) for w in caught) == 1  # once a batch
    for cell in res.cells:
        assert cell.error is None
        assert cell.index["pointing_game"] == [0, 2, 4]
        assert cell.index["srg_zero"] == [0, 1, 2, 3, 4]


def test_a_method_with_one_map_per_image_runs_on_rgb_images(device) -> None:
    # Meaningful Perturbation's masks are (N, 1, H, W): the probe wanted the images' shape and
    # left it out of every RGB audit ("it fails on this model")
    torch.manual_seed(0)
    model = tiny_model(channels=3).to(device)
    x = torch.rand(2, 3, 8, 8, device=device)
    res = audit(model, x, methods=["meaningful-perturbation", "integrated-gradients"],
                baselines=["zero"], removals=["zero"], n_steps=4, sanity_n=2, n_examples=2)
    assert [c.method for c in res.cells] == ["meaningful-perturbation", "integrated-gradients"]
    assert all(c.error is None and c.values["srg_zero"].numel() == 2 for c in res.cells)
    assert res.config.get("skipped_methods", {}) == {}


def test_deeplift_on_layers_without_a_rule_is_said_once_per_audit(device) -> None:
    import warnings

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.GELU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).to(device)
    x = torch.rand(4, 1, 8, 8, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audit(model, x, methods=["deeplift"], baselines=["zero", "blur"], removals=["zero"],
              n_steps=2, sanity_n=0, n_examples=0, explain_batch=2)
    said = [str(w.message) for w in caught if "DeepLIFT has no rule" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("audit: deeplift: DeepLIFT has no rule for "
                                                 "the model's GELU layers"), said
    # under torchrun the other ranks leave it to rank 0 (it was printed once per rank)
    import os

    os.environ["RANK"] = "1"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audit(model, x, methods=["deeplift"], baselines=["zero"], removals=["zero"],
                  n_steps=2, sanity_n=0, n_examples=0)
    finally:
        del os.environ["RANK"]
    assert not [w for w in caught if "DeepLIFT has no rule" in str(w.message)]
