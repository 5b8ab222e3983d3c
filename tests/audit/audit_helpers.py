"""Helpers of the audit tests: tiny models, generated image folders and model files, reports."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_model(channels: int = 1, side: int = 8, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * side * side, classes),
    ).eval()


class CountingModel(nn.Module):
    """Counts forward calls (to show that nothing ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_model()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.fixture
def image_folder(tmp_path):
    """DIR/{a,b}/<i>.png: 8 random 16x16 RGB images, 4 per class."""

    def make(n_per_class: int = 4, side: int = 16, masks: bool = False, name: str = "images"):
        from PIL import Image

        root = tmp_path / name
        gen = torch.Generator().manual_seed(0)
        for label in ("a", "b"):
            (root / label).mkdir(parents=True)
            for i in range(n_per_class):
                arr = (torch.rand(side, side, 3, generator=gen) * 255).byte().numpy()
                Image.fromarray(arr).save(root / label / f"{i:02d}.png")
                if masks:
                    m = torch.zeros(side, side, dtype=torch.uint8)
                    m[2:8, 3:9] = 255
                    Image.fromarray(m.numpy()).save(root / label / f"{i:02d}_mask.png")
        return root

    return make


FOLDER_MODEL = """
import os
import time

import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d({c}, 4, 3, padding=1)
        self.fc = nn.Linear(4 * {s} * {s}, 3)

    def forward(self, x):
        if {sleep}:
            time.sleep({sleep})  # slow enough to be stopped part-way by a test
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make():
    return Net()
"""


@pytest.fixture
def model_file(tmp_path):
    """``path.py:make`` of a tiny seeded conv net for (c, s, s) images."""

    def make(channels: int = 3, side: int = 16, sleep: float = 0.0) -> str:
        path = tmp_path / f"net_{channels}_{side}_{int(sleep * 1000)}.py"
        path.write_text(textwrap.dedent(FOLDER_MODEL.format(c=channels, s=side, sleep=sleep)))
        return f"{path}:make"

    return make


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


PYTHON = sys.executable


def report_values(out) -> dict:
    """(method, baseline, metric) -> (ids, values) of a report folder's results.json."""
    report = json.loads((out / "results.json").read_text())
    table = {}
    for c in report["cells"]:
        for m, v in c["metrics"].items():
            table[(c["method"], c["baseline"], m)] = (v["ids"], v["values"])
    return {
        "images": report["images"],
        "values": table,
        "errors": [c["error"] for c in report["cells"]],
    }
