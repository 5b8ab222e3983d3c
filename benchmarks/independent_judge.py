"""Do the shipped digit generators convince a classifier that never entered their training?

The generators (``digits-ganmex``, ``digits-exaggeration``) were trained against ``digits-cnn``:
their edits may be classifier-specific (small adversarial changes) instead of real strokes. Two
independent judges, both fitted here on the 1437 ``load_digits("train")`` images only (never on
the test digits, never in the generators' training or checkpoint selection), read the
counterfactuals of held-out ``load_digits("test")`` digits:

* ``judge`` (keys ``judge_*``): a scikit-learn RBF support-vector machine on raw pixels
  (``SVC(C=10, gamma="scale")``; class posteriors by Platt scaling of 5-fold cross-validated
  decision values, ``CalibratedClassifierCV(SVC(...), ensemble=False)``);
* ``cnn_judge`` (keys ``cnn_judge_*``): a CNN of another architecture and seed than the zoo's
  ``SmallCNN`` (3x3 convs, average pooling, two-layer MLP head, seed 0, Adam, shifts), built
  and trained in this file: conv 5x5 (1->16, padding 2), ReLU, max-pool 2; conv 5x5 (16->32,
  padding 2), ReLU, max-pool 2; conv 3x3 (32->64, padding 1), ReLU, max-pool 2; flatten
  (64x4x4); one linear layer to 10 logits; raw [0, 1] pixels, no normalisation. Recipe, fixed
  on test accuracy alone before any generator was judged with it: plain cross-entropy, SGD
  (momentum 0.9, weight decay 5e-4), batch 32, 20 epochs, lr 0.02 for epochs 1-17 and 0.002 for
  18-20, seed 1 (initialisation and data order; the global RNG is restored afterwards), no
  augmentation; ~25 s on one CPU thread. Posteriors: softmax of its logits (no temperature).

Measured for each judge:

* GANMEX: share of all 3240 ordered pairs (image, other class t) that the judge calls t
  (issue bar: >= 0.90) and per target, beside ``digits-cnn``'s flip rate (bar: >= 0.95);
* progressive exaggeration ("is it an 8"): Pearson r of the requested bin centre vs the judge's
  posterior of class 8 along every walk (bar: r >= 0.85), MAE and mean p(8) per bin, beside
  ``digits-cnn``'s r, MAE and identity L1 (bars: r >= 0.9, MAE <= 0.15, identity <= 0.05); for
  the two judges and ``digits-cnn``: the first bin each walk is read as an 8 (p(8) > 0.5; counts
  per bin 0..9 and "never"), per bin the share of walks undecided (0.1 < p(8) < 0.9), below
  0.1 and above 0.9; per bin the share of walk images the two judges put on the same side of
  p(8) = 0.5, and the Pearson r between the two judges' p(8);
* calibration on real digits: share of the 360 test digits with p(8) in (0.1, 0.9), and with a
  largest posterior below 0.9, for each judge and ``digits-cnn``.

Prints one summary line and writes ``--out`` (JSON).

    OMP_NUM_THREADS=1 python benchmarks/independent_judge.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_cf import zoo
from captum_cf.datasets import load_digits
from captum_cf.generative.conditional import bin_centers
from captum_cf.generative.exaggeration_trainer import evaluate_exaggeration
from captum_cf.zoo.generators import all_pairs

CNN_JUDGE = ("conv5x5(1->16)-ReLU-maxpool2, conv5x5(16->32)-ReLU-maxpool2, "
             "conv3x3(32->64)-ReLU-maxpool2, flatten, linear(1024->10) on raw 32x32 pixels; "
             "SGD momentum 0.9, weight decay 5e-4, batch 32, 20 epochs, lr 0.02 (0.002 for the "
             "last 3), seed 1, no augmentation, cross-entropy; posteriors softmax(logits)")


def _judge() -> tuple[object, float]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    x_tr, y_tr = load_digits("train").tensors
    x_te, y_te = load_digits("test").tensors
    svm = CalibratedClassifierCV(SVC(C=10, gamma="scale"), ensemble=False)
    svm.fit(x_tr.flatten(1).numpy(), y_tr.numpy())
    return svm, float((svm.predict(x_te.flatten(1).numpy()) == y_te.numpy()).mean())


def _cnn_judge(seed: int = 1, epochs: int = 20) -> tuple[nn.Module, float, float]:
    """Train the CNN judge (recipe in the module docstring) on the training digits only.

    Returns the network (eval mode, (N, 1, 32, 32) in [0, 1] -> (N, 10) logits), its accuracy
    on the 360 test digits and the CPU seconds of its training.
    """
    began = time.process_time()
    x, y = load_digits("train").tensors
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
        )
        opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
        order = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            if epoch == epochs - 3:
                for group in opt.param_groups:
                    group["lr"] = 0.002
            perm = torch.randperm(len(x), generator=order)
            for i in range(0, len(x), 32):
                batch = perm[i : i + 32]
                loss = F.cross_entropy(net(x[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval().requires_grad_(False)
    x_te, y_te = load_digits("test").tensors
    accuracy = float((_logits(net, x_te).argmax(1) == y_te).float().mean())
    return net, accuracy, round(time.process_time() - began, 1)


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def _ganmex(svm: object, cnn: nn.Module, weights: str | None = None) -> dict[str, object]:
    generator = zoo.load_file(weights) if weights else zoo.load("digits-ganmex")
    model = zoo.load("digits-cnn")
    x, y = load_digits("test").tensors
    index, targets = all_pairs(y, 10)
    cf = torch.cat([generator(x[index[i : i + 256]], targets[i : i + 256])
                    for i in range(0, len(index), 256)])
    judged = svm.predict(cf.flatten(1).numpy())  # type: ignore[attr-defined]
    flips = torch.cat([model(cf[i : i + 512]).argmax(1) for i in range(0, len(cf), 512)])
    per_target = {str(c): float((judged[targets.numpy() == c] == c).mean()) for c in range(10)}
    cnn_judged = _logits(cnn, cf).argmax(1)
    cnn_per_target = {str(c): float((cnn_judged[targets == c] == c).float().mean())
                      for c in range(10)}
    return {"pairs": int(len(index)), "judge_flip": float((judged == targets.numpy()).mean()),
            "classifier_flip": float((flips == targets).float().mean()),
            "l1": float((cf - x[index]).abs().mean()), "judge_flip_per_target": per_target,
            "cnn_judge_flip": float((cnn_judged == targets).float().mean()),
            "cnn_judge_flip_per_target": cnn_per_target}


def _walk_shape(p8: Tensor) -> dict[str, list[float] | list[int]]:
    """Per walk (rows of ``p8``, (N, B) posteriors of the positive class along the bins): the
    first bin read as positive (p > 0.5; counts per bin, then "never"), and per bin the share of
    walks undecided (0.1 < p < 0.9), below 0.1 and above 0.9."""
    bins = p8.shape[1]
    above = p8 > 0.5
    first = torch.where(above.any(1), above.float().argmax(1), bins)  # bins: never
    return {"first_bin_read_positive": torch.bincount(first, minlength=bins + 1).tolist(),
            "undecided_per_bin": [round(float(v), 3)
                                  for v in ((p8 > 0.1) & (p8 < 0.9)).float().mean(0)],
            "below_0.1_per_bin": [round(float(v), 3) for v in (p8 <= 0.1).float().mean(0)],
            "above_0.9_per_bin": [round(float(v), 3) for v in (p8 >= 0.9).float().mean(0)]}


@torch.no_grad()
def _exaggeration(svm: object, cnn: nn.Module, weights: str | None = None) -> dict[str, object]:
    generator = zoo.load_file(weights) if weights else zoo.load("digits-exaggeration")
    model = zoo.load("digits-cnn")
    x, _ = load_digits("test").tensors
    bins = generator.config.num_bins
    positive = generator.config.positive_class
    series = torch.stack([generator(x, b) for b in range(bins)], 1)  # (N, B, 1, 32, 32)
    prob = svm.predict_proba(series.flatten(2).flatten(0, 1).numpy())  # type: ignore[attr-defined]
    col = list(svm.classes_).index(positive)  # type: ignore[attr-defined]
    judged = torch.from_numpy(prob[:, col]).float().view(len(x), bins)
    desired = bin_centers(bins).expand_as(judged)
    r = torch.corrcoef(torch.stack([desired.flatten(), judged.flatten()]))[0, 1]
    trained = evaluate_exaggeration(generator, model, x)
    flat = series.flatten(0, 1)
    cnn_judged = _logits(cnn, flat).softmax(1)[:, positive].view(len(x), bins)
    cnn_r = torch.corrcoef(torch.stack([desired.flatten(), cnn_judged.flatten()]))[0, 1]
    own = _logits(model, flat).softmax(1)[:, positive].view(len(x), bins)
    # A perfect walk read by a judge that switches sharply at the requested 0.5: the ceiling of r
    # for a judge that is never undecided.
    centres = bin_centers(bins)
    sharp = torch.corrcoef(torch.stack([centres, (centres > 0.5).float()]))[0, 1]
    return {"images": len(x), "judge_r": float(r),
            "judge_mae": float((desired - judged).abs().mean()),
            "judge_mean_per_bin": [round(float(v), 3) for v in judged.mean(0)],
            **{f"classifier_{k}": v for k, v in trained.items()},
            "cnn_judge_r": float(cnn_r),
            "cnn_judge_mae": float((desired - cnn_judged).abs().mean()),
            "cnn_judge_mean_per_bin": [round(float(v), 3) for v in cnn_judged.mean(0)],
            "classifier_mean_per_bin": [round(float(v), 3) for v in own.mean(0)],
            "sharp_judge_ceiling_r": float(sharp),
            # Do the two judges read the same walk image on the same side of p(8) = 0.5?
            "judges_same_side_per_bin": [
                round(float(v), 3) for v in ((judged > 0.5) == (cnn_judged > 0.5)).float().mean(0)
            ],
            "judges_p8_r": float(torch.corrcoef(torch.stack([judged.flatten(),
                                                             cnn_judged.flatten()]))[0, 1]),
            "walks": {"judge": _walk_shape(judged), "cnn_judge": _walk_shape(cnn_judged),
                      "classifier": _walk_shape(own)}}


@torch.no_grad()
def _real_digits(svm: object, cnn: nn.Module, positive: int = 8) -> dict[str, dict[str, float]]:
    """Calibration on the 360 real test digits: share with p(positive) in (0.1, 0.9), and share
    whose largest posterior is below 0.9, for each judge and ``digits-cnn``."""
    x, _ = load_digits("test").tensors
    posteriors = {
        "judge": torch.from_numpy(
            svm.predict_proba(x.flatten(1).numpy())).float(),  # type: ignore[attr-defined]
        "cnn_judge": _logits(cnn, x).softmax(1),
        "classifier": _logits(zoo.load("digits-cnn"), x).softmax(1),
    }
    out = {}
    for name, p in posteriors.items():
        p8 = p[:, positive]
        out[name] = {"undecided_p8": round(float(((p8 > 0.1) & (p8 < 0.9)).float().mean()), 4),
                     "max_below_0.9": round(float((p.max(1).values < 0.9).float().mean()), 4)}
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="independent_judge.json")
    parser.add_argument("--ganmex", default=None,
                        help="generator weights file to judge instead of zoo digits-ganmex")
    parser.add_argument("--exaggeration", default=None,
                        help="weights file to judge instead of zoo digits-exaggeration")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    np.random.seed(0)
    began = time.process_time()
    svm, accuracy = _judge()
    cnn, cnn_accuracy, cnn_seconds = _cnn_judge()
    result = {"judge": ("CalibratedClassifierCV(SVC(C=10, gamma='scale'), ensemble=False) on raw "
                        "32x32 pixels"),
              "judge_test_accuracy": accuracy,
              "cnn_judge": CNN_JUDGE, "cnn_judge_test_accuracy": cnn_accuracy,
              "cnn_judge_train_cpu_seconds": cnn_seconds,
              "ganmex": _ganmex(svm, cnn, args.ganmex),
              "exaggeration": _exaggeration(svm, cnn, args.exaggeration),
              "real_test_digits": _real_digits(svm, cnn),
              "cpu_seconds": round(time.process_time() - began, 1)}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    g, e = result["ganmex"], result["exaggeration"]
    print(f"independent judges (SVM test accuracy {accuracy:.3f}, CNN {cnn_accuracy:.3f}): "
          f"digits-ganmex judged as the target SVM {g['judge_flip']:.3f}, CNN "
          f"{g['cnn_judge_flip']:.3f} (digits-cnn {g['classifier_flip']:.3f}) over "
          f"{g['pairs']} pairs; digits-exaggeration judge r SVM {e['judge_r']:.3f}, CNN "
          f"{e['cnn_judge_r']:.3f} (digits-cnn r {e['classifier_r']:.3f}, MAE "
          f"{e['classifier_mae']:.3f}, identity {e['classifier_identity']:.4f})")
    return result


if __name__ == "__main__":
    main()
