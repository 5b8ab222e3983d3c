"""Training throughput of every captum_cf trainer at 128 px (steps/s, images/s).

Setup (the size a user's own data set would have): 3x128x128 images, 10 classes, a torchvision
``resnet18(weights=None, num_classes=10)`` as the classifier (trained by ``classifier`` and
``robust``, frozen in the loop of ``ganmex`` and ``exaggeration``), GANMEX generator and critic
``GANMEXConfig.for_images(128, 3, 10)``, the exaggeration generator ``ExaggerationConfig(128,
3 channels)``, the learned inpainter with the shapes recipe (widths 16/32/48, biharmonic
prefill) on whole 128 px images. Images are random (throughput does not depend on content).

Each trainer runs ``--warmup`` steps, then ``--steps`` timed steps through the shared loop
(:class:`captum_cf.training.Trainer`, no checkpoints). Prints one line per trainer, a one-line
summary, and writes the JSON to ``--out``. ``--stream`` keeps the training set on the host and
moves each batch per step, as the trainers do with a set larger than a quarter of the GPU's free
memory (``captum_cf.training.data.DeviceImages``): its ratio to a plain run is the cost of
streaming.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py --device cpu --steps 2 --warmup 1
    python benchmarks/train_throughput.py --device cuda --steps 20 --batch-size 32 [--amp bf16]
    python benchmarks/train_throughput.py --device cuda --steps 20 --batch-size 32 --stream
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

SIZE, CHANNELS, CLASSES = 128, 3, 10
TRAINERS = ("classifier", "robust", "inpainter", "ganmex", "exaggeration")


def _resnet18() -> torch.nn.Module:
    import torchvision

    return torchvision.models.resnet18(weights=None, num_classes=CLASSES)


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, CHANNELS, SIZE, SIZE, generator=gen), torch.arange(n) % CLASSES


def _build(name: str, batch: int, device: torch.device, amp: str | None,
           attack_steps: int) -> Any:
    """A trainer of kind ``name`` on random 128 px data (every trainer: a ``Trainer``)."""
    x, y = _data(max(4 * batch, 2 * CLASSES))
    torch.manual_seed(0)
    if name == "classifier":
        from captum_cf.zoo.train import ClassifierTrainer

        return ClassifierTrainer(_resnet18(), x, y, epochs=1000, batch_size=batch,
                                 pad_mode="replicate", device=device, amp=amp)
    if name == "robust":
        from captum_cf.robust.adversarial_training import AdversarialTrainer

        return AdversarialTrainer(
            _resnet18().to(device), x, y, norm="l2", eps=1.5, steps=10**6,
            attack_steps=attack_steps, batch_size=batch, lr=1e-3, clean_weight=0.0, seed=0,
            checkpoint_path=None, checkpoint_every=10**6, log_every=10**6, device=device,
            amp=amp)
    if name == "inpainter":
        from captum_cf.inpainters import LearnedInpainter
        from captum_cf.inpainters._fit import InpainterTrainer

        model = LearnedInpainter({"channels": CHANNELS, "widths": [16, 32, 48],
                                  "dilations": [2, 4], "prefill": "biharmonic"})
        return InpainterTrainer(model, x, steps=10**6, batch_size=batch, lr=2e-3,
                                holes="free-form+box", coverage=(0.05, 0.4), grad_weight=0.25,
                                crop=None, checkpoint_path=None, checkpoint_every=10**6, seed=0,
                                device=device, amp=amp)
    classifier = _resnet18().to(device).eval()
    if name == "ganmex":
        from captum_cf.generative import (
            GANMEXConfig,
            GANMEXGenerator,
            GANMEXTrainConfig,
            GANMEXTrainer,
        )

        generator = GANMEXGenerator(GANMEXConfig.for_images(SIZE, CHANNELS, CLASSES))
        return GANMEXTrainer(generator, classifier, x, y,
                             config=GANMEXTrainConfig(batch_size=batch), device=device, amp=amp)
    if name == "exaggeration":
        from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
        from captum_cf.generative.exaggeration_trainer import (
            ExaggerationTrainConfig,
            ExaggerationTrainer,
        )

        cfg = ExaggerationConfig(image_size=SIZE, channels=CHANNELS, positive_class=0,
                                 num_classes=CLASSES)
        return ExaggerationTrainer(ExaggerationGenerator(cfg), classifier, x, y,
                                   config=ExaggerationTrainConfig(batch_size=batch),
                                   device=device, amp=amp)
    raise ValueError(f"unknown trainer {name!r}; choose from {TRAINERS}")


def _params(trainer: Any) -> int:
    return sum(p.numel() for m in trainer.modules.values() for p in m.parameters())


def measure(name: str, batch: int, steps: int, warmup: int, device: torch.device,
            amp: str | None, attack_steps: int) -> dict[str, Any]:
    """Steps/s of ``steps`` timed steps after ``warmup`` untimed ones."""
    trainer = _build(name, batch, device, amp, attack_steps)
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    trainer.fit(warmup)
    sync()
    began, began_cpu = time.perf_counter(), time.process_time()
    trainer.fit(warmup + steps)
    sync()
    wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    return {"trainer": name, "batch_size": batch, "steps": steps, "seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3), "steps_per_s": round(steps / wall, 4),
            "images_per_s": round(steps * batch / wall, 2),
            "trained_parameters": _params(trainer)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--attack-steps", type=int, default=7, help="PGD steps of 'robust'")
    parser.add_argument("--amp", choices=["bf16"], default=None)
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    parser.add_argument("--stream", action="store_true",
                        help="keep the set on the host, move each batch (a set too large for "
                             "the GPU)")
    parser.add_argument("--out", default="train_throughput.json")
    args = parser.parse_args(argv)
    from captum_cf.training import check_amp, data, resolve_device

    if args.stream:  # every accelerator reports no free memory: no set is held there
        data.device_free_bytes = lambda device: 0

    device = resolve_device(args.device)
    check_amp(args.amp, device)
    rows = []
    for name in args.trainers:
        row = measure(name, args.batch_size, args.steps, args.warmup, device, args.amp,
                      args.attack_steps)
        rows.append(row)
        print(f"{name:13s} {row['steps_per_s']:8.3f} steps/s {row['images_per_s']:9.1f} img/s "
              f"({row['trained_parameters'] / 1e6:.2f} M trained parameters)", flush=True)
    hw = (torch.cuda.get_device_name(device) if device.type == "cuda"
          else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    result = {"device": str(device), "hardware": hw, "amp": args.amp, "image_size": SIZE,
              "streamed": args.stream and device.type != "cpu",
              "torch": torch.__version__, "results": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"train_throughput {device} ({hw}, amp {args.amp}, batch {args.batch_size}, 128 px"
          f"{', streamed' if result['streamed'] else ''}): "
          + ", ".join(f"{r['trainer']} {r['steps_per_s']:.3g}/s" for r in rows))
    return result


if __name__ == "__main__":
    main()
