"""Shared test fixtures: seeding and tiny models."""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator

import pytest
import torch

warnings.filterwarnings(
    "ignore", message="torchvision's compiled extension", category=RuntimeWarning
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    random.seed(0)


#: devices the computing tests run on: the CPU always, CUDA when this machine has it, and the
#: simulated accelerator of ``simulated_device.py`` (device placement checked on a CPU-only
#: machine) for the tests marked ``simdev``, or for all of them with CAPTUM_CF_TEST_SIMDEV=1
#: (``pytest -k simdev`` runs that half alone)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SIMDEV_ALL = os.environ.get("CAPTUM_CF_TEST_SIMDEV") == "1"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        sim = SIMDEV_ALL or metafunc.definition.get_closest_marker("simdev") is not None
        metafunc.parametrize("device", DEVICES + (["simdev"] if sim else []), indirect=True)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> Iterator[torch.device]:
    """The device a computing test runs on (parametrised by ``pytest_generate_tests``)."""
    if request.param == "simdev":
        from simulated_device import simulated_device

        skip = request.node.get_closest_marker("no_simdev")
        if skip is not None:
            pytest.skip(f"not on the simulated device: {skip.args[0]}")

        with simulated_device() as sim:
            yield sim
    else:
        yield torch.device(request.param)


@pytest.fixture(autouse=True)
def _ieee_float32():
    """On CUDA, full float32 and deterministic cuDNN for each test (restored after it).

    cuDNN convolutions and matmuls default to TF32 (a 10-bit mantissa), which would turn the
    1e-6 comparisons with CPU references (hand values, Captum, Quantus, scipy) into 1e-3 ones;
    deterministic kernels keep exact comparisons with Captum (same call, same device) exact.
    No effect on the CPU.
    """
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.deterministic)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    yield
    (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.deterministic) = flags
