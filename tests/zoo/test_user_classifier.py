"""The generator trainers explain a classifier of the user's own architecture, named as
``captum-cf audit --model`` names it: ``module:factory`` or ``file.py:factory`` + a state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from captum_cf import zoo
from captum_cf._user_model import build_factory_model
from captum_cf.cli import main
from captum_cf.generative import GANMEXGenerator
from captum_cf.generative.exaggeration import ExaggerationGenerator
from captum_cf.zoo.exaggeration import train_exaggeration
from captum_cf.zoo.generators import _load_zoo_model, train_ganmex

_NET = '''
import torch.nn as nn

def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 2))
'''


@pytest.fixture
def user(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(8):
            arr = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "photos" / cls / f"{i}.png")
    (tmp_path / "net.py").write_text(_NET)
    spec = f"{tmp_path / 'net.py'}:make"
    torch.manual_seed(3)
    state = build_factory_model(spec).state_dict()  # the weights "the user trained"
    torch.save(state, tmp_path / "net.pt")
    return tmp_path, spec, str(tmp_path / "net.pt"), state


def test_the_factory_model_is_built_with_its_weights_in_eval_mode(user) -> None:
    _, spec, weights, state = user
    model = _load_zoo_model(spec, weights=weights)
    assert not model.training
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_cli_trains_ganmex_against_a_factory_classifier(user) -> None:
    root, spec, weights, _ = user
    out = root / "g.pt"
    rc = main(["train", "ganmex", "--data", str(root / "photos"), "--image-size", "16",
               "--classifier", spec, "--classifier-weights", weights,
               "--aux-classifier", spec, "--aux-classifier-weights", weights,
               "--steps", "2", "--batch-size", "4", "--no-progress", "--out", str(out)])
    assert rc == 0
    generator = zoo.load_file(str(out))
    assert isinstance(generator, GANMEXGenerator) and generator.config.image_size == 16
    metrics = zoo.read_weights(out)["metrics"]
    assert metrics["classifier"] == spec and metrics["classifier_weights"] == weights
    assert metrics["aux_classifier"] == spec


def test_exaggeration_trains_against_a_factory_classifier(user) -> None:
    root, spec, weights, _ = user
    out = root / "e.pt"
    metrics = train_exaggeration(str(root / "photos"), out=str(out), classifier=spec,
                                 classifier_weights=weights, positive=1, steps=2,
                                 validate_every=2, image_size=16, batch_size=4,
                                 show_progress=False, log=None)
    assert metrics["classifier_weights"] == weights
    assert isinstance(zoo.load_file(str(out)), ExaggerationGenerator)
    # a folder names its classifier and class (zoo:digits-cnn and class 8 were the defaults)
    with pytest.raises(ValueError, match=r"classifier \(--classifier\) is required with an image "
                       r"folder"):
        train_exaggeration(str(root / "photos"), out=str(root / "x.pt"), positive=1, steps=1,
                           image_size=16, show_progress=False, log=None)
    with pytest.raises(ValueError, match=r"positive \(--positive\) is required with .*photos"):
        train_exaggeration(str(root / "photos"), out=str(root / "x.pt"), classifier=spec,
                           classifier_weights=weights, steps=1, image_size=16,
                           show_progress=False, log=None)
    with pytest.raises(ValueError, match=r"positive \(--positive\) must be one of the data's "
                                         r"classes 0..1, got 7"):
        train_exaggeration(str(root / "photos"), out=str(root / "x.pt"), classifier=spec,
                           classifier_weights=weights, positive=7, steps=1, image_size=16,
                           show_progress=False, log=None)


def test_bad_classifier_specs_and_weights_have_one_line_errors(user, capsys) -> None:
    root, spec, weights, _ = user
    photos = str(root / "photos")
    cases = [
        (dict(classifier="zoo:digits-cnn", classifier_weights=weights),
         "classifier_weights is the state dict of a module:factory classifier"),
        (dict(classifier=str(root / "missing.pt")),
         "classifier must be 'zoo:<name>', a weights file or module:factory"),
        (dict(classifier=f"{root / 'net.py'}:nope"),
         r"cannot build the model from .*net\.py has no function 'nope'; it defines make"),
        (dict(), r"classifier \(--classifier\) is required with an image folder.*"
                 r"classifier_weights \(--classifier-weights\)"),
        (dict(classifier=spec, classifier_weights=str(root / "photos" / "a" / "0.png")),
         "cannot load weights"),
        (dict(classifier=spec, aux_classifier_weights=weights),
         "aux_classifier_weights needs aux_classifier"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            train_ganmex(photos, out=str(root / "x.pt"), steps=1, image_size=16,
                         show_progress=False, log=None, **kwargs)
    assert not (root / "x.pt").exists()
    rc = main(["train", "exaggeration", "--data", photos, "--image-size", "16", "--classifier",
               "zoo:digits-cnn", "--classifier-weights", weights, "--positive", "1", "--out",
               str(root / "x.pt")])
    assert rc == 2 and "classifier_weights is the state dict" in capsys.readouterr().err


def test_a_folder_of_one_class_is_refused_for_classifiers_and_generators(user) -> None:
    from captum_cf.zoo.train import classifier_data

    root, spec, weights, _ = user
    photos = root / "photos"
    assert len(classifier_data(str(photos), 16)[1].unique()) == 2
    (photos / "b").rename(root / "b-elsewhere")
    with pytest.raises(ValueError, match="hold 1 class: .* need at least two class folders"):
        classifier_data(str(photos), 16)
    with pytest.raises(ValueError, match="need at least two class folders"):
        train_ganmex(str(photos), out=str(root / "x.pt"), classifier=spec,
                     classifier_weights=weights, steps=1, image_size=16, show_progress=False,
                     log=None)


def test_a_grey_folder_read_as_rgb_trains_for_an_rgb_classifier(user) -> None:
    root, spec, weights, _ = user
    for cls in ("a", "b"):
        (root / "grey" / cls).mkdir(parents=True)
        for i in range(6):
            value = np.full((16, 16), 20 * i + (100 if cls == "b" else 0), np.uint8)
            Image.fromarray(value).save(root / "grey" / cls / f"{i}.png")
    kwargs = dict(classifier=spec, classifier_weights=weights, steps=1, batch_size=4,
                  show_progress=False, log=None)
    with pytest.raises(ValueError, match=r"shape \(1, 1, 16, 16\).*--channels 1\|3"):
        train_ganmex(str(root / "grey"), out=str(root / "x.pt"), **kwargs)
    train_ganmex(str(root / "grey"), out=str(root / "g.pt"), channels=3, **kwargs)
    assert zoo.load_file(str(root / "g.pt")).config.channels == 3


def test_channels_is_checked_before_any_image_is_read(user) -> None:
    from captum_cf.zoo.train import classifier_data

    root = user[0]
    for bad in (2, 0, True):
        with pytest.raises(ValueError, match=r"channels \(--channels\) must be 1, 3 or None"):
            classifier_data(str(root / "photos"), 16, channels=bad)
    with pytest.raises(ValueError, match=r"image_size \(--image-size\) must be an int >= 8 \(or "
                       r"None: the files' own size\), got 3"):
        classifier_data(str(root / "photos"), 3)
    with pytest.raises(ValueError, match="channels applies to an image folder"):
        classifier_data("digits", channels=1)
    assert classifier_data(str(root / "photos"), 16, channels=1)[0].shape[1] == 1


def test_a_classifier_whose_output_holds_logits_is_trained_against_them(user) -> None:
    root, _, weights, _ = user
    (root / "hf.py").write_text(_NET + '''

class HF(nn.Module):  # Hugging Face style: the logits in a dict
    def __init__(self):
        super().__init__()
        self.net = make()

    def forward(self, x):
        return {"logits": self.net(x)}


def make_hf():
    return HF()
''')
    state = {f"net.{k}": v for k, v in torch.load(weights).items()}
    torch.save(state, root / "hf.pt")
    metrics = train_exaggeration(str(root / "photos"), out=str(root / "e.pt"),
                                 classifier=f"{root / 'hf.py'}:make_hf",
                                 classifier_weights=str(root / "hf.pt"), positive=0, steps=1,
                                 validate_every=1, image_size=16, batch_size=4,
                                 show_progress=False, log=None)
    assert metrics["classifier"].endswith("hf.py:make_hf")


def test_reading_a_folder_shows_progress_when_asked(user, capsys) -> None:
    from captum_cf.training.data import folder_images

    photos = str(user[0] / "photos")
    folder_images(photos, 16, show_progress=False)
    assert "reading" not in capsys.readouterr().err
    x, _, _ = folder_images(photos, 16, batch_size=5, show_progress=True)
    err = capsys.readouterr().err
    assert f"reading {photos}" in err and "/16 " in err and x.shape[0] == 16


@pytest.mark.parametrize("train", ["exaggeration", "ganmex"])
def test_training_from_the_memory_mapped_cache_equals_training_from_memory(user, train) -> None:
    root, spec, weights, _ = user
    fn = train_exaggeration if train == "exaggeration" else train_ganmex
    extra = {"positive": 1, "validate_every": 2} if train == "exaggeration" else {
        "test_images": 3}
    kw = dict(classifier=spec, classifier_weights=weights, steps=2, image_size=16,
              batch_size=4, show_progress=False, log=None, **extra)
    fn(str(root / "photos"), out=str(root / "mem.pt"), **kw)
    for run in ("first", "second"):  # decoded into the cache files, then mapped from them
        fn(str(root / "photos"), out=str(root / f"{run}.pt"), cache_dir=str(root / "cache"),
           **kw)
        want, got = (zoo.read_weights(root / n)["state_dict"] for n in ("mem.pt", f"{run}.pt"))
        assert want.keys() == got.keys()
        assert all(torch.equal(v, got[k]) for k, v in want.items())


_BRIGHTNESS = '''
import torch
import torch.nn as nn

class Brightness(nn.Module):  # class 1 for bright images
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        bright = x.mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-bright, bright], 1) * self.scale

def make():
    return Brightness()
'''


def test_generator_training_tells_a_folder_in_another_class_order(tmp_path) -> None:
    import warnings

    (tmp_path / "bright.py").write_text(_BRIGHTNESS)
    spec = f"{tmp_path / 'bright.py'}:make"
    torch.save(build_factory_model(spec).state_dict(), tmp_path / "bright.pt")
    rng = np.random.default_rng(0)
    for name, folder in (("right", ("dark", "light")), ("swapped", ("light", "dark"))):
        for cls, offset in zip(folder, (0, 150), strict=True):  # sorted: folder[0] is class 0
            (tmp_path / name / cls).mkdir(parents=True)
            for i in range(6):
                arr = (rng.integers(0, 100, (16, 16, 3)) + offset).astype(np.uint8)
                Image.fromarray(arr).save(tmp_path / name / cls / f"{i}.png")
    told = {}
    for name in ("right", "swapped"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_ganmex(str(tmp_path / name), out=str(tmp_path / f"{name}.pt"), classifier=spec,
                         classifier_weights=str(tmp_path / "bright.pt"), steps=1, batch_size=4,
                         show_progress=False, log=None)
        told[name] = [str(w.message) for w in caught if "folder's class" in str(w.message)]
    assert told["right"] == []
    (message,) = told["swapped"]  # the dark images are in 'light' (label 1), and the reverse
    assert message.startswith(f"classifier {spec!r} puts 0% of ")
    assert "those of 'dark' mostly as class 1, those of 'light' mostly as class 0" in message


def test_a_classifier_of_another_size_or_other_classes_is_told_what_to_fix(user) -> None:
    """zoo:digits-cnn (32 px grey, 10 classes) on a two-class folder: at 16 px the error names
    the size it was trained at (it said "leave --image-size out"); at 32 px the classes are
    told before the label check (which warned to rename the folders first)."""
    import warnings

    root = user[0]
    common = dict(out=str(root / "x.pt"), classifier="zoo:digits-cnn", steps=1, channels=1,
                  show_progress=False, log=None)
    with pytest.raises(ValueError, match=r"zoo:digits-cnn was trained on 32x32 images: pass "
                       r"--image-size 32"):
        train_ganmex(str(root / "photos"), image_size=16, **common)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no label-agreement warning before the error
        with pytest.raises(ValueError, match=r"must return \(1, 2\) logits for the generator's "
                           r"2 classes; it returned \(1, 10\) for one image .*trained on these "
                           r"2 classes"):
            train_ganmex(str(root / "photos"), image_size=32, **common)


def test_the_label_warning_names_the_weights_of_a_factory_classifier(user) -> None:
    """A factory classifier without its weights is untrained: the warning says so, not only
    that the folders may be in another order."""
    from captum_cf.zoo.generators import _ready_classifiers

    root = user[0]
    (root / "const.py").write_text(
        "import torch\nimport torch.nn as nn\n\nclass Const(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.w = nn.Parameter(torch.zeros(1))\n\n"
        "    def forward(self, x):\n        zero = x.mean((1, 2, 3)) * 0\n"
        "        return torch.stack([zero + 1 + self.w, zero], 1)\n"
        "\n\ndef make():\n    return Const()\n")
    spec = f"{root / 'const.py'}:make"
    x = torch.rand(16, 3, 8, 8)
    y = torch.arange(16) // 8
    with pytest.warns(RuntimeWarning) as caught:
        _ready_classifiers(build_factory_model(spec), None, x, spec, None,
                           train=(x, y, str(root / "photos")))
    message = str(caught[0].message)
    assert "puts 50% of 16 training images in their folder's class" in message
    assert message.endswith("A module:factory classifier is untrained unless it loads its "
                            "weights or --classifier-weights gives them")
