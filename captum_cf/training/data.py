"""The images of ``captum-cf train ... --data digits|shapes|DIR`` as in-memory tensors.

``DIR`` is read with :class:`captum_cf.datasets.ImageFolder`, the reader ``captum-cf audit``
uses (one folder per class, resized to ``--image-size`` and centre-cropped). Trainers sample
random batches (and GANMEX real images of a given class) many times per epoch, so the images are
decoded once, through a ``DataLoader``, and held as one ``uint8`` tensor (values 0..255, as the
8-bit files hold them): ``N x C x S x S`` bytes (10,000 RGB images at 128 px: 0.5 GB; float32
would take 2 GB). Every trainer accepts ``uint8`` images and turns each batch into float32 in
[0, 1] on its device (:func:`unit_images`), so the training set also takes a quarter of the
GPU memory float32 would.

Splits: ``DIR/train`` and ``DIR/test`` when both exist (each a class-per-folder tree), otherwise
a fixed share of ``DIR`` (``test_fraction``, seed 0: the same images whatever the training seed)
is held out for the final measurement.
"""

from __future__ import annotations

import logging
import mmap
import os
import warnings
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

__all__ = ["BUILTIN_DATA", "is_folder", "check_data", "folder_images", "folder_split",
           "unit_images", "check_training_images", "check_generator_images", "channel_mean_std",
           "DeviceImages", "HOLD_SHARE", "device_free_bytes", "available_memory",
           "folder_class_names"]

logger = logging.getLogger(__name__)

#: the data sets captum_cf generates or ships
BUILTIN_DATA = ("digits", "shapes")


#: ``k / 255`` for k = 0..255, correctly rounded float32 quotients (computed on the CPU)
_UNIT_VALUES = torch.arange(256, dtype=torch.float32) / 255.0


def unit_images(images: Tensor) -> Tensor:
    """``images`` as float images in [0, 1]: ``uint8`` (0..255) divided by 255 (a new float32
    tensor on the same device), any float tensor returned unchanged.

    The same bits on every device: CUDA divides by a number as a multiplication by its
    reciprocal (off by one bit for some values), so off the CPU the quotients are looked up in a
    table of the CPU's; training on a uint8 set therefore equals training on its float copy there
    too.

    Example:
        >>> unit_images(torch.tensor([0, 51, 255], dtype=torch.uint8))
        tensor([0.0000, 0.2000, 1.0000])
    """
    if images.dtype != torch.uint8:
        return images
    if images.device.type == "cpu":
        return images.float().div_(255.0)
    table = _UNIT_VALUES.to(images.device, non_blocking=True)
    return table[images.int()]


def check_training_images(images: Any, name: str = "images") -> Tensor:
    """Training images: a ``uint8`` tensor (N, C, H, W) (0..255) or a float one in [0, 1].

    Raises:
        TypeError: not a tensor, or neither ``uint8`` nor floating point.
        ValueError: not 4-D, empty, or (float) non-finite or outside [0, 1].
    """
    if isinstance(images, Tensor) and images.dtype == torch.uint8:
        if images.dim() != 4:
            raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
        if images.numel() == 0:
            raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
        return images
    from captum_cf._validation import check_images

    try:
        return check_images(images, name)
    except TypeError as err:
        raise TypeError(f"{err} (training images may be uint8, 0..255, or float in [0, 1])"
                        ) from None


def check_generator_images(generator: Any, images: Any, name: str = "images") -> None:
    """Training images of a generator (anything with ``check_inputs(images, name)``): float in
    [0, 1] or ``uint8``, shaped for ``generator`` (``uint8``: the shape is checked on the first
    image, converted)."""
    check_training_images(images, name)
    generator.check_inputs(images if images.is_floating_point() else unit_images(images[:1]),
                           name)


#: a training set is copied to an accelerator when it takes at most this share of the device's
#: free memory (the rest is left to the models, optimisers and activations); a larger one stays
#: where it is and each batch's rows move per step (:class:`DeviceImages`)
HOLD_SHARE = 0.25


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA's ``mem_get_info``); ``None`` where it cannot be
    asked (the CPU, other accelerators)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return None


def available_memory() -> int | None:
    """Bytes of memory this process can still fill: the system's ``MemAvailable`` (free plus
    reclaimable page cache), less under a cgroup memory limit (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``, minus the group's anonymous memory); ``None`` where neither can
    be read (not Linux)."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f
                      if line.startswith("MemAvailable:")]
    except OSError:
        return None
    try:
        with open("/proc/self/cgroup") as f:
            groups = [line.strip().split(":", 2) for line in f]
    except OSError:
        groups = []
    for _, controllers, path in groups:
        v2 = controllers == ""
        if not v2 and "memory" not in controllers.split(","):
            continue
        folder = os.path.join("/sys/fs/cgroup", "" if v2 else "memory", path.lstrip("/"))
        try:
            with open(os.path.join(folder, "memory.max" if v2 else "memory.limit_in_bytes")) as f:
                limit = f.read().strip()
            with open(os.path.join(folder, "memory.stat")) as f:
                stat = dict(line.split() for line in f)
            anon = int(stat.get("anon" if v2 else "total_rss", stat.get("rss", 0)))
        except (OSError, ValueError):
            continue
        if limit.isdigit():
            found.append(max(int(limit) - anon, 0))
    return min(found) if found else None


def _madvise(address: int, length: int, advice: int) -> bool:
    """``madvise`` on the pages holding ``length`` bytes from ``address`` (the page of
    ``address`` included: a file mapping starts on a page at or before its data); through libc,
    as the ``mmap`` object itself must not ride on a tensor (``torch.save`` pickles tensor
    attributes). Returns whether the call succeeded."""
    import ctypes

    global _LIBC_MADVISE
    if _LIBC_MADVISE is None:
        _LIBC_MADVISE = ctypes.CDLL(None, use_errno=True).madvise
        _LIBC_MADVISE.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    start = address // mmap.PAGESIZE * mmap.PAGESIZE
    return _LIBC_MADVISE(start, address + length - start, advice) == 0


_LIBC_MADVISE: Any = None


def _will_need(images: Tensor, starts: list[int], count: int = 1) -> None:
    """Ask the kernel to start reading the pages of rows ``start .. start + count - 1`` of a
    mapped set for each start (``MADV_WILLNEED``): one read per run, all in flight together,
    instead of a page fault per page one after another once the set is read at random."""
    row = images.stride(0) * images.element_size()
    base = images.data_ptr()
    for r in starts:
        _madvise(base + r * row, count * row, mmap.MADV_WILLNEED)


def _advise_random_reads(images: Tensor) -> bool:
    """Tell the kernel that a memory-mapped training set is read at random
    (``madvise(MADV_RANDOM)``) when it is larger than half the available memory; returns
    whether it did.

    A page fault on a file mapping normally reads the file's read-ahead window around the page
    (8 MB on this project's machine), which suits a set that stays in the page cache once read.
    A set that does not fit evicts those neighbours before a random batch needs them. With the
    advice, :class:`DeviceImages` asks for each batch's rows together (:func:`_will_need`)
    before gathering them. Measured (``benchmarks/train_memory_limit.py``, a 281 MB set under a
    memory limit leaving 141 MB for it, two epochs, three runs, medians): 37 GB read from disk
    in 55 s with the default, 0.58 GB in 3.2 s with the advice and the batch requests (13 s with
    the advice alone: a page fault per page, one after another). A set that fits keeps the
    default (the advice made no difference there: 2.2-3.0 s either way).
    """
    advice = getattr(mmap, "MADV_RANDOM", None)
    if (getattr(images, "_cache_file", None) is None or advice is None
            or not images.is_contiguous()):
        return False
    size, room = images.numel() * images.element_size(), available_memory()
    if room is None or size <= room / 2:
        return False
    if not _madvise(images.data_ptr(), size, advice):
        return False
    logger.info("the training set (%.2f GB, mapped from %s) is larger than half the available "
                "memory (%.2f GB): its pages are read one at a time (MADV_RANDOM), not with "
                "the read-ahead around each", size / 2**30, images._cache_file, room / 2**30)
    return True


class DeviceImages:
    """A trainer's images, read as rows on its device: ``images[index]`` lies on ``device``.

    The set is *held* on ``device`` (one copy, indexed there, as trainers always did) when it
    lies there already, when ``device`` is the CPU (no copy: a set memory-mapped from
    ``--cache-dir`` stays mapped), or when it takes at most :data:`HOLD_SHARE` of the
    accelerator's free memory (:func:`device_free_bytes`; an accelerator that cannot be asked
    holds it). Otherwise it is *streamed*: it stays where it is (host memory or a memory map)
    and each read gathers its rows there and moves only them, so a folder larger than the GPU
    trains, at the cost of one gather and one host-to-device copy per batch (a
    ``RuntimeWarning`` says so, on the terminal of ``captum-cf train``). Both ways read the
    same values: training is bit for bit the same. Batches read from a memory-mapped
    ``--cache-dir`` set larger than half the available memory (:func:`available_memory`) are
    read at random (``madvise(MADV_RANDOM)``), not with the kernel's read-ahead around each page,
    and each read asks for its rows together first (``MADV_WILLNEED``: per row for an index
    tensor, one request for a slice).

    Args:
        images (Tensor): (N, C, H, W) ``uint8`` or float images on any device (not copied when
            streamed or when they lie on ``device``).
        device (str or torch.device): where rows are read to.
        hold (bool, optional): ``True`` holds, ``False`` streams; default the rule above.

    Attributes:
        source (Tensor): ``images`` as given. held (bool): whether the set lies on ``device``.
        device (torch.device): the device of every read row. shape, dtype: those of ``images``.

    Example:
        >>> images = DeviceImages(torch.arange(12, dtype=torch.uint8).view(3, 1, 2, 2), "cpu")
        >>> images.held, images[torch.tensor([2, 0])][:, 0, 0, 0].tolist(), len(images)
        (True, [8, 0], 3)
    """

    def __init__(self, images: Tensor, device: str | torch.device, *,
                 hold: bool | None = None) -> None:
        device = torch.empty(0, device=device).device  # "cuda" -> "cuda:0", as tensors report
        if hold is None:
            hold = images.device == device or device.type == "cpu"
            if not hold:
                free = device_free_bytes(device)
                size = images.numel() * images.element_size()
                hold = free is None or size <= HOLD_SHARE * free
                if not hold:
                    warnings.warn(
                        f"the training images ({size / 2**30:.2f} GB) stay on the "
                        f"{images.device} and each batch moves to {device} per step: they would "
                        f"take more than {round(HOLD_SHARE * 100)}% of its {free / 2**30:.2f} GB "
                        "free", RuntimeWarning, stacklevel=2)
        self.source, self.device, self.held = images, device, bool(hold)
        self.shape, self.dtype = images.shape, images.dtype
        self._data = images.to(device) if self.held else images
        # batches read from a mapped set larger than memory: at random, each batch's rows
        # asked for together
        self._random = self._data is images and _advise_random_reads(images)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> Tensor:
        """Rows of the set on :attr:`device`; ``index`` as for a tensor (an index tensor may lie
        on any device: it moves to where the set lies)."""
        if isinstance(index, Tensor):
            index = index.to(self._data.device)
            if self._random and index.dtype == torch.long and index.dim() == 1:
                _will_need(self._data, index.tolist())
        elif self._random and isinstance(index, slice) and index.step in (None, 1):
            # a run of rows (validation's nearest-sample scan): one request for all of them
            start, stop, _ = index.indices(len(self))
            if stop > start:
                _will_need(self._data, [start], stop - start)
        return self._data[index].to(self.device)

    def __repr__(self) -> str:
        where = "held on" if self.held else f"streamed from {self.source.device} to"
        return f"DeviceImages({tuple(self.shape)}, {self.dtype}, {where} {self.device})"


@torch.no_grad()
def channel_mean_std(images: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (unbiased) std of images in [0, 1], shapes (C,), float32.

    Float images are reduced in one call (``images.mean/std(dim=(0, 2, 3))``); ``uint8`` images
    ``chunk`` images at a time in float64 (never a float copy of the whole set).
    """
    if images.dtype != torch.uint8:
        return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64, device=images.device)
    squares = torch.zeros(c, dtype=torch.float64, device=images.device)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    var = (squares - n * mean.square()) / max(n - 1, 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def is_folder(data: str) -> bool:
    """True when ``data`` names an image folder rather than a built-in data set."""
    return data not in BUILTIN_DATA


def folder_class_names(data: str) -> list[str] | None:
    """The class folders of ``--data DIR`` in label order (those of ``DIR/train`` when it has
    ``train`` and ``test``); None for the built-in data sets."""
    from captum_cf.datasets.folder import class_folders

    if not is_folder(data):
        return None
    split = _train_test(data)
    return class_folders(data if split is None else split[0])


def _train_test(root: str) -> tuple[str, str] | None:
    """``(DIR/train, DIR/test)`` when ``DIR`` has both (the split :func:`folder_split` uses),
    else None."""
    train, test = os.path.join(root, "train"), os.path.join(root, "test")
    return (train, test) if os.path.isdir(train) and os.path.isdir(test) else None


def check_data(data: str, image_size: int | None = None, channels: int | None = None,
               workers: int = 0, resize: int | None = None) -> None:
    """Reject a ``data`` that is neither built in nor a folder, a bad ``image_size``, a
    ``channels`` other than 1, 3 (folders only) or None, ``workers`` other than an int >= 0 and
    a ``resize`` other than None or (folders only) an int >= ``image_size``.

    Raises:
        ValueError: naming the argument and what is accepted.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(f"data must be 'digits', 'shapes' or an image folder, got {data!r}")
    data = os.fspath(data)
    if is_folder(data) and not os.path.isdir(data):
        raise ValueError(
            f"data must be 'digits', 'shapes' or an image folder DIR/<class>/<image>, got {data!r}"
        )
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8
    ):
        raise ValueError(f"image_size (--image-size) must be an int >= 8 (or None: the files' "
                         f"own size), got {image_size!r}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels (--channels) must be 1, 3 or None, got {channels!r}")
    if channels is not None and not is_folder(data):
        raise ValueError(f"channels applies to an image folder, not to {data!r}")
    _check_workers(workers)
    if resize is not None and not is_folder(data):
        raise ValueError(f"resize applies to an image folder, not to {data!r}")
    from captum_cf.datasets.folder import check_resize

    check_resize(resize, image_size)


def _check_workers(workers: Any) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")


def folder_images(root: str, image_size: int | None = None, batch_size: int = 64,
                  channels: int | None = None, show_progress: bool = False,
                  dtype: torch.dtype = torch.float32, files: list[int] | None = None,
                  workers: int = 0, shared: bool | None = None,
                  cache_dir: str | os.PathLike | None = None, resize: int | None = None,
                  ) -> tuple[Tensor, Tensor, list[str]]:
    """Every image of a class-per-folder tree: ``(images (N, C, S, S), labels, classes)``.

    ``channels`` (1, 3 or None: decided from the files) and ``resize`` (the shorter side before
    the centre crop) as in :class:`captum_cf.datasets.ImageFolder`; ``show_progress``: a
    progress bar over the images being decoded (rank 0 only under torchrun). ``dtype``:
    ``torch.float32`` (values in [0, 1]) or ``torch.uint8`` (``round(255 * value)``: exact for
    8-bit files read at their own size, within 0.5 / 255 after a resize or from a 16-bit file; a
    quarter of the memory). ``files``: only these positions of the folder's sorted image list,
    in this order. ``workers``: decoding processes of the ``DataLoader`` (0: this process). The
    images are written into one tensor allocated after the first batch, so the peak memory is
    the result's size plus one batch.

    Under ``torchrun`` (a process group of K > 1 processes is initialised) the K processes
    share the work: process r decodes images r, r + K, ..., and the parts are exchanged (gloo,
    a few images at a time), so every process ends with the same tensor as a single process
    would read, in about 1/K of the time. A failure on any process (an unreadable image,
    differing sizes) raises on every process instead of leaving the others waiting. Every
    process of the group must then make the same call (as every trainer does); ``shared=False``
    reads the whole folder in this process alone (``None``, the default: shared exactly when
    such a group is initialised).

    ``cache_dir``: keep the decoded images in a file of this folder (``<folder name>-<key>.npy``)
    and return them **memory-mapped** from it: the images are decoded straight into the file
    (never all in this process's memory) and read from it as training draws batches, so the
    set need not fit in memory (the operating system keeps what fits in its page cache), and
    under torchrun the processes of a machine share one copy instead of holding one each (they
    decode their shares into the same file). The next call (a second ``captum-cf train``
    command on the same folder, a resumed run) maps the file instead of decoding again; under
    torchrun only when every process finds it. The file is written under a temporary name and
    renamed when complete. The key covers the folder's path, every image's name, class, size in
    bytes and modification time, ``image_size``, ``resize``, the channels, ``dtype`` and
    ``files``: a changed, added or removed image gives a new key (old entries are left for the
    user to delete). The returned tensor is a copy-on-write mapping: writing into it changes
    this process's copy, never the file.

    Example:
        >>> x, y, classes = folder_images("photos", image_size=64)  # doctest: +SKIP
    """
    from captum_cf.datasets import ImageFolder

    if dtype not in (torch.float32, torch.uint8):
        raise ValueError(f"dtype must be torch.float32 or torch.uint8, got {dtype}")
    _check_workers(workers)
    ds = ImageFolder(os.fspath(root), image_size=image_size, channels=channels, files=files,
                     resize=resize)
    read = {"batch_size": batch_size, "dtype": dtype, "workers": workers,
            "desc": f"reading {root}" if show_progress else None}
    if shared is None:
        shared = _process_group()
    cached = None if cache_dir is None else _cache_path(cache_dir, ds, dtype)
    if cached is not None:
        images = _read_cache(cached, ds, dtype, shared)
        if images is None:
            images = _decode_to_cache(ds, cached, shared, **read)
        return images, ds.labels, list(ds.classes)
    images = _decode_shared(ds, **read) if shared else _decode(ds, **read)
    return images, ds.labels, list(ds.classes)


_CACHE_VERSION = 1


def _cache_path(cache_dir: str | os.PathLike, ds: Any, dtype: torch.dtype) -> str:
    """``cache_dir/<folder name>-<key>.npy`` of a folder as ``ds`` reads it."""
    import hashlib
    import json

    h = hashlib.sha1()
    h.update(json.dumps({"version": _CACHE_VERSION, "root": os.path.abspath(ds.root),
                         "image_size": ds.image_size, "resize": ds.resize,
                         "channels": ds.channels, "dtype": str(dtype)}).encode())
    for path, label in ds.samples:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, ds.root)}\0{label}\0{st.st_size}\0"
                 f"{st.st_mtime_ns}\n".encode())
    name = os.path.basename(os.path.normpath(ds.root)) or "folder"
    return os.path.join(os.fspath(cache_dir), f"{name}-{h.hexdigest()[:20]}.npy")


def _read_cache(path: str, ds: Any, dtype: torch.dtype, shared: bool) -> Tensor | None:
    """The cached images, or None (no entry: decode). Under a process group every process must
    find the entry (a cache folder local to each machine may hold it on one node only), else
    all decode together: no process decodes while others read."""
    found = os.path.isfile(path)
    if shared:
        import torch.distributed as dist

        everywhere: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everywhere, found, group=_gloo_group())
        found = all(everywhere)
    if not found:
        return None
    images = _mapped(path)
    expected = (len(ds), ds.channels)
    if images.dtype != dtype or images.dim() != 4 or tuple(images.shape[:2]) != expected:
        raise ValueError(f"{path} holds images of shape {tuple(images.shape)} and dtype "
                         f"{images.dtype}, not ({expected[0]}, {expected[1]}, S, S) {dtype}: "
                         "remove the file and run again")
    logger.info("read %d images of %s from the cache %s", len(images), ds.root, path)
    return images


def _mapped(path: str) -> Tensor:
    """The ``.npy`` file as a tensor backed by a copy-on-write memory map of it (its path in
    the tensor's ``_cache_file``, for :func:`take_rows`)."""
    import numpy as np

    images = torch.from_numpy(np.load(path, mmap_mode="c"))
    images._cache_file = path  # type: ignore[attr-defined]
    return images


def take_rows(images: Tensor, index: Tensor) -> Tensor:
    """``images[index]``, without reading the selection into memory when ``images`` is a
    memory-mapped cache (:func:`folder_images` with ``cache_dir``): the rows are then copied,
    1024 at a time, into a file beside the cache (``<cache>-rows-<hash of index>.npy``, written
    under a temporary name and renamed; kept for the next run) and returned mapped from it.
    Other tensors are indexed as usual.

    Example:
        >>> take_rows(torch.arange(5), torch.tensor([3, 1]))
        tensor([3, 1])
    """
    import hashlib

    import numpy as np

    source = getattr(images, "_cache_file", None)
    if source is None:
        return images[index]
    index = index.to(torch.long).cpu()
    key = hashlib.sha1(index.numpy().tobytes()).hexdigest()[:16]
    path = f"{source[: -len('.npy')]}-rows-{key}.npy"
    if not os.path.isfile(path):
        tmp = f"{path}.{os.getpid()}.tmp.npy"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=images.numpy().dtype,
                                            shape=(len(index), *images.shape[1:]))
            for i in range(0, len(index), 1024):
                out[i : i + 1024] = images[index[i : i + 1024]].numpy()
            out.flush()
            del out
            os.replace(tmp, path)  # every process of a group may write it: the same bytes
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return _mapped(path)


def _decode_to_cache(ds: Any, path: str, shared: bool, batch_size: int, dtype: torch.dtype,
                     workers: int, desc: str | None) -> Tensor:
    """Decode ``ds`` straight into the cache file ``path`` and return it memory-mapped.

    The first process of the machine (``LOCAL_RANK`` 0; the only one without a process group)
    creates ``<path>.<host>.<its pid>.tmp.npy`` at its full size; under a process group the
    machine's ``LOCAL_WORLD_SIZE`` processes then decode items ``LOCAL_RANK``, ``LOCAL_RANK +
    LOCAL_WORLD_SIZE``, ... into it, all processes agree that every share succeeded (a failure
    anywhere raises everywhere and the temporary file is removed), and the first renames it."""
    import socket

    import numpy as np

    host, local_rank, local_size, owner = socket.gethostname(), 0, 1, os.getpid()
    if shared:
        import torch.distributed as dist

        # a group started without torchrun: taken as one machine
        local_rank = int(os.environ.get("LOCAL_RANK", str(dist.get_rank())))
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size())))
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, (host, local_rank, os.getpid()), group=_gloo_group())
        owner = next(pid for h, r, pid in everyone if h == host and r == 0)
    # one temporary file per machine and job: the pid of the machine's first process
    tmp = f"{path}.{host}.{owner}.tmp.npy"
    n = len(ds)
    error: BaseException | None = None
    try:
        if local_rank == 0:
            shape = tuple(_decode(Subset(ds, [0]), 1, dtype, 0, None).shape[1:])
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            np_dtype = np.uint8 if dtype == torch.uint8 else np.float32
            created = np.lib.format.open_memmap(tmp, mode="w+", dtype=np_dtype, shape=(n, *shape))
            del created
    except Exception as err:  # noqa: BLE001 (told to every process, then raised)
        error = err
    try:
        _agree(error, shared, "could not start the cache file")
        try:
            mapped = np.load(tmp, mmap_mode="r+")
            rows = list(range(local_rank, n, local_size))
            if rows:
                _decode(Subset(ds, rows), batch_size, dtype, workers, desc,
                        out=torch.from_numpy(mapped), index=torch.tensor(rows))
            mapped.flush()
            del mapped
        except Exception as err:  # noqa: BLE001 (told to every process, then raised)
            error = err
        _agree(error, shared, "could not read its share of the images")
    except BaseException:  # a failure anywhere, Ctrl-C included: no temporary file is left
        if local_rank == 0 and os.path.exists(tmp):
            os.remove(tmp)
        raise
    if local_rank == 0:
        os.replace(tmp, path)
        logger.info("cached %d images in %s", n, path)
    if shared:
        import torch.distributed as dist

        dist.barrier(group=_gloo_group())
    return _mapped(path)


def _agree(error: BaseException | None, shared: bool, what: str) -> None:
    """Raise ``error`` here, and under a process group a ValueError naming the first process
    that failed on every other process (so that none waits for a failed one)."""
    if shared:
        import torch.distributed as dist

        size = dist.get_world_size()
        status: list[Any] = [None] * size
        dist.all_gather_object(status, None if error is None else str(error),
                               group=_gloo_group())
        failed = [(r, msg) for r, msg in enumerate(status) if msg is not None]
        if failed and error is None:
            r, msg = failed[0]
            raise ValueError(f"process {r} of {size} {what}: {msg}")
    if error is not None:
        raise error


def _decode(ds: Any, batch_size: int, dtype: torch.dtype, workers: int,
            desc: str | None, out: Tensor | None = None, index: Tensor | None = None) -> Tensor:
    """Every item of ``ds`` decoded into one preallocated ``dtype`` tensor (N, C, S, S); with
    ``out``, item i is written to row ``index[i]`` of ``out`` (shapes checked), which is
    returned."""
    images: Tensor | None = out
    bar = None
    if desc is not None and os.environ.get("RANK", "0") == "0":
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ds), desc=desc, unit="image", leave=False)
    try:
        done = 0
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers):
            x = batch[0].float()
            if dtype == torch.uint8:
                x = x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
            if images is None:
                images = torch.empty((len(ds), *x.shape[1:]), dtype=dtype)
            if x.shape[1:] != images.shape[1:]:
                raise ValueError(_sizes_differ([tuple(x.shape[1:]), tuple(images.shape[1:])]))
            if index is None:
                images[done : done + len(x)] = x
            else:
                images[index[done : done + len(x)]] = x
            done += len(x)
            if bar is not None:
                bar.update(len(x))
    finally:
        if bar is not None:
            bar.close()
    if images is None:
        raise ValueError("no images to read")
    return images


def _sizes_differ(shapes: list[tuple[int, ...]]) -> str:
    return (f"the images have different sizes {[list(s) for s in sorted(set(shapes))]}: pass "
            "--image-size S (image_size=S) to resize and centre-crop every image to S x S")


#: images each process sends per exchange step of a shared decode
_EXCHANGE_CHUNK = 64
_GLOO_GROUP: list[Any] = []


def _process_group() -> bool:
    """True under an initialised process group of more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gloo_group() -> Any:
    """A gloo group for exchanging CPU tensors (the default group when it is gloo; one new group,
    created once and collectively, next to an nccl default group)."""
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None
    if not _GLOO_GROUP:
        _GLOO_GROUP.append(dist.new_group(backend="gloo"))
    return _GLOO_GROUP[0]


def _decode_shared(ds: Any, batch_size: int, dtype: torch.dtype, workers: int,
                   desc: str | None) -> Tensor:
    """:func:`_decode` shared by the processes of a group: process r decodes items r, r + K, ...;
    every process returns the whole tensor, in item order."""
    import torch.distributed as dist

    if not _process_group():
        raise ValueError("shared=True needs an initialised process group of 2 or more "
                         "processes (torchrun)")
    group = _gloo_group()
    rank, size, n = dist.get_rank(), dist.get_world_size(), len(ds)
    mine = list(range(rank, n, size))
    part: Tensor | None = None
    error: BaseException | None = None
    try:
        if mine:
            part = _decode(Subset(ds, mine), batch_size, dtype, workers, desc)
    except Exception as err:  # noqa: BLE001 (told to every process, then raised)
        error = err
    _agree(error, True, "could not read its share of the images")
    status: list[Any] = [None] * size
    dist.all_gather_object(status, None if part is None else tuple(part.shape[1:]), group=group)
    shapes = sorted({shape for shape in status if shape is not None})
    if len(shapes) > 1:
        raise ValueError(_sizes_differ(shapes))
    shape = shapes[0]
    out = torch.empty((n, *shape), dtype=dtype)
    per = -(-n // size)  # items of the largest share
    for k in range(0, per, _EXCHANGE_CHUNK):
        send = torch.zeros((_EXCHANGE_CHUNK, *shape), dtype=dtype)
        if part is not None and k < len(part):
            rows = part[k : k + _EXCHANGE_CHUNK]
            send[: len(rows)] = rows
        received = [torch.empty_like(send) for _ in range(size)]
        dist.all_gather(received, send, group=group)
        for r, block in enumerate(received):
            # share r holds items r, r + size, ...: its rows k.. are items r + size * (k + j)
            index = torch.arange(r + size * k, n, size)[: _EXCHANGE_CHUNK]
            out[index] = block[: len(index)]
    return out


def folder_split(root: str, image_size: int | None = None, test_fraction: float = 0.2,
                 channels: int | None = None, show_progress: bool = False,
                 dtype: torch.dtype = torch.float32, workers: int = 0,
                 cache_dir: str | os.PathLike | None = None, resize: int | None = None,
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """``(x_train, y_train, x_test, y_test, test_description)`` of an image folder, the images
    of ``dtype`` (``workers`` decoding processes, ``cache_dir``, ``resize``) as in
    :func:`folder_images`.

    ``channels`` as in :class:`captum_cf.datasets.ImageFolder`; ``DIR/test`` is read with the
    channels of ``DIR/train`` (by default 1 when its first images are greyscale, else 3), so
    that both splits fit one model. A held-out share is chosen from the file list before any
    image is decoded, and each split is decoded into its own tensor (no copy of the whole set).

    Raises:
        ValueError: when ``DIR/train`` and ``DIR/test`` name different classes, or a split is
            empty.
    """
    from captum_cf.datasets import ImageFolder

    root = os.fspath(root)
    read = {"show_progress": show_progress, "dtype": dtype, "workers": workers,
            "cache_dir": cache_dir, "resize": resize}
    split = _train_test(root)
    if split is not None:
        train_dir, test_dir = split
        x_tr, y_tr, classes = folder_images(train_dir, image_size, channels=channels, **read)
        x_te, y_te, test_classes = folder_images(test_dir, image_size, channels=x_tr.shape[1],
                                                 **read)
        if classes != test_classes:
            raise ValueError(f"{train_dir} has classes {classes} but {test_dir} has "
                             f"{test_classes}: both need the same class folders")
        return x_tr, y_tr, x_te, y_te, f"{test_dir} ({len(x_te)} images)"
    listing = ImageFolder(root, image_size, channels=channels, resize=resize)  # list and colour
    n = len(listing)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n_test >= n:
        raise ValueError(f"{root} has {n} images: too few to hold out a test share "
                         f"of {test_fraction} (or give {root}/train and {root}/test)")
    test, train = order[:n_test].tolist(), order[n_test:].tolist()
    x_tr, y_tr, _ = folder_images(root, image_size, channels=listing.channels, files=train, **read)
    x_te, y_te, _ = folder_images(root, image_size, channels=listing.channels, files=test, **read)
    desc = f"{root} held-out share {test_fraction} (seed 0, {n_test} images)"
    return x_tr, y_tr, x_te, y_te, desc


def data_name(data: str) -> str:
    """A short name for files and zoo names: the built-in name or the folder's base name."""
    return data if not is_folder(data) else os.path.basename(os.path.normpath(data)) or "data"
