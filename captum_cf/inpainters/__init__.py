"""Inpainters: fill holes in images from their context."""

from captum_cf.inpainters.base import Inpainter
from captum_cf.inpainters.biharmonic import BiharmonicInpainter
from captum_cf.inpainters.holes import random_holes
from captum_cf.inpainters.learned import LearnedInpainter
from captum_cf.inpainters.network import (
    ExportedInpainter,
    NetworkInpainter,
    inpainter_from_file,
)
from captum_cf.inpainters.push_pull import PushPullInpainter
from captum_cf.inpainters.torchscript import TorchScriptInpainter

__all__ = [
    "BiharmonicInpainter",
    "ExportedInpainter",
    "Inpainter",
    "LearnedInpainter",
    "NetworkInpainter",
    "PushPullInpainter",
    "TorchScriptInpainter",
    "inpainter_from_file",
    "random_holes",
]
