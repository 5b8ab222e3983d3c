"""Name -> factory registries, so the audit, the CLI and the tests parametrise over everything.

``captum_cf.baselines.BASELINES`` and ``captum_cf.attr.METHODS`` are instances of
:class:`Registry`. A factory receives an :class:`AuditContext` describing the model and data at
hand and returns the object (a Baseline) or function (an explanation) the audit needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from torch.utils.data import TensorDataset

__all__ = ["AuditContext", "Registry"]

T = TypeVar("T")


@dataclass
class AuditContext:
    """What a registered factory may use to build itself.

    Attributes:
        model (nn.Module): the classifier being explained, pixel-space input, (N, classes) logits.
        data_name (str): ``"digits"``, ``"shapes"`` or a folder path.
        train_data (TensorDataset or None): images (N, C, H, W) (float in [0, 1], or
            ``uint8`` 0..255 as ``--train-data`` reads a folder) and labels, for baselines that
            need samples (nearest-sample) or fitted models.
        num_classes (int): number of classes of ``model``.
        image_shape (tuple): (C, H, W) of the inputs.
        device (torch.device): where the model and inputs live.
        seed (int): seed for anything random.
        extras (dict): free-form extras (e.g. a zoo name of a matching generator).
    """

    model: Any
    data_name: str
    train_data: TensorDataset | None
    num_classes: int
    image_shape: tuple[int, int, int]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Entry(Generic[T]):
    factory: Callable[..., T]
    description: str
    available: Callable[[AuditContext], bool]
    uses_baseline: bool = True
    needs: str = ""


#: a registered name: a column of the report, part of a store key ("curve/<method>/<baseline>")
#: and a value of a comma-separated option
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
#: names with a meaning of their own: every entry ("all"), no baseline ("-")
_RESERVED = ("all", "-")


class Registry(Generic[T]):
    """A named collection of factories.

    Example:
        >>> reg = Registry("thing")
        >>> reg.register("one", lambda ctx: 1, "the number one")
        >>> reg.names()
        ['one']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, _Entry[T]] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T],
        description: str = "",
        available: Callable[[AuditContext], bool] | None = None,
        uses_baseline: bool = True,
        needs: str = "",
    ) -> None:
        """Add ``factory`` under ``name``; ``available(ctx)`` says if it applies to a context.

        ``uses_baseline=False`` marks a method that ignores its baseline: the audit runs it once
        (one cell, baseline ``"-"``) instead of once per baseline. ``needs`` says what makes an
        unavailable entry available (an option, a file to train), for the audit's error.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED:
            raise ValueError(
                f"{self.kind} name must be a str of letters, digits and '_', '-', '.', '+' "
                f"starting with a letter or digit (it is a column, a file name and a "
                f"comma-separated option value), not 'all' or '-'; got {name!r}"
            )
        from captum_cf.baselines.base import Baseline

        if isinstance(factory, Baseline):  # callable (a Baseline is), but not a factory
            raise TypeError(f"{self.kind} {name!r}: register a factory that builds the "
                            f"baseline from the audit's context, e.g. lambda ctx: {factory!r}, "
                            "not the baseline itself")
        if not callable(factory):
            raise TypeError(f"the factory of {self.kind} {name!r} must be callable (it is called "
                            f"with the audit's context), got {type(factory).__name__}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered (unregister it "
                             "first to replace it)")
        self._entries[name] = _Entry(
            factory, description, available or (lambda ctx: True), uses_baseline, needs
        )

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plug-in's entry, to register a fixed version in the same session).

        Raises:
            KeyError: ``name`` is not registered.
        """
        self._get(name)
        del self._entries[name]

    def names(self, context: AuditContext | None = None) -> list[str]:
        """Registered names in registration order; only those available for ``context`` if given.

        Raises:
            ValueError: an entry's ``available(context)`` raised (named, with its error).
        """
        return [n for n, e in self._entries.items()
                if context is None or self._available(n, e, context)]

    def _available(self, name: str, entry: _Entry[T], context: AuditContext) -> bool:
        try:
            return bool(entry.available(context))
        except Exception as err:  # noqa: BLE001 (a plug-in's predicate: named in one line)
            raise ValueError(f"the available() of {self.kind} {name!r} failed: "
                             f"{type(err).__name__}: {err}") from err

    def describe(self, name: str) -> str:
        return self._get(name).description

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Call the factory registered under ``name``."""
        return self._get(name).factory(*args, **kwargs)

    def uses_baseline(self, name: str) -> bool:
        """False for a method registered with ``uses_baseline=False`` (it ignores baselines)."""
        return self._get(name).uses_baseline

    def needs(self, name: str) -> str:
        """What makes ``name`` available where it is not ("" when nothing is said)."""
        return self._get(name).needs

    def is_available(self, name: str, context: AuditContext) -> bool:
        return self._available(name, self._get(name), context)

    def _get(self, name: str) -> _Entry[T]:
        if name not in self._entries:
            raise KeyError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self._entries) or 'none'}"
            )
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
