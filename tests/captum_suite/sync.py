"""Copy Captum's own tests of the methods captum_cf subclasses, importing captum_cf's classes.

Usage (from the repository root, with a checkout of https://github.com/meta-pytorch/captum)::

    python tests/captum_suite/sync.py /path/to/captum

Each file listed in ``FILES`` is copied unchanged except for its import statements: a name that
``captum_cf.attr`` exports as a subclass of the Captum class of the same name is imported from
``captum_cf.attr`` instead (the rest of the statement stays as it was). Run it again after
updating the checkout and record the commit in NOTE.md.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: Captum test files (paths in Captum's repository) copied here; see NOTE.md for those left out
FILES = [
    "tests/attr/test_deeplift_basic.py",
    "tests/attr/test_deeplift_classification.py",
    "tests/attr/test_feature_ablation.py",
    "tests/attr/test_gradient_shap.py",
    "tests/attr/test_integrated_gradients_basic.py",
    "tests/attr/test_integrated_gradients_classification.py",
    "tests/attr/test_kernel_shap.py",
    "tests/attr/test_lime.py",
    "tests/attr/test_occlusion.py",
    "tests/attr/test_shapley.py",
    "tests/attr/layer/test_internal_influence.py",
    "tests/attr/layer/test_layer_conductance.py",
    "tests/attr/layer/test_layer_deeplift.py",
    "tests/attr/layer/test_layer_gradient_shap.py",
    "tests/attr/layer/test_layer_integrated_gradients.py",
    "tests/attr/neuron/test_neuron_ablation.py",
    "tests/attr/neuron/test_neuron_conductance.py",
    "tests/attr/neuron/test_neuron_deeplift.py",
    "tests/attr/neuron/test_neuron_gradient_shap.py",
    "tests/attr/neuron/test_neuron_integrated_gradients.py",
]


def ours() -> set[str]:
    """Names exported by captum_cf.attr that subclass the Captum class of the same name."""
    import captum.attr

    import captum_cf.attr

    return {
        name
        for name in captum_cf.attr.__all__
        if isinstance(getattr(captum.attr, name, None), type)
        and issubclass(getattr(captum_cf.attr, name), getattr(captum.attr, name))
    }


def rewrite(source: str, names: set[str]) -> str:
    """``source`` with each ``from captum... import`` of a name in ``names`` split in two."""
    lines = source.splitlines(keepends=True)
    edits = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("captum.")):
            continue
        moved = [a for a in node.names if a.name in names and a.asname is None]
        if not moved:
            continue
        kept = [a for a in node.names if a not in moved]
        new = ""
        if kept:
            new += f"from {node.module} import {', '.join(_alias(a) for a in kept)}\n"
        new += f"from captum_cf.attr import {', '.join(a.name for a in moved)}\n"
        edits.append((node.lineno - 1, node.end_lineno, new))
    for start, end, new in reversed(edits):
        lines[start:end] = [new]
    return "".join(lines)


def _alias(a: ast.alias) -> str:
    return a.name if a.asname is None else f"{a.name} as {a.asname}"


def main(checkout: str) -> None:
    here, names = Path(__file__).parent, ours()
    for path in FILES:
        source = (Path(checkout) / path).read_text()
        (here / Path(path).name).write_text(rewrite(source, names))
    (here / "LICENSE").write_text((Path(checkout) / "LICENSE").read_text())


if __name__ == "__main__":
    main(sys.argv[1])
