"""The results store: per-image rows, resume (in-process and after a kill), config check."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
import warnings

import pytest
import torch
from audit_compare import assert_same_cells
from audit_helpers import PYTHON, report_values, subprocess_env, tiny_model

from captum_cf.attr import METHODS
from captum_cf.audit import AuditInputError, audit
from captum_cf.audit.errors import AuditInterrupted
from captum_cf.audit.store import AuditStore
from captum_cf.cli import main


def _rows(path: str, sql: str) -> list:
    for _ in range(200):  # the writer may hold the lock for a moment
        try:
            with sqlite3.connect(path, timeout=5) as db:
                return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            time.sleep(0.05)
    raise AssertionError(f"cannot read {path}")


def test_store_rows_and_result_round_trip(tmp_path, device) -> None:
    model, x = tiny_model().to(device), torch.rand(5, 1, 8, 8, device=device)
    path = str(tmp_path / "s.sqlite")
    res = audit(
        model,
        x,
        methods=["integrated-gradients"],
        baselines=["zero", "blur"],
        removals=["zero", "blur"],
        n_steps=3,
        sanity_n=2,
        store=path,
        explain_batch=2,
    )
    # one row per image x cell x metric: 5 images x 2 cells x (no_signal + SRG, MoRF, LeRF of
    # 2 removals) + 2 sanity x 2 cells
    assert _rows(path, "SELECT COUNT(*) FROM scores")[0][0] == 5 * 2 * (1 + 3 * 2) + 2 * 2
    assert _rows(path, "SELECT COUNT(*) FROM done")[0][0] == 5 * 2
    stored = _rows(
        path,
        "SELECT idx, value FROM scores WHERE method='integrated-gradients' AND baseline='blur'"
        " AND metric='morf_blur' ORDER BY idx",
    )
    assert [v for _, v in stored] == res.cells[1].values["morf_blur"].tolist()
    predicted = model(x).argmax(1).tolist()
    assert res.images == [
        {"index": i, "id": str(i), "label": None, "target": predicted[i]} for i in range(5)
    ]


class _Stop:
    """A registered method (IG inside) that raises KeyboardInterrupt on a chosen call."""

    def __init__(self, stop_at: int | None) -> None:
        self.calls, self.stop_at = 0, stop_at

    def factory(self, ctx):
        ig = METHODS.create("integrated-gradients", ctx)

        def explain(x, t, b):
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt
            return ig(x, t, b)

        return explain


def test_interrupt_keeps_work_and_resume_computes_only_the_missing_pairs(
    tmp_path, monkeypatch, device
) -> None:
    from captum_cf._registry import _Entry

    model, x = tiny_model().to(device), torch.rand(6, 1, 8, 8).to(device)
    kw = dict(methods=["stop"], baselines=["zero", "blur"], n_steps=3, sanity_n=0, explain_batch=2)
    ref = _Stop(None)
    monkeypatch.setitem(METHODS._entries, "stop", _Entry(ref.factory, "", lambda c: True))
    whole = audit(model, x, **kw)
    path = str(tmp_path / "s.sqlite")
    stop = _Stop(5)  # the probe, batch 0: 2 cells, batch 1: cell 1, then Ctrl-C
    monkeypatch.setitem(METHODS._entries, "stop", _Entry(stop.factory, "", lambda c: True))
    with pytest.raises(AuditInterrupted, match=r"interrupted; 6 of 12 done; resume with --resume"):
        audit(model, x, store=path, **kw)
    # the interrupted run's time is in the store with its work (it was written only at the end)
    store = AuditStore(path)
    interrupted = store.config()["seconds"]
    store.close()
    assert interrupted > 0
    again = _Stop(None)
    monkeypatch.setitem(METHODS._entries, "stop", _Entry(again.factory, "", lambda c: True))
    # explain_batch=None (sized by memory: 256 here) keeps the stored run's batches of 2
    resumed = audit(model, x, store=path, resume=True, **{**kw, "explain_batch": None})
    assert again.calls == 1 + 3  # the probe, then the 3 (batch, cell) pairs missing of 6
    assert_same_cells(whole, resumed)
    assert resumed.seconds > interrupted


def test_resume_refuses_another_configuration(tmp_path, device) -> None:
    model, x = tiny_model().to(device), torch.rand(3, 1, 8, 8).to(device)
    path = str(tmp_path / "s.sqlite")
    audit(model, x, methods=["deeplift"], baselines=["zero"], n_steps=3, store=path)
    before = _rows(path, "SELECT * FROM scores ORDER BY idx, metric")
    with pytest.raises(AuditInputError, match=r"cannot resume .*n_steps: stored 3, now 4"):
        audit(
            model, x, methods=["deeplift"], baselines=["zero"], n_steps=4, store=path, resume=True
        )
    with pytest.raises(AuditInputError, match=r"model_hash"):
        audit(
            tiny_model(classes=3).requires_grad_(True).apply(_bump).to(device),
            x,
            methods=["deeplift"],
            baselines=["zero"],
            n_steps=3,
            store=path,
            resume=True,
        )
    # other removals: same number (the report mixed two removals' columns) or another number
    # (from_store failed on the stacked scores, and the store was left with the new config)
    for removals in (["zero", "blur", "inpaint-pushpull", "noise"], ["zero", "blur"]):
        with pytest.raises(AuditInputError, match=r"cannot resume .*removals: stored "):
            audit(model, x, methods=["deeplift"], baselines=["zero"], n_steps=3, store=path,
                  resume=True, removals=removals)
    assert _rows(path, "SELECT * FROM scores ORDER BY idx, metric") == before
    # without --resume a store is started again; a finished one silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audit(model, x, methods=["deeplift"], baselines=["zero"], n_steps=4, store=path)
    assert AuditStore(path).config()["n_steps"] == 4
    db = sqlite3.connect(path)  # as a killed run leaves it: one (image, cell) pair missing
    with db:
        db.execute("DELETE FROM done WHERE idx = 2")
    db.close()
    with pytest.warns(UserWarning, match=r"holds an unfinished audit \(2 of 3 \(image, cell\) "
                                         r"pairs done\); starting over. Pass --resume"):
        audit(model, x, methods=["deeplift"], baselines=["zero"], n_steps=3, store=path)
    assert AuditStore(path).count_done() == 3


def _bump(m):
    if isinstance(m, torch.nn.Linear):
        with torch.no_grad():
            m.bias.add_(1.0)


def _argv(model: str, root, out, *extra: str) -> list[str]:
    return [
        "audit",
        "--model",
        model,
        "--data",
        str(root),
        "--n",
        "all",
        "--explain-batch",
        "1",
        "--methods",
        "integrated-gradients",
        "--baselines",
        "zero,blur",
        "--steps",
        "3",
        "--sanity-n",
        "2",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _wait_rows(path, proc, at_least: int) -> int:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the audit ended early: {proc.communicate()}")
        try:
            count = _rows(str(path), "SELECT COUNT(*) FROM done")[0][0]
        except (AssertionError, sqlite3.DatabaseError):
            count = 0
        if count >= at_least:
            return count
        time.sleep(0.05)
    raise AssertionError("the audit wrote nothing in 60 s")


def test_cli_interrupt_kill_and_resume_equal_an_uninterrupted_run(
    tmp_path, image_folder, model_file, capsys
) -> None:
    root = image_folder(n_per_class=3)  # 6 images x 2 cells = 12 (image, cell) pairs
    # each forward sleeps, so that the audit is still running when the signal lands (with 0.05 s
    # one run under a loaded machine finished before its SIGINT arrived)
    slow = model_file(sleep=0.1)
    assert main(_argv(model_file(), root, tmp_path / "whole")) == 0
    capsys.readouterr()
    out, store = tmp_path / "report", tmp_path / "report.sqlite"
    # Ctrl-C: a clean one-line message, exit 130, the work kept
    proc = subprocess.Popen(
        [PYTHON, "-m", "captum_cf", *_argv(slow, root, out)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_rows(store, proc, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    done = _rows(str(store), "SELECT COUNT(*) FROM done")[0][0]
    assert line == f"interrupted; {done} of 12 done; resume with --resume" and 0 < done < 12
    # resume, killed by its PID part-way
    proc = subprocess.Popen(
        [PYTHON, "-m", "captum_cf", *_argv(slow, root, out, "--resume")],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_rows(store, proc, done + 2)
    proc.kill()
    proc.wait(timeout=30)
    killed_at = _rows(str(store), "SELECT COUNT(*) FROM done")[0][0]
    assert killed_at < 12 and not out.exists()
    # the last resume computes the rest; every value equals the uninterrupted run's
    assert main(_argv(model_file(sleep=0.0), root, out, "--resume")) == 2  # another model file
    assert "cannot resume" in capsys.readouterr().err
    # (the same model, imported from the slow file: the weights are equal, sleep is not a weight)
    assert main(_argv(slow, root, out, "--resume")) == 0
    assert report_values(out) == report_values(tmp_path / "whole")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".audit-tmp")) == []


def test_an_unreadable_image_mid_run_keeps_the_work_and_a_repaired_file_resumes(
    tmp_path, image_folder
) -> None:
    from captum_cf.datasets import ImageFolder

    root = image_folder(n_per_class=3)
    last = root / "b" / "02.png"
    good = last.read_bytes()
    kw = dict(methods=["integrated-gradients"], baselines=["zero", "blur"], removals=["zero"],
              n_steps=2, sanity_n=0, explain_batch=2, store=str(tmp_path / "s.sqlite"))
    model = tiny_model(channels=3, side=16)
    whole = audit(model, ImageFolder(str(root)), **{**kw, "store": None})
    last.write_bytes(good[: len(good) // 2])  # truncated: the third batch cannot be read
    with pytest.raises(AuditInputError, match=r"cannot read image .*02\.png.*repair or replace "
                                              r"the file under the same name, then resume"):
        audit(model, ImageFolder(str(root)), **kw)
    assert AuditStore(kw["store"]).count_done() == 4 * 2  # two batches of two images, 2 cells
    last.write_bytes(good)
    resumed = audit(model, ImageFolder(str(root)), resume=True, **kw)
    assert_same_cells(whole, resumed)


def test_every_identity_key_is_a_key_of_the_plans_config(tmp_path) -> None:
    # a misspelt key ("removal" for "removals") read None on both sides: never refused
    from captum_cf.audit.store import IDENTITY_KEYS

    path = str(tmp_path / "s.sqlite")
    audit(tiny_model(), torch.rand(2, 1, 8, 8), methods=["deeplift"], baselines=["zero"],
          n_steps=2, store=path)
    store = AuditStore(path)
    config = store.config()
    store.close()
    optional = {"train_data", "baseline_weights"}  # present when the audit uses them
    assert [k for k in IDENTITY_KEYS if k not in config and k not in optional] == []


def test_a_second_audit_into_the_same_store_is_refused_while_the_first_runs(tmp_path) -> None:
    # it wiped the first one's store and both wrote into it: one run's settings, both runs' rows
    path = str(tmp_path / "rep.sqlite")
    first = AuditStore(path)
    with pytest.raises(AuditInputError, match="another audit is writing .*rep.sqlite"):
        AuditStore(path)
    first.close()
    assert not (tmp_path / "rep.sqlite.lock").exists()  # no leftover beside the report
    AuditStore(path).close()


def test_another_programs_sqlite_file_is_refused_untouched(tmp_path) -> None:
    for schema, shown in (("CREATE TABLE users(name TEXT)", "tables users"),
                          ("CREATE TABLE config(key TEXT PRIMARY KEY, value TEXT)",
                           "its config table holds owner")):
        path = tmp_path / "notes.sqlite"
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute(schema)
        if "config" in schema:
            db.execute("INSERT INTO config VALUES ('owner', 'bob')")
        db.commit()
        db.close()
        before = path.read_bytes()
        with pytest.raises(AuditInputError, match=f"another program's SQLite database \\({shown}"):
            AuditStore(str(path))
        assert path.read_bytes() == before


def test_a_resume_after_the_models_code_changed_is_refused(tmp_path) -> None:
    # a forward edited from ReLU to Tanh keeps the state dict: the resume mixed two models
    class Relu(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(64, 3)

        def forward(self, x):
            return torch.relu(self.fc(x.flatten(1)))

    class Tanh(Relu):
        def forward(self, x):
            return torch.tanh(self.fc(x.flatten(1)))

    x = torch.rand(3, 1, 8, 8)
    store = str(tmp_path / "run.sqlite")
    kwargs = dict(methods=["integrated-gradients"], baselines=["zero"], removals=["zero"],
                  sanity_n=0, n_steps=2, store=store)
    audit(Relu(), x, **kwargs)
    audit(Relu(), x, resume=True, **kwargs)  # the same code: continued
    with pytest.raises(AuditInputError, match=r"the model's code changed"):
        audit(Tanh(), x, resume=True, **kwargs)
    # a store of an earlier version, without the entry, resumes
    db = sqlite3.connect(store)
    db.execute("DELETE FROM config WHERE key = 'model_code'")
    db.commit()
    db.close()
    audit(Relu(), x, resume=True, **kwargs)


def test_store_failures_during_the_audit_are_one_line_with_what_to_do(
    tmp_path, monkeypatch, capsys
) -> None:
    import captum_cf.audit.cli as audit_cli

    argv = ["audit", "--data", "digits", "--n", "2", "--methods", "integrated-gradients",
            "--baselines", "zero", "--removals", "zero", "--sanity-n", "0", "--no-progress",
            "--out", str(tmp_path / "rep")]
    for error, said in ((sqlite3.OperationalError("database is locked"), "is locked by another "
                         "program"),
                        (sqlite3.OperationalError("database or disk is full"), "free space, "
                         "then rerun with --resume"),
                        (sqlite3.DatabaseError("database disk image is malformed"), "is damaged"),
                        (KeyboardInterrupt(), "keeps whatever was stored: rerun the same "
                         "command with --resume")):
        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(audit_cli, "run_audit", fail)
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == (130 if isinstance(error, KeyboardInterrupt) else 2)
        assert said in err and len(err.splitlines()) == 1, err


def test_a_report_that_cannot_be_written_keeps_the_store_and_says_resume(
    tmp_path, monkeypatch, capsys
) -> None:
    from captum_cf.audit.result import AuditResult

    def full(self, out):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AuditResult, "write", full)
    code = main(["audit", "--data", "digits", "--n", "2", "--methods", "integrated-gradients",
                 "--baselines", "zero", "--removals", "zero", "--sanity-n", "0", "--no-progress",
                 "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("captum-cf: error: writing the report")
    assert "No space left on device; every result is kept in" in err[-1]
    assert (tmp_path / "rep.sqlite").exists()


def test_the_model_code_digest_follows_the_functions_its_forward_calls() -> None:
    # a forward calling a module-level act(x): editing act (ReLU to Tanh) was not a change
    from captum_cf.audit.runner import _model_code

    source = """
import torch

def act(x):
    return torch.{fn}(x)

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return act(self.fc(x))
"""

    def digest(fn: str, comment: str = "") -> str:
        namespace = {"__name__": "user_net"}
        exec(comment + source.format(fn=fn), namespace)  # noqa: S102 (the user's model file)
        return _model_code(namespace["Net"]())

    assert digest("relu") != digest("tanh")
    assert digest("relu") == digest("relu", comment="# a comment moves every line\n")
    # a module-level constant it reads and a default value are the model's code too
    scaled = source.replace("return act(self.fc(x))", "return act(self.fc(x)) * SCALE")
    namespace_a, namespace_b = {"__name__": "user_net"}, {"__name__": "user_net"}
    exec("SCALE = 1.0\n" + scaled.format(fn="relu"), namespace_a)  # noqa: S102
    exec("SCALE = 3.0\n" + scaled.format(fn="relu"), namespace_b)  # noqa: S102
    assert _model_code(namespace_a["Net"]()) != _model_code(namespace_b["Net"]())
    defaults = source.replace("def act(x):", "def act(x, k=1.0):").replace(
        "return torch.{fn}(x)", "return torch.{fn}(x) * k")
    namespace_a, namespace_b = {"__name__": "user_net"}, {"__name__": "user_net"}
    exec(defaults.format(fn="relu"), namespace_a)  # noqa: S102
    exec(defaults.replace("k=1.0", "k=2.0").format(fn="relu"), namespace_b)  # noqa: S102
    assert _model_code(namespace_a["Net"]()) != _model_code(namespace_b["Net"]())
    # called as an attribute of a module of the user's (import helpers; helpers.act(x))
    import types

    def via_module(fn: str) -> str:
        helpers = types.ModuleType("user_helpers")
        exec(f"import torch\ndef act(x):\n    return torch.{fn}(x)\n", helpers.__dict__)  # noqa: S102
        namespace = {"__name__": "user_net", "helpers": helpers}
        exec(source.replace("act(self.fc(x))", "helpers.act(self.fc(x))").format(fn="relu"),
             namespace)  # noqa: S102
        return _model_code(namespace["Net"]())

    assert via_module("relu") != via_module("tanh")


def test_ctrl_c_while_the_table_is_printed_is_one_line_and_resumable(
    tmp_path, monkeypatch, capsys
) -> None:
    # the table (and its verdict's statistics) was computed outside the interrupt's handling
    from captum_cf.audit.result import AuditResult

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(AuditResult, "table", interrupted)
    code = main(["audit", "--data", "digits", "--n", "2", "--methods", "integrated-gradients",
                 "--baselines", "zero", "--removals", "zero", "--sanity-n", "0", "--no-progress",
                 "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip()
    assert code == 130 and err.startswith("interrupted while writing the report; every result "
                                          "is kept in"), err
