"""Small reference models with weights shipped as package data, each reproducible by a trainer.

Use:

    >>> from captum_cf import zoo
    >>> zoo.available()[:3]
    ['digits-cnn', 'digits-cnn-robust', 'digits-exaggeration']
    >>> model = zoo.load("digits-cnn")  # eval mode, images (N, 1, 32, 32) in [0, 1] -> logits

Adding a model is one call, usually in the module of its family (``classifiers.py`` here;
inpainters, generators and robust models get their own module, imported at the bottom of this
file)::

    from captum_cf.zoo import ZooEntry, register

    register(ZooEntry(
        name="digits-inpainter", arch="gated-unet", builder=build_from_config,
        weights="digits-inpainter.pt", train=train_fn,
        command="captum-cf train inpainter --data digits --out digits-inpainter.pt",
        description="...", metric="test_l1", expected=0.05, higher_is_better=False))

``builder(config) -> nn.Module`` rebuilds the module from the ``config`` stored in the weights
file. Weights files live in ``captum_cf/zoo/weights/`` and are dicts
``{"format": 1, "name", "arch", "config", "state_dict", "metrics"}`` (write them with
:func:`save_weights`); they are read with ``torch.load(..., weights_only=True)`` only.
"""

from captum_cf.zoo._registry import (
    WEIGHTS_DIR,
    WEIGHTS_FORMAT,
    ZooEntry,
    available,
    entry,
    load,
    load_file,
    read_weights,
    register,
    save_weights,
    trained_image_size,
)
from captum_cf.zoo.models import LogitsOf, Normalized, SmallCNN, build_classifier

__all__ = [
    "WEIGHTS_DIR",
    "WEIGHTS_FORMAT",
    "ZooEntry",
    "available",
    "entry",
    "load",
    "load_file",
    "read_weights",
    "register",
    "save_weights",
    "trained_image_size",
    "LogitsOf",
    "Normalized",
    "SmallCNN",
    "build_classifier",
]

# Families of entries register themselves on import.
from captum_cf.zoo import (
    classifiers,  # noqa: E402, F401
    exaggeration,  # noqa: E402, F401
    generators,  # noqa: E402, F401
    inpainters,  # noqa: E402, F401
    robust,  # noqa: E402, F401
)
