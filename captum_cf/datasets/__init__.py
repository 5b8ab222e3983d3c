"""Offline data sets: real handwritten digits (shipped by scikit-learn) and synthetic shapes.

- :func:`load_digits`: scikit-learn's 1797 handwritten digits, upsampled, split 1437 / 360.
"""

from captum_cf.datasets.digits import load_digits

__all__ = ["load_digits"]
