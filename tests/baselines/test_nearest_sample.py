"""NearestSampleBaseline (MDTS): hand-made data sets with known nearest samples."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from captum_cf.baselines import NearestSampleBaseline


def _pixels(*rows: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(rows).view(len(rows), 1, 1, 2)


def test_picks_the_nearest_sample_of_the_counterfactual_class(device):
    images = _pixels((0.1, 0.1), (0.9, 0.9), (0.2, 0.8), (0.8, 0.2), (0.0, 0.0)).to(device)
    labels = torch.tensor([0, 0, 1, 1, 2], device=device)  # the data set on the device too
    base = NearestSampleBaseline(TensorDataset(images, labels), counterfactual_class=1)
    x = _pixels((0.3, 0.9), (0.9, 0.1)).to(device)
    assert base.nearest_index(x).tolist() == [2, 3]
    ref = base(x)
    assert ref.device == device and torch.equal(ref, images[[2, 3]])
    # per-example classes, given on the device, with a target on the device
    classes = torch.tensor([0, 2], device=device)
    per = NearestSampleBaseline((images, labels), counterfactual_class=classes)
    assert per.nearest_index(x).tolist() == [1, 4]
    assert per.nearest_index(x, target=torch.tensor([1, 1], device=device)).tolist() == [1, 4]


def test_l1_and_l2_pick_different_samples(device):
    images = _pixels((0.5, 0.5), (0.9, 0.0))  # from (0, 0): L1 1.0 vs 0.9, L2 0.71 vs 0.9
    labels = torch.tensor([1, 1])
    x = _pixels((0.0, 0.0)).to(device)  # the data set stays on the CPU
    assert NearestSampleBaseline((images, labels), 1, metric="l2").nearest_index(x).item() == 0
    assert NearestSampleBaseline((images, labels), 1, metric="l1").nearest_index(x).item() == 1


def test_chunked_search_equals_one_pass_and_brute_force(device):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(50, 1, 4, 4, generator=g), torch.arange(50) % 3
    x = torch.rand(7, 1, 4, 4, generator=g)
    data = (images.to(device), labels.to(device))
    small = NearestSampleBaseline(data, 2, chunk_size=3).nearest_index(x.to(device))
    big = NearestSampleBaseline(data, 2).nearest_index(x.to(device))
    candidates = (labels == 2).nonzero().flatten()
    brute = candidates[((x[:, None] - images[candidates][None]) ** 2).sum((2, 3, 4)).argmin(1)]
    assert torch.equal(small, big) and torch.equal(big, brute)


def test_runner_up_and_objects_with_images_and_labels(device):
    class Data:
        images = _pixels((0.0, 0.0), (1.0, 1.0), (0.5, 0.5)).to(device)
        labels = torch.tensor([0, 1, 2])

    def clf(x):
        return torch.tensor([[3.0, 1.0, 2.0]], device=x.device).expand(x.shape[0], 3)

    base = NearestSampleBaseline(Data(), "runner-up", classifier=clf)
    x = _pixels((0.2, 0.2)).to(device)
    assert base.classes(x).tolist() == [2]
    ref = base(x)
    assert ref.device == device and torch.equal(ref, Data.images[[2]])
    assert base.classes(x, target=2).tolist() == [0]


def test_bad_input_raises_clear_errors():
    images, labels = _pixels((0.1, 0.1), (0.9, 0.9)), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"counterfactual_class must be class indices in \[0, 2\)"):
        NearestSampleBaseline((images, labels), 2)
    with pytest.raises(ValueError, match="metric must be"):
        NearestSampleBaseline((images, labels), 1, metric="cosine")
    with pytest.raises(TypeError, match="dataset must be"):
        NearestSampleBaseline(images, 1)
    with pytest.raises(ValueError, match="dataset samples contains NaN"):
        NearestSampleBaseline((images * float("nan"), labels), 1)
    base = NearestSampleBaseline((images, labels), 1)
    with pytest.raises(ValueError, match="dataset samples are \\(1, 1, 2\\)"):
        base(torch.rand(1, 1, 2, 2))
    with pytest.raises(ValueError, match="equals target"):
        base(_pixels((0.5, 0.5)), target=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_nearest_sample_of_features_large_against_their_spread(dtype, device) -> None:
    # cdist's |a|^2 + |b|^2 - 2ab form lost the nearest row on raw features around 1e4
    g = torch.Generator().manual_seed(0)
    samples = (10_000 + torch.randn(300, 8, generator=g, dtype=torch.float64)).to(dtype)
    queries = (10_000 + torch.randn(40, 8, generator=g, dtype=torch.float64)).to(dtype)
    labels = torch.zeros(300, dtype=torch.long)
    baseline = NearestSampleBaseline((samples.to(device), labels.to(device)), 0)
    got = baseline.nearest_index(queries.to(device)).cpu()
    exact = torch.cdist(queries.double(), samples.double(),
                        compute_mode="donot_use_mm_for_euclid_dist").argmin(1)
    assert torch.equal(got, exact)


def test_num_classes_for_candidates_of_some_classes_only(device) -> None:
    rows = torch.rand(6, 4, device=device)
    only_b = NearestSampleBaseline((rows, torch.ones(6, dtype=torch.long)), 1, num_classes=3)
    x = torch.rand(2, 4, device=device)
    assert torch.equal(only_b.classes(x, target=2).cpu(), torch.tensor([1, 1]))
    default = NearestSampleBaseline((rows, torch.ones(6, dtype=torch.long)), 1)
    with pytest.raises(ValueError, match=r"target must be class indices in \[0, 2\).*\(the "
                                         r"dataset labels give 2 classes: pass num_classes="):
        default.classes(x, target=2)
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 2"):
        NearestSampleBaseline((rows, torch.ones(6, dtype=torch.long)), 1, num_classes=1)
    with pytest.raises(TypeError, match="classifier must be a model"):
        NearestSampleBaseline((rows, torch.ones(6, dtype=torch.long)), 1, classifier="runner-up")
