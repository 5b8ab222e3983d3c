"""Registrations of the classical baselines in ``captum_cf.baselines.BASELINES``."""

from __future__ import annotations

import math

from captum_cf._registry import AuditContext, Registry
from captum_cf.baselines.base import Baseline
from captum_cf.baselines.blur import BlurBaseline
from captum_cf.baselines.constant import ConstantBaseline
from captum_cf.baselines.inpaint import InpaintBaseline
from captum_cf.baselines.noise import NoiseBaseline
from captum_cf.baselines.road import NoisyLinearImputation
from captum_cf.inpainters.push_pull import PushPullInpainter


def blur_sigma(image_shape: tuple[int, int, int]) -> float:
    """Blur width for an image size: a tenth of the shorter side, at least 1 pixel.

    Wide enough to erase strokes and small parts (3.2 px on 32x32 digits, 6.4 px on 64x64
    shapes) while keeping the coarse layout, as the blur of Meaningful Perturbation does.
    """
    return max(1.0, min(image_shape[1:]) / 10)


def register(registry: Registry[Baseline]) -> None:
    """Add ``zero``, ``blur``, ``noise``, ``road``, ``inpaint-pushpull`` and ``inpaint-learned``."""
    registry.register("zero", lambda ctx: ConstantBaseline(0.0), "constant 0 (black)")
    registry.register(
        "blur",
        lambda ctx: BlurBaseline(blur_sigma(ctx.image_shape)),
        "Gaussian blur, sigma = min(H, W) / 10",
    )
    registry.register(
        "noise",
        lambda ctx: NoiseBaseline(std=0.25, seed=ctx.seed),
        "Gaussian noise around grey 0.5, std 0.25, clamped",
    )
    registry.register(
        "road",
        lambda ctx: NoisyLinearImputation(noise=0.01, seed=ctx.seed),
        "ROAD's noisy linear imputation: each removed pixel the weighted mean of its "
        "neighbours, plus noise of std 0.01",
    )
    registry.register(
        "inpaint-pushpull",
        _inpaint_pushpull,
        "every pixel inpainted from its surroundings by push-pull (blended 4x4 checkerboard grids)",
    )
    registry.register(
        "inpaint-learned",
        _inpaint_learned,
        "inpainted by the zoo's learned inpainter of the data set (or --baseline-weights "
        "inpaint-learned=FILE; blended 2x2 checkerboard "
        "grids: cells of half the image, so that whole objects are removed)",
        available=_has_zoo_inpainter,
        needs="an inpainter for these images: --baseline-weights inpaint-learned=FILE of "
        "captum-cf train inpainter, or an inpainting network (.pt2, TorchScript) (the zoo has "
        "one for digits and shapes)",
    )


def _inpaint_pushpull(ctx: AuditContext) -> Baseline:
    return InpaintBaseline(PushPullInpainter())


def _has_zoo_inpainter(ctx: AuditContext) -> bool:
    from captum_cf.baselines._trained import trained_available  # lazy: imports the zoo

    return trained_available(ctx, "inpaint-learned")


def _inpaint_learned(ctx: AuditContext) -> Baseline:
    from captum_cf.baselines._trained import load_trained

    # Cells of half the image: with a quarter, the learned inpainter restores an object that spans
    # several cells from the object pixels beside each cell (visible on shapes); measured on 64
    # shapes, shapes-cnn's true-class probability on the reference is 0.287 with quarter cells and
    # 0.250 (chance) with half cells (tests/zoo/test_inpainter_zoo.py).
    h, w = ctx.image_shape[-2:]
    patch = max(1, math.ceil(min(h, w) / 2))
    return InpaintBaseline(load_trained(ctx, "inpaint-learned"), patch=patch)
