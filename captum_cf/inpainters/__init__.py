"""Inpainters: fill holes in images from their context."""

from captum_cf.inpainters.base import Inpainter
from captum_cf.inpainters.biharmonic import BiharmonicInpainter
from captum_cf.inpainters.holes import random_holes
from captum_cf.inpainters.learned import LearnedInpainter
from captum_cf.inpainters.push_pull import PushPullInpainter
from captum_cf.inpainters.torchscript import TorchScriptInpainter

__all__ = [
    "BiharmonicInpainter",
    "Inpainter",
    "LearnedInpainter",
    "PushPullInpainter",
    "TorchScriptInpainter",
    "random_holes",
]
