"""Continue fine-tuning the shipped ``digits-exaggeration`` generator against zoo ``digits-cnn``.

How the shipped weights' last stage was produced (``captum-cf train exaggeration`` can only start
anew or resume a full trainer checkpoint, and the shipped file holds the generator alone):

* generator initialised from ``captum_cf/zoo/weights/digits-exaggeration.pt`` (or ``--init``);
  a fresh critic, warmed up for 100 critic steps against the fixed generator;
* :class:`ExaggerationTrainer` with the default ``ExaggerationTrainConfig``, trainer seed 1, the
  same 15 % validation split as ``train_exaggeration`` (split seed 0), validation and a
  checkpoint every 100 steps, keep-best by ``r - MAE - identity`` starting from the initial
  generator's own score (so the result is never worse on validation than the start);
* training in 100-step chunks until ``--minutes`` of wall time have passed, then the best
  generator is exported with :func:`captum_cf.zoo.exaggeration.export_exaggeration`
  (re-estimated batch-norm statistics, float16, test metrics on ``load_digits("test")``).

The critic's initialisation was not seeded in the run that produced the shipped file, and the
number of chunks depends on the machine's speed, so a rerun is not bit-identical.

    OMP_NUM_THREADS=2 python -m captum_cf.zoo.finetune_exaggeration --out FILE [--minutes 13]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
from captum_cf.generative.exaggeration_trainer import ExaggerationTrainConfig, ExaggerationTrainer
from captum_cf.training.checkpoint import load_checkpoint
from captum_cf.zoo.exaggeration import export_exaggeration
from captum_cf.zoo.generators import _load_zoo_model, _split
from captum_cf.zoo.train import classifier_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="captum_cf/zoo/weights/digits-exaggeration.pt")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=13.0)
    parser.add_argument("--checkpoint", default="finetune_exaggeration.ckpt")
    args = parser.parse_args()
    t0 = time.time()
    model = _load_zoo_model("zoo:digits-cnn")
    x_tr, y_tr, x_te, _, desc = classifier_data("digits")
    x_tr, y_tr, x_val, _ = _split(x_tr, y_tr, 0.15, 0)
    init = load_checkpoint(args.init)
    start_step = int(init["metrics"].get("best_step", 0))  # the initial weights' step
    generator = ExaggerationGenerator(ExaggerationConfig(**init["config"]))
    generator.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in init["state_dict"].items()})
    trainer = ExaggerationTrainer(
        generator, model, x_tr, y_tr, x_val, config=ExaggerationTrainConfig(), seed=1,
        checkpoint_path=args.checkpoint, checkpoint_every=100, validate_every=100,
        log=lambda s: print(s, flush=True) if "val_" in s else None)
    with torch.no_grad():
        m0 = trainer.validate()
    print("initial validation", m0, flush=True)
    trainer.best = {"step": 0, "score": m0["score"], "metrics": m0,
                    "state": {"generator": copy.deepcopy(generator.state_dict())}}
    with trainer.training_context():  # warm the fresh critic up against the fixed generator
        for _ in range(100):
            x, c_x, c_t = trainer._batch()
            with torch.no_grad():
                fake = trainer.generator(x, c_t)
            trainer._critic_step(x, c_x, fake, c_t)
    while time.time() - t0 < args.minutes * 60:
        trainer.fit(trainer.step + 100)
    steps = trainer.step
    trainer.step += start_step
    trainer.best["step"] += start_step
    metrics = export_exaggeration(trainer, args.out, name="digits-exaggeration", extra={
        "test_data": desc, "classifier": "zoo:digits-cnn", "seed": 0,
        "bn_statistics": "recalibrated",
        "selection": f"{init['metrics'].get('selection', args.init)}; then {steps} more "
                     f"fine-tuning steps (python -m captum_cf.zoo.finetune_exaggeration), best "
                     f"validation score among checkpoints every 100 steps"}, test_images=x_te)
    print({k: v for k, v in metrics.items() if k != "train_config"})


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
