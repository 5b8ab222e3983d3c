"""IEEE float32 on CUDA in this folder: cuDNN convolutions default to TF32 (10-bit mantissa),
which would break the comparisons with CPU references (hand values, Captum, Quantus, scipy)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _ieee_float32():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
