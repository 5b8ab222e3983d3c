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
# cuBLAS reproducible under torch.use_deterministic_algorithms (see _ieee_float32); read when
# CUDA first runs a matrix product, so set before any test does
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


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
    elif request.param == "cuda":  # as tensors report it: cuda:0, not the index-less cuda
        yield torch.device("cuda", torch.cuda.current_device())
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
    strict = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    if torch.cuda.is_available():
        # deterministic kernels where PyTorch has them (gather's and index_add's backward); an
        # operation without one warns (recorded by pytest_warning_recorded below)
        torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.deterministic) = flags
    torch.use_deterministic_algorithms(strict[0], warn_only=strict[1])


def pytest_warning_recorded(warning_message, when, nodeid, location) -> None:
    """With CAPTUM_CF_TEST_NONDETERMINISM_LOG=FILE, each test that ran an operation without a
    deterministic CUDA implementation is appended to FILE with PyTorch's message."""
    log = os.environ.get("CAPTUM_CF_TEST_NONDETERMINISM_LOG")
    text = str(warning_message.message)
    if log and "does not have a deterministic implementation" in text:
        with open(log, "a") as f:
            f.write(f"{nodeid}\t{text.splitlines()[0][:300]}\n")
