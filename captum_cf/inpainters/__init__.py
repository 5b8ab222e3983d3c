"""Inpainters: fill holes in images from their context."""

from captum_cf.inpainters.base import Inpainter

__all__ = ["Inpainter"]
