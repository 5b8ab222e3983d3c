"""Builds tutorials/09_your_own_model.ipynb (run from the repository root)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("""# 09 · Your own model, your own images: train its baselines, then audit it

The zoo's generators and inpainters are trained for the zoo's classifiers. A counterfactual
baseline belongs to *its* classifier and data, so for your model you train them yourself and hand
them to the audit. The whole loop, at toy size so that it runs in a minute on a laptop CPU:

1. an image folder (`DIR/<class>/<image>`) and a model file with a factory (`net.py:make`) plus a
   state dict (`net.pt`): what you already have;
2. `captum-cf train ganmex --classifier net.py:make --classifier-weights net.pt` (GANMEX learns
   against your classifier) and `captum-cf train inpainter` (it learns from the images alone);
3. `captum-cf audit --model net.py:make --weights net.pt --baseline-weights ganmex=...`.

A real run trains the generators for thousands of steps at the model's resolution, on a GPU
(`--device cuda`, or `torchrun` for several); here they train for a few dozen steps, enough to
show every command and file, not to give good counterfactuals."""),
    new_code_cell("""import captum_cf  # noqa: F401, I001 (first: torchvision next to the CPU torch)
import pathlib
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import torch
from PIL import Image

# 1. an image folder: random crops of three photos that ship with scikit-image, 12 per class,
#    of several sizes (the readers resize the shorter side and crop the centre: --image-size)
work = pathlib.Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
photos = {"cat": skimage.data.chelsea(), "cup": skimage.data.coffee(),
          "rocket": skimage.data.rocket()}
for name, photo in photos.items():
    (work / "photos" / name).mkdir(parents=True)
    h, w = photo.shape[:2]
    for i in range(12):
        side = int(rng.integers(min(h, w) // 2, min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = photo[top : top + side, left : left + side]
        image = Image.fromarray(crop).resize((48 + 8 * (i % 3), 48))
        image.save(work / "photos" / name / f"{i}.jpg")
print(sorted(p.relative_to(work).as_posix() for p in (work / "photos").glob("*/*"))[:4], "...")

# ... and your model: a file with a factory, as `captum-cf audit --model net.py:make` takes it
_ = (work / "net.py").write_text('''
import torch.nn as nn

def make():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 3))
''')"""),
    new_markdown_cell("""## Your model, trained your way

Any training code will do; the audit and the trainers only need the factory and a state dict.
The folder is read with `folder_images`, through `captum_cf.datasets.ImageFolder`, the reader
the audit and the trainers use (`image_size=32`: shorter side to 32 px, centre crop)."""),
    new_code_cell("""import importlib.util

from captum_cf.training.data import folder_images

spec = importlib.util.spec_from_file_location("net", work / "net.py")
net = importlib.util.module_from_spec(spec)
spec.loader.exec_module(net)

x, y, classes = folder_images(str(work / "photos"), image_size=32)
torch.manual_seed(0)
model = net.make()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for _ in range(150):
    idx = torch.randint(0, len(x), (16,))
    loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
with torch.no_grad():
    accuracy = (model(x).argmax(1) == y).float().mean().item()
print(f"classes {classes}, {len(x)} images, training accuracy {accuracy:.2f}")
torch.save(model.state_dict(), work / "net.pt")"""),
    new_markdown_cell("""## Train the baselines for it

On the command line, from the folder that holds `photos/` and `net.py` (the same as the Python
calls below):

```bash
captum-cf train ganmex --data photos --image-size 32 --classifier net.py:make \\
    --classifier-weights net.pt --steps 30 --batch-size 8 --out photos-ganmex.pt
captum-cf train inpainter --data photos --image-size 32 --steps 60 --batch-size 8 \\
    --out photos-inpainter.pt
```

`train_ganmex` checks that the classifier takes the images (size, channels, classes) before any
step, holds out a share of the folder for its test numbers, and writes a zoo weights file."""),
    new_code_cell("""from captum_cf.zoo.generators import train_ganmex
from captum_cf.zoo.inpainters import train_inpainter

ganmex = train_ganmex(str(work / "photos"), out=str(work / "photos-ganmex.pt"),
                      classifier=f"{work / 'net.py'}:make",
                      classifier_weights=str(work / "net.pt"), image_size=32, steps=30,
                      batch_size=8, show_progress=False, log=None)
print(f"GANMEX after 30 steps: the model sees the requested class in "
      f"{ganmex['test_flip']:.2f} of {ganmex['test_pairs']} held-out (image, class) pairs, "
      f"mean L1 edit {ganmex['test_l1']:.3f}")
l1 = train_inpainter(str(work / "photos"), out=str(work / "photos-inpainter.pt"),
                     image_size=32, steps=60, batch_size=8, show_progress=False)
print(f"inpainter after 60 steps: held-out hole L1 {l1:.3f}")"""),
    new_markdown_cell("""## Audit your model with them

`--baseline-weights` puts your files where the zoo's would be on digits and shapes. Each file is
checked before any work (its kind, channels, image size and classes must fit the model and the
images), the report names the files, and `--resume` refuses other files than the run began
with. (Here the audit reads the same 36 images the model was trained on, to keep the toy small;
audit yours on held-out images.)"""),
    new_code_cell("""from captum_cf.cli import main

report = work / "report"
argv = ["audit", "--model", f"{work / 'net.py'}:make", "--weights", str(work / "net.pt"),
        "--data", str(work / "photos"), "--image-size", "32", "--n", "all",
        "--methods", "integrated-gradients,occlusion",
        "--baselines", "zero,blur,inpaint-pushpull,inpaint-learned,ganmex",
        "--baseline-weights", f"ganmex={work / 'photos-ganmex.pt'},"
                              f"inpaint-learned={work / 'photos-inpainter.pt'}",
        "--sanity-n", "4", "--no-progress", "--out", str(report)]
assert main(argv) == 0  # the exit code of captum-cf audit"""),
    new_code_cell("""fig = plt.figure(figsize=(9, 5))
plt.imshow(plt.imread(report / "counterfactuals.png"))
plt.axis("off")
plt.title("references of each baseline for the first images (report/counterfactuals.png)")
plt.show()"""),
    new_markdown_cell("""What to read here, and what not:

* The commands, files and checks are the real ones; the numbers and pictures are not worth
  reading after 30 GANMEX steps and 60 inpainter steps: the generator moves the model to the
  requested class in a minority of the held-out pairs, with crude patches, where a trained one
  moves nearly all of them with edits that look like the other class, and the learned
  inpainting is still a blur. Train at your model's resolution for thousands of steps, on a GPU:
  README, "Train a baseline for your own model".
* `sparse-counterfactual` takes a robust classifier the same way (`captum-cf train robust`, then
  `--baseline-weights sparse-counterfactual=FILE`), `exaggeration` a generator of `captum-cf
  train exaggeration --positive K`, and `nearest-sample` your training images
  (`--train-data DIR`).
* A grey folder for an RGB model: `--channels 3` (trainers and audit alike)."""),
]

nb = new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3",
                                                        "language": "python", "name": "python3"}})
nbformat.write(nb, "tutorials/09_your_own_model.ipynb")
