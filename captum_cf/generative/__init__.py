"""GAN models and trainers (GANMEX, progressive exaggeration) and their shared training pieces.

Shared pieces: :mod:`~captum_cf.generative.layers` (residual blocks, conditional norms,
augmentation), :mod:`~captum_cf.generative.losses` (WGAN-GP, hinge) and
:class:`~captum_cf.generative.trainer.Trainer` (progress, loss log, checkpoints, exact resume,
keep-best).
"""

from captum_cf.generative.exaggeration import (
    ExaggerationConfig,
    ExaggerationDiscriminator,
    ExaggerationGenerator,
)
from captum_cf.generative.exaggeration_trainer import ExaggerationTrainConfig, ExaggerationTrainer
from captum_cf.generative.ganmex import GANMEXConfig, GANMEXCritic, GANMEXGenerator
from captum_cf.generative.ganmex_trainer import (
    GANMEXTrainConfig,
    GANMEXTrainer,
    adapt_ganmex,
    evaluate_counterfactuals,
    load_generator,
)
from captum_cf.training import Trainer

__all__ = [
    "Trainer",
    "ExaggerationConfig",
    "ExaggerationDiscriminator",
    "ExaggerationGenerator",
    "ExaggerationTrainConfig",
    "ExaggerationTrainer",
    "GANMEXConfig",
    "GANMEXGenerator",
    "GANMEXCritic",
    "GANMEXTrainConfig",
    "GANMEXTrainer",
    "adapt_ganmex",
    "evaluate_counterfactuals",
    "load_generator",
]
