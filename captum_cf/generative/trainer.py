"""The GAN trainers' base class is the shared loop :class:`captum_cf.training.Trainer`.

Kept as an import path: ``from captum_cf.generative.trainer import Trainer``.
"""

from captum_cf.training.loop import Trainer

__all__ = ["Trainer"]
