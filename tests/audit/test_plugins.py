"""Methods, baselines and removals registered by a user: what a buggy one may not change, and
what the registries refuse."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from audit_helpers import tiny_model

from captum_cf.attr import METHODS
from captum_cf.attr.integrated_gradients import _explainer as ig_explainer
from captum_cf.audit import AuditInputError, AuditInterrupted, audit
from captum_cf.baselines import BASELINES, ConstantBaseline

KW = dict(baselines=["zero"], removals=["zero"], sanity_n=0, n_steps=2, n_examples=0)


@pytest.fixture
def registered():
    """Register entries for one test; removed afterwards."""
    added: list[tuple] = []

    def add(registry, name, factory, **kwargs):
        registry.register(name, factory, **kwargs)
        added.append((registry, name))

    yield add
    for registry, name in added:
        registry.unregister(name)


def _bn_model(device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(tiny_model(), nn.BatchNorm1d(3), nn.Dropout(0.5)).to(device).eval()


def _srg(result, method="integrated-gradients", baseline="zero"):
    cell = [c for c in result.cells if (c.method, c.baseline) == (method, baseline)][0]
    return cell.values["srg_zero"]


def test_a_cell_that_changes_the_model_or_the_images_is_put_back_and_fails(registered,
                                                                             device) -> None:
    model, x = _bn_model(device), torch.rand(4, 1, 8, 8, device=device)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clean = audit(model, x, methods=["integrated-gradients"], **KW)

    calls = []

    def train_mode(ctx):  # fine on its probe, then puts the model in train mode in the grid
        def explain(inputs, target, baseline):
            calls.append(1)
            if len(calls) > 1:
                ctx.model.train()
                ctx.model(inputs)  # moves the BatchNorm statistics
            return inputs.clone()
        return explain

    def hooking(ctx):
        def explain(inputs, target, baseline):
            ctx.model.register_forward_hook(lambda m, i, o: o * 2)  # handle dropped
            return inputs.clone()
        return explain

    registered(METHODS, "train-mode", train_mode)
    registered(METHODS, "hooking", hooking, uses_baseline=False)

    class Darken(ConstantBaseline):
        def _reference(self, inputs, target):
            inputs.mul_(0.5)  # the audit's batch, in place
            return super()._reference(inputs, target)

    registered(BASELINES, "darken", lambda ctx: Darken(0.0))
    res = audit(model, x, methods=["train-mode", "integrated-gradients"],
                **{**KW, "baselines": ["zero", "darken"]})
    errors = {(c.method, c.baseline): c.error for c in res.cells}
    assert errors[("train-mode", "zero")].startswith(
        "method 'train-mode' or baseline 'zero' switched 8 module(s) of the model to train mode "
        "(put back; the cell's results are not used)")
    assert errors[("integrated-gradients", "darken")] in (
        "the baseline's reference failed: it changed the images in place (put back)",
        "method 'integrated-gradients' or baseline 'darken' changed the images in place (put "
        "back; the cell's results are not used)")  # as its reference is computed once or lazily
    assert errors[("integrated-gradients", "zero")] is None
    assert torch.equal(_srg(res), _srg(clean))  # the other cells saw the model and images
    assert not model.training and all(torch.equal(v, before[k])
                                      for k, v in model.state_dict().items())
    # a method that leaves a hook is left out by the probe; none stays on the model
    res = audit(model, x, methods=["hooking", "integrated-gradients"], **KW)
    assert res.config["skipped_methods"] == {"hooking": "it left 1 hook(s) on the model"}
    assert torch.equal(_srg(res), _srg(clean))
    assert all(not m._forward_hooks for m in model.modules())


def test_a_removal_is_tried_before_any_work_and_named(registered, tmp_path) -> None:
    class Broken(ConstantBaseline):
        def _reference(self, inputs, target):
            raise RuntimeError("kernel not available")

    registered(BASELINES, "broken", lambda ctx: Broken(0.0))
    registered(BASELINES, "not-a-baseline", lambda ctx: torch.zeros(1))
    for name, why in (("broken", "RuntimeError: kernel not available"),
                      ("not-a-baseline", "TypeError: its factory returned a Tensor")):
        with pytest.raises(AuditInputError, match=f"^removal '{name}' fails on the images: "
                                                  f"{why}"):
            audit(tiny_model(), torch.rand(2, 1, 8, 8), methods=["occlusion"],
                  **{**KW, "removals": ["zero", name]}, store=str(tmp_path / "s.sqlite"))
        assert not (tmp_path / "s.sqlite").exists()


def test_a_resume_after_an_entry_changed_is_refused(registered, tmp_path) -> None:
    path, x = str(tmp_path / "s.sqlite"), torch.rand(4, 1, 8, 8)
    value = {"v": 0.5}
    registered(BASELINES, "grey", lambda ctx: ConstantBaseline(value["v"]))
    calls = []

    def stopping(ctx):
        inner = ig_explainer(ctx, n_steps=4)

        def explain(inputs, target, baseline):
            calls.append(1)
            if len(calls) == 3:  # the probe, batch 0, then Ctrl-C in batch 1
                raise KeyboardInterrupt
            return inner(inputs, target, baseline)
        return explain

    registered(METHODS, "stopping", stopping)
    kw = dict(methods=["stopping"], **{**KW, "baselines": ["grey"]}, explain_batch=2, store=path)
    with pytest.raises(AuditInterrupted):
        audit(tiny_model(), x, **kw)
    value["v"] = 0.0  # the same name, a factory giving another baseline now
    with pytest.raises(AuditInputError, match=r"the code or settings of baseline 'grey' changed"):
        audit(tiny_model(), x, **kw, resume=True)
    value["v"] = 0.5
    assert len(audit(tiny_model(), x, **kw, resume=True).cells[0].values["srg_zero"]) == 4


@pytest.mark.parametrize("name", ["", "-", "all", "a,b", "x/y", " padded", "new\nline", 5, None])
def test_register_refuses_names_that_are_not_columns_options_or_keys(name) -> None:
    with pytest.raises(ValueError, match="name must be a str of letters, digits"):
        BASELINES.register(name, lambda ctx: ConstantBaseline(0.0))


def test_register_refuses_an_instance_and_unregister_frees_the_name(registered) -> None:
    with pytest.raises(TypeError, match=r"register a factory that builds the baseline from the "
                                        r"audit's context, e\.g\. lambda ctx: "
                                        r"ConstantBaseline\(value=0\.5\)"):
        BASELINES.register("grey", ConstantBaseline(0.5))
    with pytest.raises(TypeError, match="must be callable"):
        METHODS.register("m", "not callable")
    BASELINES.register("grey", lambda ctx: ConstantBaseline(0.5))
    with pytest.raises(ValueError, match="already registered"):
        BASELINES.register("grey", lambda ctx: ConstantBaseline(0.25))
    BASELINES.unregister("grey")
    registered(BASELINES, "grey", lambda ctx: ConstantBaseline(0.25))
    with pytest.raises(KeyError, match="unknown baseline 'nothing'"):
        BASELINES.unregister("nothing")


def test_an_available_that_raises_is_named(registered) -> None:
    registered(BASELINES, "picky", lambda ctx: ConstantBaseline(0.0),
               available=lambda ctx: ctx.extras["my_key"])
    with pytest.raises(AuditInputError, match=r"the available\(\) of baseline 'picky' failed: "
                                              r"KeyError: 'my_key'"):
        audit(tiny_model(), torch.rand(2, 1, 8, 8), methods=["occlusion"], **KW)


def test_list_shows_what_the_model_file_registers(tmp_path, capsys) -> None:
    from captum_cf.cli import main

    plug = tmp_path / "plug.py"
    plug.write_text(
        "import torch.nn as nn\n"
        "from captum_cf.baselines import BASELINES, ConstantBaseline\n"
        "BASELINES.register('grey-plugin', lambda ctx: ConstantBaseline(0.5), 'plug-in grey')\n"
        "def make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n"
    )
    try:
        assert main(["audit", "--list", "--model", f"{plug}:make"]) == 0
        assert "grey-plugin" in capsys.readouterr().out and "grey-plugin" in BASELINES
    finally:
        if "grey-plugin" in BASELINES:
            BASELINES.unregister("grey-plugin")


def test_the_explanation_time_counts_the_baselines_reference(registered) -> None:
    import time

    class Slow(ConstantBaseline):
        def _reference(self, inputs, target):
            time.sleep(0.2)
            return super()._reference(inputs, target)

    registered(BASELINES, "slow-zero", lambda ctx: Slow(0.0))
    res = audit(tiny_model(), torch.rand(4, 1, 8, 8), methods=["integrated-gradients"],
                **{**KW, "baselines": ["zero", "slow-zero"]}, explain_batch=4)
    seconds = {c.baseline: c.seconds_per_image for c in res.cells}
    assert seconds["slow-zero"] >= 0.2 / 4 > seconds["zero"]


def test_a_removal_that_needs_the_class_passes_the_check(registered) -> None:
    class NeedsClass(ConstantBaseline):
        needs_target = True

        def _reference(self, inputs, target):
            assert target is not None  # the curves pass the explained class
            return super()._reference(inputs, target)

    registered(BASELINES, "needs-class", lambda ctx: NeedsClass(0.3))
    res = audit(tiny_model(), torch.rand(2, 1, 8, 8), methods=["integrated-gradients"],
                **{**KW, "removals": ["zero", "needs-class"]})
    assert res.cells[0].error is None and len(res.cells[0].values["srg_needs-class"]) == 2


def test_writes_the_version_counter_misses_and_a_train_eval_round_trip_are_caught(
        registered, device) -> None:
    model, x = _bn_model(device), torch.rand(4, 1, 8, 8, device=device)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clean = audit(model, x, methods=["integrated-gradients"], **KW)

    def through_data(ctx):  # .data (or a NumPy view) does not bump the version counter
        def explain(inputs, target, baseline):
            inputs.data.mul_(0.5)
            return inputs.clone()
        return explain

    def round_trip(ctx):  # train mode and back: the BatchNorm statistics moved
        def explain(inputs, target, baseline):
            ctx.model.train()
            ctx.model(torch.cat([inputs, inputs]))  # BatchNorm1d in train mode needs 2 rows
            ctx.model.eval()
            return inputs.clone()
        return explain

    registered(METHODS, "through-data", through_data, uses_baseline=False)
    registered(METHODS, "round-trip", round_trip, uses_baseline=False)
    res = audit(model, x, methods=["through-data", "round-trip", "integrated-gradients"], **KW)
    assert res.config["skipped_methods"] == {
        "through-data": "it changed the images in place",
        "round-trip": "it ran the model in train mode (its BatchNorm statistics moved)"}
    assert torch.equal(_srg(res), _srg(clean))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_baseline_factory_that_returns_no_baseline_is_named(registered) -> None:
    registered(BASELINES, "half", lambda ctx: 0.5)
    res = audit(tiny_model(), torch.rand(2, 1, 8, 8), methods=["integrated-gradients"],
                **{**KW, "baselines": ["zero", "half"]})
    errors = {c.baseline: c.error for c in res.cells}
    assert errors["zero"] is None
    assert errors["half"] == ("the baseline's reference failed: TypeError: its factory returned "
                              "a float, not a captum_cf Baseline (register a function of the "
                              "audit's context that builds one)")


def test_a_store_of_an_earlier_version_without_entries_resumes(tmp_path) -> None:
    import sqlite3

    path, x = str(tmp_path / "s.sqlite"), torch.rand(4, 1, 8, 8)
    kw = dict(methods=["integrated-gradients"], **KW, explain_batch=2, store=path)
    whole = audit(tiny_model(), x, **kw)
    db = sqlite3.connect(path)
    with db:  # as an earlier version wrote it, one batch missing
        db.execute("DELETE FROM config WHERE key = 'entries'")
        db.execute("DELETE FROM done WHERE idx >= 2")
    db.close()
    resumed = audit(tiny_model(), x, **kw, resume=True)
    assert torch.equal(_srg(resumed), _srg(whole))
