"""Offline data sets: real handwritten digits (shipped by scikit-learn) and synthetic shapes.

- :func:`load_digits`: scikit-learn's 1797 handwritten digits, upsampled, split 1437 / 360.
- :class:`SyntheticShapes`: generated RGB shapes on textured backgrounds with ground-truth object
  masks, boxes and the pixels of a small class-discriminative part.
- :class:`ImageFolder`: a user's class-per-folder image tree, read lazily with Pillow, resized
  and centre-cropped (``image_size``), with optional ``<image>_mask.png`` object masks.
"""

from captum_cf.datasets.digits import load_digits
from captum_cf.datasets.folder import ImageFolder
from captum_cf.datasets.shapes import SyntheticShapes

__all__ = ["ImageFolder", "load_digits", "SyntheticShapes"]
