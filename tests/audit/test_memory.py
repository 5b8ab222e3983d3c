"""Out-of-memory recovery and failure isolation of the audit's grid (captum_cf.audit.memory)."""

from __future__ import annotations

import pytest
import torch
from audit_helpers import tiny_model

from captum_cf._registry import _Entry
from captum_cf.attr import METHODS
from captum_cf.attr.integrated_gradients import _explainer as ig_explainer
from captum_cf.audit import audit
from captum_cf.audit.memory import is_out_of_memory, split_budget
from captum_cf.baselines import BASELINES, BlurBaseline

#: the audit runner also on the simulated device (tests/simulated_device.py), in CI too
pytestmark = pytest.mark.simdev

OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"
KW = dict(baselines=["zero"], removals=["zero", "blur"], n_steps=3, sanity_n=0, n_examples=2)


def _values(res):
    return {(c.method, c.baseline, m): (c.index[m], c.values[m])
            for c in res.cells for m in c.values}


def _fragile(monkeypatch, max_images=10**9, max_internal=10**9, bad=None, error=None):
    """Register ``fragile``: Integrated Gradients that raises CUDA's out-of-memory error on
    more than ``max_images`` images or with passes of more than ``max_internal``, and ``error``
    (another exception) on every call when given, or on calls holding an image whose first pixel
    is ``bad``. Returns the list of (images, internal batch) of every call."""
    calls = []

    def factory(ctx):
        inner = ig_explainer(ctx)
        internal = int(ctx.extras["internal_batch_size"])

        def explain(x, t, baseline):
            calls.append((len(x), internal))
            if len(x) > max_images or internal > max_internal:
                raise torch.cuda.OutOfMemoryError(OOM)
            if error is not None:
                raise error
            if bad is not None and bool((x[:, 0, 0, 0] == bad).any()):
                raise ValueError("cannot explain this image\nsecond line")
            return inner(x, t, baseline)

        return explain

    monkeypatch.setitem(METHODS._entries, "fragile", _Entry(factory, "", lambda c: True))
    return calls


def _expected(model, x, **kw):
    """The same audit with plain Integrated Gradients, renamed as the fragile cells."""
    res = audit(model, x, methods=["integrated-gradients"], **{**KW, **kw})
    return {("fragile", *k[1:]): v for k, v in _values(res).items()}


def _assert_close(got, expected, skip=()):
    assert got.keys() == expected.keys()
    for k, (index, v) in expected.items():
        keep = [j for j, i in enumerate(index) if i not in skip]
        assert got[k][0] == [index[j] for j in keep], k
        torch.testing.assert_close(got[k][1], v[keep], rtol=1e-4, atol=1e-5)


def test_a_cell_out_of_memory_runs_again_in_smaller_parts_and_keeps_the_level(
    device, monkeypatch
) -> None:
    calls = _fragile(monkeypatch, max_images=2)
    model, x = tiny_model().to(device), torch.rand(10, 1, 8, 8, device=device)
    with pytest.warns(RuntimeWarning, match=r"fragile x zero ran out of memory .*continuing "
                      r"with 4 image\(s\) per explanation call"):
        res = audit(model, x, methods=["fragile"], explain_batch=8, **KW)
    assert res.cells[0].error is None and res.cells[0].done == 10
    _assert_close(_values(res), _expected(model, x, explain_batch=8))
    # probe (1 image); batch 0 of 8: out of memory at 8 and at 4, then parts of 2; batch 1 of 2
    # starts at the level the cell reached: no error again
    assert [n for n, _ in calls] == [1, 8, 4, 2, 2, 2, 2, 2]


def test_passes_too_large_for_memory_are_halved_and_the_probe_keeps_the_method(
    device, monkeypatch
) -> None:
    calls = _fragile(monkeypatch, max_internal=3)
    model, x = tiny_model().to(device), torch.rand(5, 1, 8, 8, device=device)
    with pytest.warns(RuntimeWarning, match="ran out of memory"):
        res = audit(model, x, methods=["fragile"], explain_batch=5, **KW)
    assert res.config["skipped_methods"] == {}
    assert res.cells[0].error is None
    _assert_close(_values(res), _expected(model, x, explain_batch=5))
    internals = [i for _, i in calls]
    assert internals[0] == 256 and internals[-1] <= 3  # the plan's passes, then halved to fit
    assert all(i <= 3 for n, i in calls[internals.index(internals[-1]):])


def test_out_of_memory_on_one_image_fails_that_cell_only(device, monkeypatch) -> None:
    calls = _fragile(monkeypatch, max_images=0)
    model, x = tiny_model().to(device), torch.rand(6, 1, 8, 8, device=device)
    with pytest.warns(RuntimeWarning, match="ran out of memory") as record:
        res = audit(model, x, methods=["fragile", "integrated-gradients"], explain_batch=3, **KW)
    halvings = sum("ran out of memory" in str(w.message) for w in record)
    errors = {c.method: c.error for c in res.cells}
    assert errors["integrated-gradients"] is None
    assert errors["fragile"] == (f"OutOfMemoryError: {OOM} (out of memory with one image "
                                 "per pass)")
    assert not any(v.numel() for v in res.cells[0].values.values())
    # one call per halving until every size is 1, then each image fails once; the second batch
    # starts at that level: one call per image
    assert calls[-6:] == [(1, 1)] * 6 and halvings >= 8  # 256 -> 1
    assert len(calls) == 1 + halvings + 3 + 3


def test_an_image_a_method_cannot_explain_fails_alone(device, monkeypatch) -> None:
    calls = _fragile(monkeypatch, bad=0.5)
    model, x = tiny_model().to(device), torch.rand(8, 1, 8, 8, device=device)
    x[5, 0, 0, 0] = 0.5
    res = audit(model, x, methods=["fragile"], explain_batch=8, **KW)
    assert res.cells[0].error == "1 of 8 images: ValueError: cannot explain this image"
    _assert_close(_values(res), _expected(model, x, explain_batch=8), skip={5})
    # bisection: 8, its good half 4, the bad half 4 -> 2 -> 1, each good half once
    assert [n for n, _ in calls[1:]] == [8, 4, 4, 2, 1, 1, 2]


def test_a_cell_failing_on_every_image_costs_a_bounded_number_of_calls(
    device, monkeypatch
) -> None:
    calls = _fragile(monkeypatch, error=RuntimeError("wrong everywhere"))
    model, x = tiny_model().to(device), torch.rand(16, 1, 8, 8, device=device)
    # the probe sees the error: the method is left out; the grid is asked for it directly
    monkeypatch.setattr("captum_cf.audit.model.probe_methods",
                        lambda model, names, *a, **k: (list(names), {}))
    res = audit(model, x, methods=["fragile"], explain_batch=16, **KW)
    assert res.cells[0].error == "RuntimeError: wrong everywhere"
    assert res.cells[0].done == 16
    assert sum(n for n, _ in calls) <= 3 * 16  # at most about twice the batch's work again
    assert len(calls) <= 2 * split_budget(16) + 3


def test_references_out_of_memory_are_computed_in_parts(device, monkeypatch) -> None:
    seen = []

    class Tight(BlurBaseline):
        def _reference(self, inputs, target):
            seen.append(len(inputs))
            if len(inputs) > 2:
                raise torch.cuda.OutOfMemoryError(OOM)
            return super()._reference(inputs, target)

    monkeypatch.setitem(BASELINES._entries, "tight",
                        _Entry(lambda ctx: Tight(1.0), "", lambda c: True))
    model, x = tiny_model().to(device), torch.rand(6, 1, 8, 8, device=device)
    kw = dict(methods=["integrated-gradients"], removals=["zero"], n_steps=3, sanity_n=0,
              explain_batch=6)
    got = audit(model, x, baselines=["tight"], **kw)
    want = audit(model, x, baselines=["blur"], **kw)
    assert got.cells[0].error is None
    for (m, _, metric), (index, v) in _values(want).items():
        assert _values(got)[m, "tight", metric][0] == index
        torch.testing.assert_close(_values(got)[m, "tight", metric][1], v)
    assert seen[:3] == [6, 3, 2]


@pytest.mark.parametrize(
    ("err", "oom"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory."), True),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                      "memory: you tried to allocate 1073741824 bytes."), True),
        (RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"), True),
        (MemoryError(), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_errors_are_recognised(err, oom) -> None:
    assert is_out_of_memory(err) is oom


class _Small(torch.nn.Module):
    """A model whose passes of more than ``limit`` images run out of memory."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.net, self.limit, self.sizes = tiny_model(), limit, []

    def forward(self, x):
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError(OOM)
        return self.net(x)


def test_a_model_that_fits_only_small_passes_is_audited_as_if_it_fitted(device) -> None:
    small = _Small(3).to(device)
    x = torch.rand(6, 1, 8, 8, device=device)
    kw = dict(methods=["integrated-gradients", "occlusion"], baselines=["zero"],
              removals=["zero", "inpaint-pushpull"], n_steps=2, sanity_n=2, explain_batch=6)
    with pytest.warns(RuntimeWarning, match="ran out of memory"):
        got = audit(small, x, **kw)
    want = audit(small.net, x, **kw)
    assert [c.error for c in got.cells] == [None] * 2
    assert max(small.sizes[1:]) > 3  # it did run out (the plan's passes are larger)
    _assert_close(_values(got), {k: v for k, v in _values(want).items()})
    assert got.roms.keys() == want.roms.keys() == {"zero", "inpaint-pushpull"}
    for r in want.roms:
        torch.testing.assert_close(got.roms[r], want.roms[r], rtol=1e-4, atol=1e-5)
