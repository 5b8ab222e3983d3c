"""A simulated accelerator: device placement checked on a CPU-only machine.

CI has no GPU, yet the most common CUDA failure of code written on a CPU is a tensor created
on the CPU and mixed with the input's tensors on the GPU (``torch.rand(n)`` beside
``x.cuda()``). ``simulated_device()`` makes such mistakes fail on the CPU: inside it, tensors
moved to ``SIM`` (``x.to(SIM)``, ``model.to(SIM)``, ``torch.zeros(..., device=SIM)``,
``torch.zeros(..., device=x.device)``) report ``SIM`` as their device and keep their values in
ordinary CPU memory, and every operation checks its tensors as CUDA does: all on one device,
except 0-dim CPU tensors (scalars), the indices of advanced indexing and cross-device copies.
A CPU generator passed with ``device=SIM`` fails as it does for CUDA. Kernels are the CPU's,
so values equal a CPU run's: only placement is checked, not CUDA numerics.

``SIM`` is the ``meta`` device type, the one non-CPU device whose autograd support every CPU
build of PyTorch has; code under test must not special-case ``meta`` (``captum_cf`` does not).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

SIM = torch.device("meta")
aten = torch.ops.aten

#: operations whose tensor arguments may live on different devices, as on CUDA
_CROSS_DEVICE = {aten.copy_.default, aten._to_copy.default, aten._copy_from.default,
                 aten._copy_from_and_resize.default, aten.lift_fresh.default,
                 aten.lift_fresh_copy.default, aten._local_scalar_dense.default}
#: advanced indexing: CUDA tensors accept indices on the CPU
_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default,
             aten._index_put_impl_.default, aten._unsafe_index.Tensor}


#: why the tests of the public trainers (the CLI's and the zoo's ``train_*``) carry
#: ``@pytest.mark.no_simdev(PUBLIC_TRAINERS)``: they accept device "cpu" or "cuda" only
PUBLIC_TRAINERS = ("the public trainers take device cpu or cuda "
                   "(tests/training: the Trainer classes)")


class DevicePlacementError(RuntimeError):
    """Tensors of two devices met in one operation (CUDA would raise here)."""


class SimTensor(torch.Tensor):
    """CPU data labelled with the device ``SIM``."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor, requires_grad: bool = False) -> SimTensor:
        r = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, layout=elem.layout, device=SIM, requires_grad=requires_grad)
        r.elem = elem.detach() if requires_grad else elem
        return r

    def __repr__(self, *, tensor_contents: Any = None) -> str:  # noqa: ARG002
        return f"SimTensor({self.elem!r})"

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ARG003
        return _dispatch(func, args, kwargs or {})

    # a traceable wrapper subclass: Module.to(SIM) swaps parameters in place
    # (torch.utils.swap_tensors), so they stay the objects an optimiser already holds, as with
    # CUDA, instead of becoming new Parameters
    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return ["elem"], None

    @staticmethod
    def __tensor_unflatten__(inner: dict, meta: Any, outer_size: Any, outer_stride: Any):  # noqa: ANN205, ARG004
        return SimTensor(inner["elem"])

    def tolist(self) -> Any:  # works on CUDA (a copy to the host)
        _host_read("tensor")
        return self.elem.tolist()

    def numpy(self, *, force: bool = False) -> Any:
        raise TypeError("can't convert the device's tensor to numpy (CUDA: can't convert "
                        "cuda:0 device type tensor to numpy. Use Tensor.cpu() first)")

    def __deepcopy__(self, memo: dict) -> SimTensor:
        out = SimTensor(self.elem.clone(), requires_grad=self.requires_grad)
        if getattr(self, "_is_param", False):
            out = torch.nn.Parameter(out, requires_grad=self.requires_grad)
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, proto):  # noqa: ANN001, ANN204
        # torch.save of a tensor on the device: saved as its CPU value, like a CUDA tensor
        # saved and loaded with map_location="cpu"
        return self.elem.__reduce_ex__(proto)


def _is_sim_device(device: Any) -> bool:
    return device is not None and torch.device(device).type == SIM.type


def _describe(t: torch.Tensor) -> str:
    where = "SIM" if isinstance(t, SimTensor) else str(t.device)
    return f"{where} {tuple(t.shape)} {t.dtype}"


def _check(func, args: tuple, kwargs: dict) -> bool:  # noqa: ANN001
    """Whether the call involves SIM tensors; raises if it mixes them with CPU tensors."""
    leaves, _ = tree_flatten((args, kwargs))
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    for t in tensors:
        if not isinstance(t, SimTensor) and t.device.type == SIM.type:
            raise RuntimeError(f"{func}: a data-less {SIM.type} tensor reached the simulation "
                               "(a constructor the simulation does not route)")
    sim = [t for t in tensors if isinstance(t, SimTensor)]
    into_sim = _is_sim_device(kwargs.get("device"))
    if into_sim and kwargs.get("generator") is not None:
        gen = kwargs["generator"]
        if gen.device.type != SIM.type:
            raise DevicePlacementError(
                f"{func}: a generator on {gen.device} used for a tensor on the device "
                "(CUDA: Expected a 'cuda' device type for generator)")
    if not sim or func in _CROSS_DEVICE:
        return bool(sim) or into_sim
    if func in _INDEXING:  # the indices (second argument) may stay on the CPU
        first = args[0]
        others = [t for t in tree_flatten((args[2:], kwargs))[0] if isinstance(t, torch.Tensor)]
        tensors = [first, *others]
    plain = [t for t in tensors if not isinstance(t, SimTensor) and t.dim() > 0]
    if plain:
        raise DevicePlacementError(
            f"{func}: tensors on two devices (CUDA: Expected all tensors to be on the same "
            f"device): {', '.join(_describe(t) for t in tensors)}")
    return True


#: reads of SIM tensors by the host since import: ``scalar`` (``.item()``, ``int()``, ``bool()``)
#: and ``tensor`` (``.cpu()``, ``.to("cpu")``, ``.tolist()``); each is a stream wait on CUDA
HOST_READS: dict[str, int] = {"scalar": 0, "tensor": 0}
#: called with the kind of every such read when set (benchmarks/device_syncs.py: where from)
HOST_READ_HOOK: Callable[[str], None] | None = None


def _host_read(kind: str) -> None:
    HOST_READS[kind] += 1
    if HOST_READ_HOOK is not None:
        HOST_READ_HOOK(kind)


def _dispatch(func, args: tuple, kwargs: dict):  # noqa: ANN001, ANN202
    involves_sim = _check(func, args, kwargs)
    if involves_sim and func is aten._local_scalar_dense.default:
        _host_read("scalar")
    elif (involves_sim and func is aten._to_copy.default
          and not _is_sim_device(kwargs.get("device", SIM))):
        _host_read("tensor")

    def unwrap(t: Any) -> Any:
        return t.elem if isinstance(t, SimTensor) else t

    call_kwargs = tree_map(unwrap, kwargs)
    if "device" in call_kwargs and _is_sim_device(call_kwargs["device"]):
        call_kwargs["device"] = torch.device("cpu")
    out = func(*tree_map(unwrap, args), **call_kwargs)
    if not involves_sim:
        return out
    if func is aten._to_copy.default and not _is_sim_device(kwargs.get("device", SIM)):
        return out  # moved off the device: a plain CPU tensor
    if func is aten._local_scalar_dense.default:
        return out
    if func._schema.is_mutable and args and isinstance(args[0], SimTensor):
        return args[0]  # in place: the same tensor object
    return tree_map(lambda t: SimTensor(t) if isinstance(t, torch.Tensor) else t, out)


class _SimMode(TorchDispatchMode):
    """Routes calls that create tensors with ``device=SIM`` to the CPU and labels the result."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if _is_sim_device(kwargs.get("device")):
            return _dispatch(func, args, kwargs)
        return func(*args, **kwargs)


#: constructors from Python data, which build their tensor below the dispatcher's Python modes
_FROM_DATA = {torch.tensor, torch.as_tensor, torch.asarray}
#: indexing from Python: list and array indices become tensors below the modes
_INDEXING_METHODS = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}


def _index_on_cpu(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_index_on_cpu(i) for i in index)
    if isinstance(index, list) or type(index).__module__ == "numpy":
        return torch.as_tensor(index)
    return index


class _SimConstructors(TorchFunctionMode):
    """``torch.tensor(data, device=SIM)`` and ``t.new_tensor(data)`` of a SIM tensor ``t``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _FROM_DATA and _is_sim_device(kwargs.get("device")):
            grad = kwargs.pop("requires_grad", False)
            return func(*args, **{**kwargs, "device": "cpu"}).to(SIM).requires_grad_(grad)
        if func in _INDEXING_METHODS and isinstance(args[0], SimTensor):
            # PyTorch turns list and array indices into tensors on the indexed tensor's device
            # below the modes; CUDA accepts them from the CPU, so make them CPU tensors here
            return func(args[0], _index_on_cpu(args[1]), *args[2:], **kwargs)
        if func is torch.Tensor.new_tensor and isinstance(args[0], SimTensor):
            device = kwargs.pop("device", SIM)
            grad = kwargs.pop("requires_grad", False)
            out = func(args[0].elem, *args[1:], **kwargs)
            return (out.to(SIM) if _is_sim_device(device) else out.to(device)).requires_grad_(grad)
        return func(*args, **kwargs)


@contextlib.contextmanager
def simulated_device() -> Iterator[torch.device]:
    """Within the block, ``SIM`` (yielded) behaves as a second device; see the module doc."""
    with _SimMode(), _SimConstructors():
        yield SIM

