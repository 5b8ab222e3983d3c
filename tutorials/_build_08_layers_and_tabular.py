"""Builds tutorials/08_layers_and_tabular.ipynb (run from the repository root)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("""# 08 · Layers and tables: counterfactual baselines beyond input pixels

Two things a user meets right after the image tutorials:

1. **Layer attributions.** `LayerIntegratedGradients` attributes to the activations of a hidden
   layer, but its baseline still lives in *input* space: the layer's reference activations are
   `g(x')` for an input reference `x'`. A `Baseline` gives that `x'` as in `IntegratedGradients`.
2. **Tabular models.** A `Baseline` works on any input `(N, ...)`. On a table, "removing" a
   feature means replacing it by a value the model could meet: a constant (the training mean) is
   Captum's habit; `NearestSampleBaseline` takes the nearest real row of another class."""),
    new_code_cell("""import captum_cf  # noqa: F401, I001 (first: torchvision next to the CPU torch)
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from captum_cf import zoo
from captum_cf.attr import KernelShap, LayerIntegratedGradients
from captum_cf.baselines import ConstantBaseline, InpaintBaseline, NearestSampleBaseline
from captum_cf.datasets import load_digits
from captum_cf.inpainters import PushPullInpainter

torch.manual_seed(0)
model = zoo.load("digits-cnn")                  # Normalized(SmallCNN), pixels in [0, 1]
x, y = load_digits("test")[:4]                   # (4, 1, 32, 32) digits and their labels
conv = model.model.features[3]                   # second conv layer: (N, 32, 16, 16)
print(conv)"""),
    new_markdown_cell("""## LayerIntegratedGradients on a conv layer, from an inpainted reference

Same call as Captum's (`LayerIntegratedGradients(model, layer).attribute(inputs, baselines,
target, ...)`); `baselines` may also be a `Baseline`, resolved per example from the clean inputs.
Completeness holds in the layer: the attributions sum to `f(x) - f(x')`, and the returned delta
measures the gap."""),
    new_code_cell("""lig = LayerIntegratedGradients(model, conv)
inpaint = InpaintBaseline(PushPullInpainter())
maps, refs = {}, {"zero": torch.zeros_like(x), "inpainted": inpaint(x)}
for name, baseline in (("zero", ConstantBaseline(0.0)), ("inpainted", inpaint)):
    attr, delta = lig.attribute(x, baselines=baseline, target=y, n_steps=24,
                                return_convergence_delta=True)
    with torch.no_grad():
        gap = model(x).gather(1, y[:, None]) - model(refs[name]).gather(1, y[:, None])
    print(f"{name:9s} layer attr {tuple(attr.shape)}  sum {attr.sum((1, 2, 3)).tolist()}")
    print(f"{'':9s} f(x) - f(x') {gap.flatten().tolist()}  max |delta| {delta.abs().max():.2e}")
    maps[name] = attr.sum(1, keepdim=True)  # channel sum: one map per example, 16 x 16"""),
    new_code_cell("""fig, axes = plt.subplots(4, 4, figsize=(6.4, 6.4))
for i in range(4):
    up = {k: F.interpolate(v[i : i + 1], size=32, mode="nearest")[0, 0] for k, v in maps.items()}
    lim = max(float(u.abs().max()) for u in up.values()) + 1e-8
    axes[0, i].imshow(x[i, 0], cmap="gray", vmin=0, vmax=1)
    axes[1, i].imshow(refs["inpainted"][i, 0], cmap="gray", vmin=0, vmax=1)
    axes[2, i].imshow(up["zero"], cmap="bwr", vmin=-lim, vmax=lim)
    axes[3, i].imshow(up["inpainted"], cmap="bwr", vmin=-lim, vmax=lim)
for row, name in enumerate(["input", "inpainted x'", "LIG, zero x'", "LIG, inpainted x'"]):
    axes[row, 0].set_ylabel(name, fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()"""),
    new_markdown_cell("""From the black image, every activation of a stroke differs from the reference, so the map
follows the digit. The inpainted reference is different: each cell of a 4x4 grid (8 px, the
default patch) is inpainted from the cells around it, so the digit becomes a grey blur with a
regular pattern of darker dots where the grids meet, and its activations differ from the
digit's almost everywhere: the layer attribution spreads over the whole image. A reference
that removes the strokes without keeping their layout answers a different question than the
black one (what distinguishes this digit from a smooth grey version of itself). The reference is
in pixel space and the baseline is `InpaintBaseline`, an image baseline: it needs `(N, C, H, W)`
inputs in [0, 1]."""),
    new_markdown_cell("""## A tabular model: KernelShap with the nearest real row of another class

scikit-learn's wine data (178 wines, 13 chemical measurements, 3 cultivars) ships with the
package, so this runs offline. The features are standardised, so `ConstantBaseline(0.0)` is the
training mean, the usual choice; the mean wine is no wine in particular.
`NearestSampleBaseline(train, "runner-up", classifier=model)` instead takes, for each row, the
nearest training wine of the class the model ranks second: the attributions answer "why this
cultivar and not the closest real wine of the next one"."""),
    new_code_cell("""from sklearn.datasets import load_wine

data = load_wine()
features = torch.tensor(data.data, dtype=torch.float32)
labels = torch.tensor(data.target)
perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
train, test = perm[:140], perm[140:]
mean, std = features[train].mean(0), features[train].std(0)
table = (features - mean) / std                  # (178, 13), standardised

net = torch.nn.Sequential(torch.nn.Linear(13, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
for _ in range(300):  # plain full-batch gradient descent: a second of CPU
    loss = F.cross_entropy(net(table[train]), labels[train])
    grads = torch.autograd.grad(loss, list(net.parameters()))
    with torch.no_grad():
        for p, g in zip(net.parameters(), grads):
            p -= 0.3 * g
net.eval()
with torch.no_grad():
    accuracy = (net(table[test]).argmax(1) == labels[test]).float().mean()
print(f"test accuracy {accuracy:.2f} on {len(test)} wines")"""),
    new_code_cell("""rows = table[test[:3]]
pred = net(rows).argmax(1)
nearest = NearestSampleBaseline((table[train], labels[train]), "runner-up", classifier=net)
ks = KernelShap(net)  # three rows: each call, Captum warns that it fits one model per row, as meant
results = {}
for name, baseline in (("mean (0.0)", ConstantBaseline(0.0)), ("nearest runner-up", nearest)):
    torch.manual_seed(0)
    attr = ks.attribute(rows, baselines=baseline, target=pred, n_samples=300,
                        perturbations_per_eval=100)
    reference = baseline(rows, target=pred)
    with torch.no_grad():
        gap = net(rows).gather(1, pred[:, None]) - net(reference).gather(1, pred[:, None])
    results[name] = attr
    print(f"{name}: sum of attributions {[round(v, 3) for v in attr.sum(1).tolist()]}")
    print(f"{'':{len(name)}}  f(x) - f(x')         {[round(v, 3) for v in gap.flatten().tolist()]}")
print("runner-up classes:", nearest.classes(rows, pred).tolist(), "| predicted:", pred.tolist())"""),
    new_code_cell("""names = data.feature_names
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharey=True)
for i, ax in enumerate(axes):
    width = 0.4
    pos = torch.arange(13).float()
    ax.barh(pos - width / 2, results["mean (0.0)"][i].tolist(), width, label="mean")
    ax.barh(pos + width / 2, results["nearest runner-up"][i].tolist(), width,
            label="nearest runner-up")
    ax.set_title(f"wine {i}: class {int(pred[i])}", fontsize=9)
    ax.axvline(0, color="k", lw=0.5)
axes[0].set_yticks(range(13))
axes[0].set_yticklabels(names, fontsize=7)
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()"""),
    new_markdown_cell("""KernelShap's attributions sum (about) to the output gap between the row and its reference,
so they distribute a different quantity for each baseline: against the mean wine they explain the
whole prediction; against the nearest wine of the runner-up cultivar what separates the two
(here a larger gap than against the mean, since the runner-up's logit is low for this row),
and features on which the row and that real wine are close get little (exactly nothing where they
are equal: removing such a feature changes nothing).

* Every generic baseline takes tabular rows: `ConstantBaseline` (also one value per feature),
  `NoiseBaseline(center=0.0, bounds=None)`, `NearestSampleBaseline`, `GANMEXBaseline` with any
  generator, `SparseCounterfactualBaseline` (features scaled to [0, 1]) and your own subclass.
* Image baselines (`BlurBaseline`, `InpaintBaseline`) say so when given a table."""),
]

nb = new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3",
                                                        "language": "python", "name": "python3"}})
nbformat.write(nb, "tutorials/08_layers_and_tabular.ipynb")
