"""The report folder: replaced atomically, stale temporary folders cleaned, --out a file or a
folder holding other files refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from audit_helpers import tiny_model

import captum_cf.audit.report as report
from captum_cf.audit import audit
from captum_cf.cli import main


def _result(device: torch.device | str = "cpu"):
    return audit(
        tiny_model().to(device),
        torch.rand(2, 1, 8, 8).to(device),
        methods=["deeplift"],
        baselines=["zero"],
        n_steps=2,
        sanity_n=0,
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("exchange", [True, False])
def test_existing_report_is_replaced_whole_and_stale_folders_are_cleaned(
    tmp_path, monkeypatch, exchange, device
) -> None:
    if not exchange:  # the fallback of two renames (platforms without renameat2)
        monkeypatch.setattr(report, "_rename_exchange", lambda a, b: False)
    out = tmp_path / "rep"
    out.mkdir()
    (out / "results.json").write_text("old")
    (out / "example_7.png").write_text("a figure of an older report")
    stale = tmp_path / f".audit-tmp-{_dead_pid()}-abc"
    stale.mkdir()
    (stale / "results.csv").write_text("half")
    alive = tmp_path / f".audit-tmp-{os.getppid()}-xyz"  # another audit writing right now
    alive.mkdir()
    written = _result(device).write(str(out))
    names = [os.path.basename(p) for p in written]
    assert sorted(os.listdir(out)) == sorted(names)  # the new report only, whole
    assert (out / "results.json").read_text() != "old"
    assert names[: len(report.FILES)] == list(report.FILES)
    assert {"curves.png", "example_0.png", "example_1.png"} <= set(names)
    assert sorted(os.listdir(tmp_path)) == [alive.name, "rep"]


def test_out_naming_a_file_fails_before_any_work(tmp_path, capsys) -> None:
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    rc = main(["audit", "--out", str(target), "--n", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "exists and is not a folder" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "keep me" and os.listdir(tmp_path) == ["report.txt"]
    with pytest.raises(NotADirectoryError):
        _result().write(str(target))


def test_out_holding_other_files_is_refused_before_any_work(tmp_path, capsys, monkeypatch) -> None:
    """The report replaces the whole --out folder: naming a data folder, the working directory's
    parent or a folder with notes deleted every file in it."""
    data = tmp_path / "photos"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "1.png").write_bytes(b"an image")
    (data / "thesis.txt").write_text("keep me")
    work = tmp_path / "proj" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out, shown in ((data, "cat, thesis.txt"), ("..", "sub")):
        rc = main(["audit", "--out", str(out), "--n", "2", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert f"holds files that are not an audit report's ({shown}); the report replaces " \
            "the whole folder" in err
    assert (data / "thesis.txt").read_text() == "keep me" and (data / "cat" / "1.png").exists()
    assert work.is_dir()
    with pytest.raises(FileExistsError):
        _result().write(str(data))
    # a parent that is a file: one line, not makedirs' traceback
    (tmp_path / "afile").write_text("x")
    rc = main(["audit", "--out", str(tmp_path / "afile" / "report"), "--n", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.endswith("afile is a file, not a folder") and len(err.splitlines()) == 1
    # an empty folder and an earlier report (also one a file manager has shown) are written into
    (tmp_path / "empty").mkdir()
    assert len(_result().write(str(tmp_path / "empty"))) >= 4
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"finder")
    assert len(_result().write(str(tmp_path / "empty"))) >= 4


def test_json_has_image_ids_labels_and_explained_classes(
    tmp_path, image_folder, capsys, device
) -> None:
    import json

    from audit_helpers import FOLDER_MODEL

    root = image_folder(n_per_class=2)
    (tmp_path / "m.py").write_text(FOLDER_MODEL.format(c=3, s=8, sleep=0))
    rc = main(
        [
            "audit",
            "--model",
            f"{tmp_path / 'm.py'}:make",
            "--data",
            str(root),
            "--image-size",
            "8",
            "--n",
            "all",
            "--methods",
            "sparse-perturbation,deeplift",
            "--baselines",
            "zero",
            "--steps",
            "2",
            "--sanity-n",
            "0",
            "--no-progress",
            "--out",
            str(tmp_path / "o"),
            "--device",
            str(device),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((tmp_path / "o" / "results.json").read_text())
    ids = ["a/00.png", "a/01.png", "b/00.png", "b/01.png"]
    assert [im["id"] for im in rep["images"]] == ids
    assert [im["label"] for im in rep["images"]] == [0, 0, 1, 1]
    assert all(0 <= im["target"] < 3 for im in rep["images"])
    assert [(c["method"], c["baseline"]) for c in rep["cells"]] == [
        ("sparse-perturbation", "-"),
        ("deeplift", "zero"),
    ]
    assert rep["cells"][1]["metrics"]["srg_road"]["ids"] == ids
    assert len(rep["cells"][1]["metrics"]["morf_zero"]["values"]) == 4
    assert rep["config"]["device"].startswith(device.type)


def test_too_few_images_is_one_sentence_for_the_whole_verdict() -> None:
    from captum_cf.audit.report import _verdict_lines
    from captum_cf.audit.stats import verdict

    def values(n: int) -> dict:
        base = torch.arange(1.0, n + 1)
        out = {}
        for m in ("ig", "occlusion"):
            out[(m, "road", "srg")] = base + 10
            out[(m, "zero", "srg")] = base
            out[(m, "blur", "srg")] = base * 0.5
        out[("ig", "noise", "srg")] = torch.zeros(n)
        return out

    few = _verdict_lines(verdict(values(3), {"srg": True},
                                 no_signal_cells={("ig", "noise"): True}))
    assert few[0].startswith("Too few images for a verdict: with n = 3")
    assert "n >= 7 needed" in few[0]  # 2 other baselines: 2 * 2 / 2**n < 0.05 from n = 7
    assert few[1:] == ["ig with noise: the maps carry no signal (constant); left out."]
    enough = _verdict_lines(verdict(values(7), {"srg": True}))
    assert not any("Too few" in line for line in enough)
    assert sum("best road" in line for line in enough) == 2


def test_two_image_audit_says_too_few_in_table_and_report(tmp_path) -> None:
    res = audit(tiny_model(), torch.rand(2, 1, 8, 8), methods=["deeplift"],
                baselines=["zero", "blur"], n_steps=2, sanity_n=0)
    assert "Too few images for a verdict: with n = 2" in res.table()
    res.write(str(tmp_path / "rep"))
    page = (tmp_path / "rep" / "report.html").read_text()
    verdict_list = page.split('<ul id="verdict">', 1)[1].split("</ul>", 1)[0]
    assert "Too few images for a verdict" in verdict_list
    assert "no significant difference" not in verdict_list and "srg_" not in verdict_list


def test_writing_a_report_leaves_the_callers_matplotlib_as_it_was(tmp_path) -> None:
    # the report switched the process to the Agg backend: a notebook's inline figures after
    # result.write(...) stayed blank (tutorial 09)
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    try:
        plt.switch_backend("svg")  # a backend that is not Agg, available without a display
        figures = plt.get_fignums()
        _result().write(str(tmp_path / "report"))
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
        assert (tmp_path / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        plt.switch_backend(before)


def test_a_foreign_file_added_while_the_audit_runs_keeps_the_results(tmp_path, capsys,
                                                                     monkeypatch) -> None:
    """--out is checked before the work and again when the report is written: a file put into
    it meanwhile is one line naming --resume, which then writes the report from the store."""
    from captum_cf.audit.result import AuditResult

    out = tmp_path / "rep"
    real_write = AuditResult.write

    def write_after_a_note(self, folder):
        out.mkdir(exist_ok=True)
        (out / "notes.txt").write_text("mine")
        return real_write(self, folder)

    args = ["audit", "--n", "2", "--methods", "occlusion", "--baselines", "zero", "--steps", "2",
            "--sanity-n", "0", "--no-progress", "--out", str(out)]
    with monkeypatch.context() as patch:
        patch.setattr(AuditResult, "write", write_after_a_note)
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files that are not an audit report's (notes.txt)" in err[0]
    assert err[0].endswith("rerun the same command with --resume to write the report")
    (out / "notes.txt").unlink()
    assert main([*args, "--resume"]) == 0 and (out / "report.html").is_file()


def test_out_inside_the_data_folder_is_refused_before_any_work(tmp_path, capsys) -> None:
    # the next audit of the folder read the report as a class "audit" (labels shifted)
    data = tmp_path / "photos"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "1.png").write_bytes(b"an image")
    for out in (data / "audit", data / "cat" / "report"):
        rc = main(["audit", "--data", str(data), "--out", str(out), "--n", "2", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert f"lies inside --data {data}: the report's images would be read" in err
    assert sorted(os.listdir(data)) == ["cat"] and os.listdir(data / "cat") == ["1.png"]


def test_a_file_name_the_font_cannot_draw_prints_no_warning(tmp_path) -> None:
    # matplotlib warned "Glyph 20889 missing from font(s) DejaVu Sans" on the terminal, once per
    # figure; the figure draws boxes and the HTML names the file in full
    import warnings

    res = _result()
    res.images[0]["id"] = "猫/写真.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res.write(str(tmp_path / "rep"))
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert "猫/写真.png" in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")


def test_out_as_a_link_to_a_report_folder_replaces_the_folder_and_keeps_the_link(tmp_path):
    # the exchange swapped the link itself: out became a plain folder, the target kept the old
    # report, and the link, moved to .audit-tmp-*, was left there for good
    real = tmp_path / "store" / "real"
    _result().write(str(real))
    (real / "results.json").write_text("old")
    link = tmp_path / "report"
    link.symlink_to(real)
    _result().write(str(link))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "results.json").read_text() != "old"
    assert not [n for n in os.listdir(tmp_path) + os.listdir(tmp_path / "store")
                if n.startswith(".audit-tmp")]
    # a link an earlier version left as .audit-tmp-<dead pid>-*: removed, not followed
    stale = tmp_path / f".audit-tmp-{_dead_pid()}-x"
    stale.symlink_to(real)
    assert report.clean_stale(str(tmp_path)) == [str(stale)]
    assert not stale.is_symlink() and (real / "results.json").exists()
