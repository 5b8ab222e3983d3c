"""Robust classifiers and their perturbations: Frank-Wolfe with linear maximisation oracles
(top-k sparse, L1, L2, L-infinity), PGD adversarial training, concept probing."""

from captum_cf.robust.frank_wolfe import frank_wolfe
from captum_cf.robust.lmo import lmo_l1, lmo_l2, lmo_linf, lmo_topk

__all__ = ["frank_wolfe", "lmo_l1", "lmo_l2", "lmo_linf", "lmo_topk"]
