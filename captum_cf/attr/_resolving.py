"""Build the ``attribute`` of a Captum subclass whose input-space ``baselines`` accept Baselines.

The layer, neuron and Shapley subclasses of ``captum_cf.attr`` differ from their Captum parents
only in what ``baselines`` may hold, so each one's ``attribute`` is made here from Captum's own:
the same parameters and defaults (``inspect.signature`` shows Captum's, ``baselines`` widened
to also take a Baseline), Captum's ``@log_usage`` on top (``NoiseTunnel`` calls
``attribute.__wrapped__``), and a body that

1. binds the call to Captum's signature (so positional and keyword calls behave alike);
2. without a Baseline in ``baselines``: calls Captum's undecorated ``attribute`` with exactly the
   arguments given, so the numbers are Captum's (and its assertions still ``AssertionError``s);
3. with a Baseline, one of three strategies:

   - ``"reference"`` (path and DeepLIFT methods): each Baseline becomes
     ``baseline.reference(inputs, target)`` (:func:`~captum_cf.attr._baselines.resolve_baselines`),
     then Captum runs on that tensor;
   - ``"paired"`` (the Shap family): the same references, one per example, are checked to be
     per-example (:func:`~captum_cf.attr._baselines.check_per_example`) and handed to a
     ``paired(self, arguments)`` function that pairs reference ``n`` with example ``n`` instead of
     treating the rows as a distribution shared by all examples;
   - ``"fill"`` (perturbation methods): removed features are filled by ``baseline.fill`` chunk by
     chunk, through the sentinel machinery of :mod:`captum_cf.attr._perturbation`.

Before any work the arguments are checked as in the input-level methods
(:func:`~captum_cf._validation.check_attribute_arguments`: inputs, target, finite baselines,
feature masks, sample counts, noise levels; float inputs in the model's dtype), and the target's
upper bound on the model's first output (:func:`~captum_cf.attr._guard.checking_target`). The
user's model and inputs are restored after every call, also after an exception
(:func:`~captum_cf.attr._guard.guarded`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Literal, Union

from captum.log import log_usage
from torch import nn

from captum_cf._validation import as_int, check_attribute_arguments, noise_dtype_errors
from captum_cf.attr._baselines import check_per_example, has_baseline, resolve_baselines
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._perturbation import _plan, _with_filling_forward
from captum_cf.baselines.base import Baseline

__all__: list[str] = []

Strategy = Literal["reference", "paired", "fill"]
Paired = Callable[[Any, dict[str, Any]], Any]


def baseline_attribute(
    captum_cls: type, strategy: Strategy = "reference", paired: Paired | None = None
) -> Callable[..., Any]:
    """Captum's ``captum_cls.attribute`` whose ``baselines`` also accept Baselines.

    Args:
        captum_cls (type): the Captum class (e.g. ``captum.attr.LayerIntegratedGradients``).
        strategy (str): ``"reference"``, ``"paired"`` or ``"fill"`` (see the module docstring).
        paired (Callable): with ``"paired"``, ``paired(self, arguments)`` computes the attribution
            from the bound arguments, ``arguments["baselines"]`` holding one reference per example.

    Returns:
        The ``attribute`` function to assign in the subclass body.
    """
    if (strategy == "paired") != (paired is not None):
        raise ValueError("paired is required with strategy='paired' and only there")
    inner = captum_cls.attribute.__wrapped__  # type: ignore[attr-defined]
    signature = inspect.signature(inner)
    has_target = "target" in signature.parameters

    @functools.wraps(inner)
    def attribute(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        inputs, baselines = call.arguments["inputs"], call.arguments.get("baselines")
        target = call.arguments.get("target")
        _check_arguments(call.arguments, distribution=strategy == "paired")
        for name in _COUNTS + _OPTIONAL_COUNTS:  # np.int64 counts as the ints Captum asserts
            if name in call.arguments:
                call.arguments[name] = as_int(call.arguments[name])
        if not has_target:
            _check_no_target_needed(baselines, captum_cls.__name__)
        noisy = (noise_dtype_errors(self.forward_func, captum_cls.__name__)
                 if "stdevs" in signature.parameters  # the GradientShap family: float32 noise
                 else contextlib.nullcontext())
        with guarded(self.forward_func, inputs, baselines), checking_target(
            self, target, scores_output=has_target  # neuron methods read a layer, not the output
        ) as method, noisy, _layer_outputs(self, captum_cls.__name__):
            call.arguments["self"] = method
            if strategy == "fill":
                return _fill_call(inner, call)
            # callables are Captum's for the Shap family only (a pool of references)
            # a ConstantBaseline goes to the reference methods as Captum's own number
            resolved = resolve_baselines(
                baselines, inputs, target, allow_callable=strategy == "paired",
                native=strategy == "reference",
            )
            if not has_baseline(baselines):
                return inner(*call.args, **call.kwargs)
            call.arguments["baselines"] = resolved
            if paired is None:
                return inner(*call.args, **call.kwargs)
            check_per_example(resolved, inputs)
            call.apply_defaults()
            arguments = {k: v for k, v in call.arguments.items() if k != "self"}
            return paired(method, arguments)

    params = [
        p.replace(annotation=Union[p.annotation, Baseline, tuple[Any, ...]])
        if p.name == "baselines"
        else p
        for p in signature.parameters.values()
    ]
    attribute.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    attribute.__doc__ = _DOC.format(name=captum_cls.__name__, strategy=_STRATEGY_DOC[strategy])
    return log_usage(part_of_slo=True)(attribute)


@contextlib.contextmanager
def _layer_outputs(method: Any, name: str) -> Iterator[None]:
    """A layer whose outputs hold None (``nn.MultiheadAttention`` called with
    ``need_weights=False``, as torchvision's ViT does, returns ``(output, None)``): Captum fails
    with ``'NoneType' object has no attribute 'clone'``; one line saying what to do instead."""
    try:
        yield
    except AttributeError as err:
        layer = getattr(method, "layer", None)
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        in_captum = tb is not None and "captum" in tb.tb_frame.f_code.co_filename.replace(
            "captum_cf", "")  # raised inside Captum, not in the user's forward
        if (not isinstance(layer, nn.Module) or not in_captum
                or "'NoneType' object has no attribute" not in str(err)):
            raise
        raise TypeError(
            f"{name}: the layer {type(layer).__name__} returns None among its outputs "
            "(nn.MultiheadAttention called with need_weights=False returns (output, None)), "
            "which Captum cannot attribute to: choose a module before or after it that returns "
            "tensors, such as the block's LayerNorm (the attention's out_proj is not called as a "
            "module)"
        ) from err


_COUNTS = ("n_steps", "n_samples", "perturbations_per_eval")
_OPTIONAL_COUNTS = ("internal_batch_size",)


def _check_arguments(arguments: dict[str, Any], distribution: bool = False) -> None:
    """The argument checks of the input-level methods, on the arguments this call was given."""
    baselines = arguments.get("baselines")
    extra = {"stdevs": arguments["stdevs"]} if "stdevs" in arguments else {}
    check_attribute_arguments(
        arguments["inputs"],
        arguments.get("target"),
        None if callable(baselines) else baselines,
        arguments.get("feature_mask"),
        counts={k: arguments[k] for k in _COUNTS if k in arguments},
        optional_counts={k: arguments[k] for k in _OPTIONAL_COUNTS if k in arguments},
        distribution=distribution,
        **extra,
    )


def _fill_call(inner: Callable[..., Any], call: inspect.BoundArguments) -> Any:
    """Perturbation methods: Captum's loop on a copy whose forward fills the sentinel entries."""
    arguments = call.arguments
    plan = _plan(arguments["inputs"], arguments.get("baselines"), arguments.get("target"))
    if plan is not None:  # without a Baseline: Captum's own call, untouched
        arguments["baselines"] = plan.captum_baselines
        arguments["self"] = _with_filling_forward(arguments["self"], plan)
    return inner(*call.args, **call.kwargs)


def _check_no_target_needed(baselines: Any, name: str) -> None:
    """A Baseline that needs the class cannot serve a method that has no ``target``."""
    entries = baselines if isinstance(baselines, tuple) else (baselines,)
    for b in entries:
        if isinstance(b, Baseline) and getattr(b, "needs_target", False):
            raise ValueError(
                f"baselines: {type(b).__name__} depends on the class being explained, but "
                f"{name}.attribute has no target; pass its reference as a tensor instead, "
                "baselines=baseline.reference(inputs, target)"
            )


_DOC = """Captum's ``{name}.attribute``; its input-space ``baselines`` may also hold Baselines.

Parameters, defaults and return values are exactly Captum's (see
:meth:`captum.attr.{name}.attribute`). ``baselines`` additionally accepts a
:class:`~captum_cf.baselines.Baseline`, or a tuple (one entry per input tensor) whose entries may
be Baselines next to numbers and tensors. {strategy} Without a Baseline the call is Captum's,
untouched.
"""

_STRATEGY_DOC = {
    "reference": "A Baseline becomes ``baseline.reference(inputs, target)``, one reference per "
    "example, computed once per call from the clean inputs.",
    "paired": "A Baseline gives each example its own reference, "
    "``baseline.reference(inputs, target)[n]`` for example ``n``, used as that example's only "
    "reference (not drawn from a distribution shared by all examples).",
    "fill": "A Baseline fills each removed feature with ``baseline.fill(inputs, keep)``, one "
    "fill call per chunk of ``perturbations_per_eval`` perturbations.",
}
