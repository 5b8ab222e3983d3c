"""Probe: does a shapes classifier need the dot *at its place* to say "square with dot"?

Takes the held-out class-1 squares of ``SyntheticShapes(n, seed=8)`` (the GANMEX test seed) and
paints onto each one dot of the data set's own size and colour rule (radius 0.26 of the
square's half-side, dark 0.25 x colour on a light square, light colour + 0.75 (1 - colour) on
a dark one, one-pixel anti-aliased edge):

- ``right``: at the data set's place (upper right, (+0.45a, -0.45a) from the centre), i.e.
  exactly ``parts``;
- ``inside_wrong``: inside the square at the mirrored place (lower left, (-0.45a, +0.45a));
- ``outside``: on the background, 1.6a from the centre towards the side with the most room.

and reports, per classifier, the mean p("square with dot") and the share classified as class 3
for the clean squares, the three painted versions and the real class-3 test images. A judge
of "dot at the right place" scores ``right`` high and the two wrong places low.

Usage: ``python benchmarks/shapes_dot_probe.py [--models zoo:shapes-cnn FILE ...] [--n 400]``;
prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from captum_cf.datasets import SyntheticShapes  # noqa: E402
from captum_cf.datasets.shapes import _DOT_OFFSET, _DOT_RADIUS, _draw_params  # noqa: E402
from captum_cf.zoo.generators import _load_zoo_model  # noqa: E402


def painted(n: int = 400, seed: int = 8, size: int = 64) -> dict[str, torch.Tensor]:
    """Clean class-1 squares, the three painted versions and the real class-3 images."""
    data = SyntheticShapes(n, size=size, seed=seed)
    p = _draw_params(n, size, torch.Generator().manual_seed(seed))
    assert torch.equal(p["label"], data.labels)  # same parameters as the data set
    sq = (data.labels == 1).nonzero().flatten()
    x = data.images[sq]
    masks = data.masks[sq]
    half = 0.886 * p["extent"][sq]
    cx, cy = p["cx"][sq], p["cy"][sq]
    # the square's colour: mean over its pixels (the shading is antisymmetric about the centre)
    colour = (x * masks).sum((2, 3)) / masks.sum((2, 3))
    dark = colour.mean(1, keepdim=True) > 0.5
    dot_colour = torch.where(dark, 0.25 * colour, colour + 0.75 * (1 - colour)).view(-1, 3, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    # outside: towards the image side with the most room from the centre
    room = torch.stack([size - cx, cx, size - cy, cy], 1)  # +x, -x, +y, -y
    direction = room.argmax(1)
    unit = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])[direction]
    places = {
        "right": (cx + _DOT_OFFSET * half, cy - _DOT_OFFSET * half),
        "inside_wrong": (cx - _DOT_OFFSET * half, cy + _DOT_OFFSET * half),
        "outside": (cx + 1.6 * half * unit[:, 0], cy + 1.6 * half * unit[:, 1]),
    }
    out = {"clean_square": x}
    for name, (px, py) in places.items():
        sdf = torch.sqrt((xs - px.view(-1, 1, 1)) ** 2 + (ys - py.view(-1, 1, 1)) ** 2) - (
            _DOT_RADIUS * half).view(-1, 1, 1)
        alpha = (0.5 - sdf).clamp(0, 1).unsqueeze(1)
        out[name] = (alpha * dot_colour + (1 - alpha) * x).clamp(0, 1)
    # sanity: the right place is the data set's parts mask
    right_px = (out["right"] != x).any(1, keepdim=True)
    out["_right_in_parts"] = (right_px & data.parts[sq]).sum() / right_px.sum().clamp_min(1)
    out["real_class3"] = data.images[data.labels == 3]
    return out


@torch.no_grad()
def probe(model: torch.nn.Module, images: dict[str, torch.Tensor]) -> dict[str, dict]:
    model.eval()
    result = {}
    for name, x in images.items():
        if name.startswith("_"):
            continue
        prob = model(x).softmax(1)
        result[name] = {"p_dot": round(float(prob[:, 3].mean()), 3),
                        "as_class3": round(float((prob.argmax(1) == 3).float().mean()), 3),
                        "n": int(x.shape[0])}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["zoo:shapes-cnn"])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    images = painted(args.n, args.seed)
    report = {"data": f"class-1 images of SyntheticShapes({args.n}, size=64, seed={args.seed})",
              "right_place_pixels_in_parts": round(float(images["_right_in_parts"]), 3)}
    for spec in args.models:
        report[spec] = probe(_load_zoo_model(spec), images)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
