"""Robust classifiers and their perturbations: Frank-Wolfe with linear maximisation oracles
(top-k sparse, L1, L2, L-infinity), PGD adversarial training, concept probing."""

from captum_cf.robust.adversarial_training import adversarial_train, pgd_attack, robust_accuracy
from captum_cf.robust.frank_wolfe import frank_wolfe, sparse_frank_wolfe
from captum_cf.robust.lmo import lmo_l1, lmo_l2, lmo_linf, lmo_topk
from captum_cf.robust.probe import probe_concept

__all__ = [
    "adversarial_train",
    "frank_wolfe",
    "lmo_l1",
    "lmo_l2",
    "lmo_linf",
    "lmo_topk",
    "pgd_attack",
    "probe_concept",
    "robust_accuracy",
    "sparse_frank_wolfe",
]
