"""The grid runner: data sources, streaming batches, settings checks, duplicate work, memory."""

from __future__ import annotations

import pytest
import torch
from audit_helpers import CountingModel, tiny_model
from torch.utils.data import DataLoader

from captum_cf._registry import AuditContext, _Entry
from captum_cf.attr import METHODS
from captum_cf.audit import AuditInputError, audit
from captum_cf.audit.data import TensorImages
from captum_cf.audit.runner import plan_batches
from captum_cf.metrics import randomization_test

#: the audit runner also on the simulated device (tests/simulated_device.py), in CI too
pytestmark = pytest.mark.simdev


def _values(res):
    return {(c.method, c.baseline, m): c.values[m] for c in res.cells for m in c.values}


def test_tensor_dataset_and_loader_give_the_same_per_image_results(device) -> None:
    model, x = tiny_model().to(device), torch.rand(7, 1, 8, 8, device=device)
    masks = torch.zeros(7, 1, 8, 8, dtype=torch.bool, device=device)
    masks[..., 2:5, 2:5] = True
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    kw = dict(
        methods=["integrated-gradients", "occlusion"],
        baselines=["zero", "blur"],
        removals=["zero", "blur"],  # noise-free (ROAD's noise is drawn per batch position)
        n_steps=3,
        sanity_n=3,
        explain_batch=3,
    )
    ref = audit(model, x, masks=masks, **kw)
    ds = TensorImages(x, labels, masks)
    from_ds = audit(model, ds, **kw)
    from_loader = audit(model, DataLoader(ds, batch_size=2), **kw)
    for other in (from_ds, from_loader):
        assert _values(other).keys() == _values(ref).keys()
        for k, v in _values(ref).items():
            assert torch.equal(v, _values(other)[k]), k
    assert [im["label"] for im in from_ds.images] == labels.tolist()
    assert [im["label"] for im in ref.images] == [None] * 7
    assert [im["id"] for im in from_loader.images] == [str(i) for i in range(7)]
    # the explanation batch changes which images share a batch, not the values (deterministic
    # methods; float tolerance of batched arithmetic)
    one_batch = audit(model, x, masks=masks, **{**kw, "explain_batch": 7})
    for k, v in _values(ref).items():
        torch.testing.assert_close(v, _values(one_batch)[k], rtol=1e-4, atol=1e-5)
    assert ref.cells[0].index["sanity_ssim"] == [0, 1, 2]


def test_a_loader_that_does_not_read_in_order_is_refused(device) -> None:
    from torch.utils.data import SubsetRandomSampler

    model, x = tiny_model().to(device), torch.rand(4, 1, 8, 8, device=device)
    ds = TensorImages(x, torch.tensor([0, 1, 2, 0]), None)
    kw = dict(methods=["occlusion"], baselines=["zero"], sanity_n=0, n_steps=2)
    for loader in (DataLoader(ds, batch_size=2, shuffle=True),
                   DataLoader(ds, batch_size=2, sampler=SubsetRandomSampler([0, 2]))):
        with pytest.raises(ValueError, match="a DataLoader must read its dataset in order"):
            audit(model, loader, **kw)
    # in order, with an explicit batch sampler, is accepted
    from torch.utils.data import BatchSampler, SequentialSampler

    ordered = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 3, False))
    assert [im["id"] for im in audit(model, ordered, **kw).images] == ["0", "1", "2", "3"]


def test_a_baseline_whose_reference_fails_fails_its_cells_only(device, monkeypatch,
                                                                tmp_path) -> None:
    from captum_cf.baselines import BASELINES, BlurBaseline

    class Broken(BlurBaseline):
        def _reference(self, inputs, target):
            raise RuntimeError("no reference here\nsecond line")

    monkeypatch.setitem(BASELINES._entries, "broken",
                        _Entry(lambda ctx: Broken(1.0), "", lambda c: True))
    model, x = tiny_model().to(device), torch.rand(3, 1, 8, 8, device=device)
    res = audit(model, x, methods=["integrated-gradients", "occlusion"],
                baselines=["zero", "broken"], removals=["zero"], sanity_n=0, n_steps=2,
                explain_batch=2)
    # as a removal it would fail every cell (each map's curves use every removal), after the
    # explanations: refused before any work, named, and no store is left behind
    store = tmp_path / "broken.sqlite"
    with pytest.raises(AuditInputError, match=r"^removal 'broken' fails on the images: "
                                              r"RuntimeError: no reference here$"):
        audit(model, x, methods=["occlusion"], baselines=["zero"], removals=["zero", "broken"],
              sanity_n=0, n_steps=2, store=str(store))
    assert not store.exists()
    errors = {(c.method, c.baseline): c.error for c in res.cells}
    expected = "the baseline's reference failed: RuntimeError: no reference here"
    assert errors == {("integrated-gradients", "zero"): None, ("occlusion", "zero"): None,
                      ("integrated-gradients", "broken"): expected,
                      ("occlusion", "broken"): expected}
    assert all(len(c.values["srg_zero"]) == 3 for c in res.cells if c.baseline == "zero")


def test_device_argument_copies_the_model_and_leaves_it_in_place(device) -> None:
    model, x = tiny_model(), torch.rand(3, 1, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = audit(
        model, x, methods=["deeplift"], baselines=["zero"], n_steps=2, sanity_n=2, device=device
    )
    assert res.config["device"].startswith(device.type) and res.cells[0].error is None
    on_cpu = audit(model, x, methods=["deeplift"], baselines=["zero"], n_steps=2, sanity_n=2)
    for k, v in _values(on_cpu).items():
        torch.testing.assert_close(_values(res)[k], v, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, k=k: f"{k}: {m}")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert next(model.parameters()).device.type == "cpu" and not model.training


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_steps": 0}, ValueError, "n_steps must be >= 1"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"explain_batch": 0}, ValueError, "explain_batch must be >= 1"),
        ({"sanity_n": -1}, ValueError, "sanity_n must be >= 0"),
        ({"n_examples": -1}, ValueError, "n_examples must be >= 0"),
        ({"seed": "a"}, TypeError, "seed must be an int"),
        ({"n_steps": 2.5}, TypeError, "n_steps must be an int"),
        ({"workers": -1}, ValueError, "workers must be >= 0"),
        ({"methods": "deeplift"}, TypeError, "methods must be a sequence of names"),
        ({"masks": torch.full((2, 1, 8, 8), float("nan"))}, ValueError, "masks must be binary"),
        ({"masks": torch.full((2, 1, 8, 8), 0.5)}, ValueError, "masks must be binary"),
        ({"masks": torch.ones(2, 1, 4, 4)}, ValueError, r"masks must have shape \(2, 1, 8, 8\)"),
        ({"resume": 1}, TypeError, "resume must be a bool"),
    ],
)
def test_bad_settings_are_refused_before_any_work(kwargs, error, message) -> None:
    model = CountingModel()
    x = torch.rand(2, 1, 8, 8)
    x0 = x.clone()
    with pytest.raises(error, match=message):
        audit(model, x, **{"methods": ["deeplift"], "baselines": ["zero"], **kwargs})
    assert model.calls == 0 and torch.equal(x, x0)


def test_sanity_check_reuses_the_grids_maps(monkeypatch, device) -> None:
    calls = []

    def counted(ctx):
        ig = METHODS.create("integrated-gradients", ctx)

        def explain(x, t, b):
            calls.append(len(x))
            return ig(x, t, b)

        return explain

    monkeypatch.setitem(METHODS._entries, "counted", _Entry(counted, "", lambda c: True))
    model, x = tiny_model().to(device), torch.rand(4, 1, 8, 8).to(device)
    res = audit(model, x, methods=["counted"], baselines=["zero"], n_steps=2, sanity_n=2)
    # the applicability probe (1 image), the grid's maps once, the randomised model's maps of 2
    assert calls == [1, 4, 2]
    t = model(x).argmax(1)
    ctx = AuditContext(model, "custom", None, 3, (1, 8, 8), device=device)
    ig, zero = METHODS.create("integrated-gradients", ctx), None
    from captum_cf.baselines import BASELINES

    zero = BASELINES.create("zero", ctx)
    direct = randomization_test(model, lambda a, b: ig(a, b, zero), x[:2], t[:2], layers=["3"])
    torch.testing.assert_close(
        res.cells[0].values["sanity_ssim"], direct.similarity[:, 0].cpu()
    )


def test_a_method_that_ignores_baselines_runs_once(device) -> None:
    model, x = tiny_model().to(device), torch.rand(2, 1, 8, 8).to(device)
    res = audit(
        model,
        x,
        methods=["sparse-perturbation", "deeplift"],
        baselines=["zero", "blur"],
        n_steps=2,
        sanity_n=0,
    )
    assert [(c.method, c.baseline) for c in res.cells] == [
        ("sparse-perturbation", "-"),
        ("deeplift", "zero"),
        ("deeplift", "blur"),
    ]
    assert not METHODS.uses_baseline("sparse-perturbation") and METHODS.uses_baseline("deeplift")
    assert "sparse-perturbation  -" in res.table()


def test_memory_rule_sizes_batches_from_the_image_size() -> None:
    cpu = torch.device("cpu")
    # 2**21 // (224 * 224) = 41 images per explanation call, 2**20 // 50176 = 20 per pass with
    # gradients; 1.5 * 2**20 // 50176 = 31 without (the CPU's no-grad budget is smaller than
    # memory allows: larger passes run slower per image)
    assert plan_batches((3, 224, 224), cpu) == {
        "explain": 41,
        "internal": 20,
        "forward": 31,
        "forward_images": 31,
    }
    assert plan_batches((1, 32, 32), cpu) == {
        "explain": 256,
        "internal": 256,
        "forward": 256,
        "forward_images": 1536,
    }
    assert plan_batches((3, 224, 224), cpu, batch_size=10, explain_batch=3) == {
        "explain": 3,
        "internal": 20,
        "forward": 10,
        "forward_images": 10,
    }


def test_memory_rule_on_cuda_scales_with_the_free_memory(monkeypatch) -> None:
    """The CUDA branch, by hand (runs without a GPU: only ``mem_get_info`` is asked)."""
    asked = []

    def free_memory(gib: float):
        def mem_get_info(device):
            asked.append(device)
            return int(gib * 2**30), 80 * 2**30
        return mem_get_info

    cuda = torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", free_memory(16))
    # scale 16 GiB / 4 GiB = 4: 4 * 2**21 // 50176 = 167 with gradients, 4 * 2**22 // 50176 = 334
    # without (a pass of the curves holds at most 256)
    assert plan_batches((3, 224, 224), cuda) == {
        "explain": 167,
        "internal": 167,
        "forward": 256,
        "forward_images": 334,
    }
    assert asked == [cuda]
    # almost no free memory: the scale stops at 1/4 (2**19 // 50176 = 10, 2**20 // 50176 = 20)
    monkeypatch.setattr(torch.cuda, "mem_get_info", free_memory(0.1))
    assert plan_batches((3, 224, 224), cuda) == {
        "explain": 10,
        "internal": 10,
        "forward": 20,
        "forward_images": 20,
    }
    # a 4 GiB card equals the CPU's explanation batch; its passes are the GPU budgets
    monkeypatch.setattr(torch.cuda, "mem_get_info", free_memory(4))
    assert plan_batches((3, 224, 224), cuda, batch_size=7) == {
        "explain": 41,
        "internal": 41,
        "forward": 7,
        "forward_images": 7,
    }


def test_perturbation_methods_fit_their_passes_in_the_forward_budget(device) -> None:
    seen = []
    model = tiny_model().to(device)
    model.register_forward_hook(lambda m, i, o: seen.append((len(i[0]), i[0].device)))
    x = torch.rand(4, 1, 8, 8).to(device)
    audit(model, x, methods=["occlusion"], baselines=["zero"], n_steps=2, sanity_n=0, batch_size=8)
    sizes = [n for n, _ in seen]
    assert max(sizes) <= 8 and sizes.count(8) > 0  # 2 perturbations x 4 images per pass
    assert all(d == x.device for _, d in seen)


def test_the_audits_road_solve_is_as_accurate_at_224_px_as_at_32(device):
    # the error a residual tolerance leaves grows with the square of the hole's width: the audit
    # scales its tolerance with the image side, so large images are not imputed less faithfully
    from captum_cf.audit.runner import _removal
    from captum_cf.baselines import NoisyLinearImputation

    errors = {}
    for side in (32, 224):
        gen = torch.Generator().manual_seed(side)
        low = torch.rand(2, 3, 5, 5, generator=gen)
        x = torch.nn.functional.interpolate(low, size=(side, side), mode="bicubic",
                                            align_corners=True).clamp(0, 1).to(device)
        keep = torch.ones(2, 1, side, side, device=device)
        keep[0, :, side // 8 : -side // 8, side // 8 : -side // 8] = 0
        keep[1, :, :, side // 3 :] = 0
        removal = _removal(NoisyLinearImputation(noise=0.0), side)
        exact = NoisyLinearImputation(noise=0.0, tol=1e-9).fill(x.double(), keep.double())
        errors[side] = float((removal.fill(x, keep).double() - exact).pow(2).mean().sqrt())
    assert errors[224] < 1e-3 and errors[32] < 5e-3
    assert errors[224] < 2 * errors[32]


def test_the_callers_random_state_is_restored(device) -> None:
    """The audit seeds every batch; the caller's generators are as they were afterwards."""
    model, x = tiny_model(), torch.rand(3, 1, 8, 8)
    torch.manual_seed(1234)
    cpu = torch.get_rng_state()
    gpu = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    audit(model, x, methods=["integrated-gradients"], baselines=["noise"], n_steps=2, sanity_n=2,
          device=device)
    assert torch.equal(torch.get_rng_state(), cpu)
    if gpu is not None:
        assert torch.equal(torch.cuda.get_rng_state(device), gpu)
    # and the next draw is the one the caller expects
    assert torch.equal(torch.rand(4), torch.rand(4, generator=torch.Generator().manual_seed(1234)))


def test_a_torchscript_model_is_audited_without_the_sanity_check() -> None:
    """Its layers cannot be re-initialised one by one: the sanity step raised for the first
    sanity_n images, which lost every other metric of theirs too."""
    model, x = torch.jit.script(tiny_model()), torch.rand(4, 1, 8, 8)
    with pytest.warns(RuntimeWarning, match="no sanity check: the model is a TorchScript module"):
        res = audit(model, x, methods=["integrated-gradients"], baselines=["zero"], n_steps=2,
                    sanity_n=2, removals=["zero"])
    (cell,) = res.cells
    assert cell.error is None and "sanity_ssim" not in cell.values
    assert len(cell.values["srg_zero"]) == 4
