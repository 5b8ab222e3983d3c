"""The learned baselines (ganmex, exaggeration, inpaint-learned) with a model the user trained
for their own classifier and images: ``audit(..., baseline_weights=)``,
``captum-cf audit --baseline-weights NAME=FILE``."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn as nn

from captum_cf import zoo
from captum_cf._registry import AuditContext
from captum_cf.audit import AuditInputError, audit
from captum_cf.audit.cli import parse_baseline_weights
from captum_cf.baselines import BASELINES
from captum_cf.generative import GANMEXConfig, GANMEXGenerator
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator

LEARNED = ("ganmex", "exaggeration", "inpaint-learned", "sparse-counterfactual")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3)).eval()


def _save(path, model, arch):
    zoo.save_weights(path, name=path.stem, arch=arch, config=model.config.to_dict(),
                     model=model, metrics={})
    return str(path)


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(1)
    g = GANMEXGenerator(GANMEXConfig(image_size=16, channels=1, num_classes=3, base_channels=8,
                                     critic_layers=2))
    e = ExaggerationGenerator(ExaggerationConfig(image_size=16, channels=1, num_classes=3,
                                                 positive_class=1, base_channels=4,
                                                 critic_channels=4))
    big = GANMEXGenerator(GANMEXConfig(image_size=32, channels=1, num_classes=3,
                                       base_channels=8, critic_layers=2))
    ten = GANMEXGenerator(GANMEXConfig(image_size=16, channels=1, num_classes=10,
                                       base_channels=8, critic_layers=2))
    inpainter = tmp_path / "i.pt"  # the digits inpainter is fully convolutional, 1 channel
    shutil.copy(zoo.entry("digits-inpainter").path, inpainter)
    robust_config = {"in_channels": 1, "num_classes": 3, "image_size": 16, "channels": [4, 8],
                     "hidden": 8, "mean": [0.5], "std": [0.25]}
    robust = zoo.build_classifier(robust_config)
    zoo.save_weights(tmp_path / "r.pt", name="r", arch="small-cnn", config=robust_config,
                     model=robust, metrics={})
    rgb = zoo.build_classifier({**robust_config, "in_channels": 3, "mean": [0.5] * 3,
                                "std": [0.25] * 3})
    zoo.save_weights(tmp_path / "rgb.pt", name="rgb", arch="small-cnn",
                     config={**robust_config, "in_channels": 3}, model=rgb, metrics={})
    return {
        "sparse-counterfactual": str(tmp_path / "r.pt"),
        "rgb": str(tmp_path / "rgb.pt"),
        "ganmex": _save(tmp_path / "g.pt", g, "ganmex-generator"),
        "exaggeration": _save(tmp_path / "e.pt", e, "exaggeration-generator"),
        "inpaint-learned": str(inpainter),
        "big": _save(tmp_path / "big.pt", big, "ganmex-generator"),
        "ten": _save(tmp_path / "ten.pt", ten, "ganmex-generator"),
    }


def _ctx(model, weights=None, device="cpu"):
    extras = {} if weights is None else {"baseline_weights": weights}
    return AuditContext(model, "custom", None, 3, (1, 16, 16), device=torch.device(device),
                        extras=extras)


def test_the_given_files_make_the_learned_baselines_available_and_are_loaded(files) -> None:
    model = _net()
    assert not set(LEARNED) & set(BASELINES.names(_ctx(model)))  # no zoo model for this data
    given = {k: files[k] for k in LEARNED}
    ctx = _ctx(model, given)
    assert set(LEARNED) <= set(BASELINES.names(ctx))
    expected = zoo.read_weights(files["ganmex"])["state_dict"]
    generator = BASELINES.create("ganmex", ctx).generator
    assert all(torch.equal(generator.state_dict()[k], v.float()) for k, v in expected.items())
    assert BASELINES.create("exaggeration", ctx).generator.config.positive_class == 1
    robust = BASELINES.create("sparse-counterfactual", ctx)._model
    stored = zoo.read_weights(files["sparse-counterfactual"])["state_dict"]
    assert all(torch.equal(robust.state_dict()[k], v) for k, v in stored.items())
    # files that do not fit the images or the model are not available
    assert "ganmex" not in BASELINES.names(_ctx(model, {"ganmex": files["big"]}))
    assert "ganmex" not in BASELINES.names(_ctx(model, {"ganmex": files["ten"]}))


def test_audit_runs_the_learned_cells_with_the_given_files(files, device) -> None:
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2)).to(device)
    given = {k: files[k] for k in LEARNED}
    for name, needs in (("ganmex", "--baseline-weights ganmex=FILE of captum-cf train ganmex"),
                        ("inpaint-learned", "--baseline-weights inpaint-learned=FILE of "
                         "captum-cf train inpainter"),
                        ("sparse-counterfactual", "--baseline-weights sparse-counterfactual=FILE"),
                        ("exaggeration", "--baseline-weights exaggeration=FILE")):
        with pytest.raises(AuditInputError, match=f"'{name}' is not available for this model and "
                           f"data: it needs .*{needs}"):
            audit(_net().to(device), x, methods=["integrated-gradients"], baselines=[name],
                  sanity_n=0, n_steps=2)
    result = audit(_net().to(device), x, methods=["integrated-gradients"],
                   baselines=["zero", *LEARNED], sanity_n=0, n_steps=2, baseline_weights=given)
    cells = [tuple(c) for c in result.config["cells"]]
    assert cells == [("integrated-gradients", b) for b in ("zero", *LEARNED)]
    assert set(result.config["baseline_weights"]) == set(LEARNED)
    assert result.config["baseline_files"] == dict(sorted(given.items()))


def test_files_that_do_not_fit_are_refused_before_any_work(files, tmp_path) -> None:
    x = torch.rand(2, 1, 16, 16)
    cases = [
        ({"exaggeration": files["ganmex"]}, r"architecture 'ganmex-generator', exaggeration "
                                            r"needs 'exaggeration-generator'"),
        ({"ganmex": files["big"]}, "built for 32x32 images, the images are 16x16"),
        ({"ganmex": files["ten"]}, "built for 10 classes, the model has 3"),
        ({"sparse-counterfactual": files["rgb"]}, "built for 3-channel images, the images have 1"),
        ({"sparse-counterfactual": files["ganmex"]}, r"needs 'small-cnn' \(captum-cf train robust"),
        ({"ganmex": str(tmp_path / "missing.pt")}, "baseline weights ganmex="),
    ]
    for given, message in cases:
        with pytest.raises(AuditInputError, match=message):
            audit(_net(), x, methods=["integrated-gradients"], baselines=["zero"],
                  baseline_weights=given)
    with pytest.raises(ValueError, match="'zero' takes no weights"):
        audit(_net(), x, baseline_weights={"zero": files["ganmex"]})
    with pytest.raises(TypeError, match="baseline_weights must be a dict"):
        audit(_net(), x, baseline_weights=[files["ganmex"]])


def test_a_resume_with_other_weights_is_refused(files, tmp_path) -> None:
    x = torch.rand(2, 1, 16, 16)
    store = str(tmp_path / "run.sqlite")
    kwargs = dict(methods=["integrated-gradients"], baselines=["ganmex"], sanity_n=0,
                  n_steps=2, store=store)
    audit(_net(), x, baseline_weights={"ganmex": files["ganmex"]}, **kwargs)
    again = audit(_net(), x, baseline_weights={"ganmex": files["ganmex"]}, resume=True, **kwargs)
    assert again.cells
    other = tmp_path / "g2.pt"
    g = GANMEXGenerator(GANMEXConfig(image_size=16, channels=1, num_classes=3, base_channels=8,
                                     critic_layers=2))
    _save(other, g, "ganmex-generator")
    with pytest.raises(AuditInputError, match="settings differ.*baseline_weights"):
        audit(_net(), x, baseline_weights={"ganmex": str(other)}, resume=True, **kwargs)


def test_cli_option_parsing(files) -> None:
    assert parse_baseline_weights(None) is None
    parsed = parse_baseline_weights(f"ganmex={files['ganmex']}, inpaint-learned={files['big']}")
    assert parsed == {"ganmex": files["ganmex"], "inpaint-learned": files["big"]}
    for bad, message in [
        ("ganmex", "takes NAME=FILE pairs"),
        (f"blur={files['ganmex']}", "'blur' takes no weights"),
        (f"ganmex={files['ganmex']},ganmex={files['big']}", "names 'ganmex' twice"),
        ("ganmex=/nonexistent.pt", "no such file"),
        (",", "is empty"),
    ]:
        with pytest.raises(AuditInputError, match=message):
            parse_baseline_weights(bad)


class _StridedInpainter(nn.Module):
    """An RGB inpainting network that downsamples by 4: sides must be multiples of 4."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.down = nn.Conv2d(4, 4, 4, stride=4)
        self.up = nn.ConvTranspose2d(4, 3, 4, stride=4)

    def forward(self, image, mask):
        fill = torch.sigmoid(self.up(self.down(torch.cat([image * (1 - mask), mask], 1))))
        return image * (1 - mask) + fill * mask


def _exported(path, size=8, dynamic=True):
    args = (torch.rand(2, 3, size, size), torch.zeros(2, 1, size, size))
    shapes = None
    if dynamic:
        n, h, w = torch.export.Dim("n"), torch.export.Dim("h"), torch.export.Dim("w")
        shapes = {k: {0: n, 2: 4 * h, 3: 4 * w} for k in ("image", "mask")}
    torch.export.save(torch.export.export(_StridedInpainter().eval(), args,
                                          dynamic_shapes=shapes), str(path))
    return str(path)


def test_inpaint_learned_takes_a_network_of_the_users_own(tmp_path, device) -> None:
    from captum_cf.baselines import InpaintBaseline
    from captum_cf.inpainters import ExportedInpainter, inpainter_from_file

    # 14x14 grey images, an RGB network that needs multiples of 4: padded to 16, repeated to RGB
    path = _exported(tmp_path / "net.pt2")
    x = torch.rand(3, 1, 14, 14, generator=torch.Generator().manual_seed(2)).to(device)
    ctx = AuditContext(_net(), "custom", None, 3, (1, 14, 14), device=torch.device(device),
                       extras={"baseline_weights": {"inpaint-learned": path}})
    assert "inpaint-learned" in BASELINES.names(ctx)
    baseline = BASELINES.create("inpaint-learned", ctx)
    assert isinstance(baseline.inpainter, ExportedInpainter) and baseline.inpainter.pad_to == 8
    expected = InpaintBaseline(inpainter_from_file(path, (1, 14, 14), device), patch=7)
    torch.testing.assert_close(baseline.reference(x), expected.reference(x))
    result = audit(_net().to(device), x, methods=["integrated-gradients"],
                   baselines=["zero", "inpaint-learned"], sanity_n=0, n_steps=2,
                   removals=["zero"], baseline_weights={"inpaint-learned": path})
    cell = {(c.method, c.baseline): c for c in result.cells}[
        ("integrated-gradients", "inpaint-learned")]
    assert cell.error is None and cell.values["morf_zero"].shape == (3,)
    assert all(bool(torch.isfinite(v).all()) for v in cell.values.values())


@pytest.mark.no_simdev("TorchScript modules are loaded onto a device in C++")
def test_a_network_file_is_checked_before_any_work(tmp_path, device) -> None:
    x = torch.rand(2, 1, 14, 14).to(device)
    scripted = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(_StridedInpainter().eval()), str(scripted))
    state = tmp_path / "state.pt"
    torch.save(_StridedInpainter().state_dict(), state)
    static = _exported(tmp_path / "static.pt2", size=8, dynamic=False)
    kwargs = dict(methods=["integrated-gradients"], baselines=["inpaint-learned"], sanity_n=0,
                  n_steps=2, removals=["zero"])
    result = audit(_net().to(device), x, baseline_weights={"inpaint-learned": str(scripted)},
                   **kwargs)
    assert [(c.baseline, c.error) for c in result.cells] == [("inpaint-learned", None)]
    # an audit that does not use inpaint-learned does not load (or try) the network
    unused = audit(_net().to(device), x, baseline_weights={"inpaint-learned": static},
                   **{**kwargs, "baselines": ["zero"]})
    assert [c.baseline for c in unused.cells] == ["zero"]
    for given, message in [
        (str(state), "not a zoo weights file.*also takes an inpainting network of your own"),
        (static, r"cannot fill images of shape \(1, 14, 14\).*exported for images of 8x8 only"),
    ]:
        with pytest.raises(AuditInputError, match=f"baseline weights inpaint-learned=.*{message}"):
            audit(_net().to(device), x, baseline_weights={"inpaint-learned": given}, **kwargs)


def test_weights_for_a_baseline_the_audit_does_not_run_are_said_unused(files) -> None:
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with pytest.warns(UserWarning, match=r"--baseline-weights ganmex: not among --baselines or "
                                         r"--removals, so its file is not used"):
        result = audit(_net(), x, methods=["integrated-gradients"], baselines=["zero"],
                       removals=["zero"], sanity_n=0, n_steps=2,
                       baseline_weights={"ganmex": files["ganmex"]})
    assert [tuple(c) for c in result.config["cells"]] == [("integrated-gradients", "zero")]
