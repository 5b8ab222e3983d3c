"""Rendering of an :class:`~captum_cf.audit.AuditResult`: text table, CSV, JSON, HTML, figures."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import shutil
import tempfile
import warnings
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from captum_cf.audit.result import AuditResult

__all__ = ["text_table", "write_report", "FILES"]

#: the files every report holds (figures ``curves.png`` and ``example_<i>.png`` come beside them)
FILES = ("results.csv", "results.json", "report.html", "counterfactuals.png")

#: marks a best cell whose baseline is the column's own removal (it is favoured by construction)
OWN = "°"


def _cell_text(result: AuditResult, metric: str, cell_index: int) -> str:
    mean, lo, hi, _ = result.cells[cell_index].stats(metric)
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" if math.isnan(lo) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _header(result: AuditResult, metric: str) -> str:
    from captum_cf.audit.result import metric_spec

    spec = metric_spec(metric)
    return f"{spec.label} {'↑' if spec.higher_is_better else '↓'}"


#: the mark of a column's best mean (not a test; the heat map's ★ is the verdict's)
BEST_MEAN = "^"


def _mark(result: AuditResult, best: dict, metric: str, cell: Any) -> str:
    """``" ^"`` for a cell with its column's best mean (ties share), ``" ^°"`` when its baseline
    is the removal."""
    from captum_cf.audit.result import metric_spec

    if (cell.method, cell.baseline) not in best.get(metric, []):
        return ""
    return f" {BEST_MEAN}" + (OWN if metric_spec(metric).removal == cell.baseline else "")


def _text_metrics(result: AuditResult) -> list[str]:
    """The text table's columns: SRG per removal and the removal-free metrics."""
    return [m for m in result.metrics if not m.startswith(("morf_", "lerf_"))]


def text_table(result: AuditResult) -> str:
    """Plain-text table, one row per cell: SRG per removal and the other metrics, mean [95 % CI];
    ``^`` marks the best mean of each column (ties share it; a mark of the means, not a test),
    ``°`` such a cell whose baseline is the column's own removal; then R-OMS per removal and the
    verdict in sentences. Every column (MoRF and LeRF per removal too) is in ``results.csv`` and
    the HTML report."""
    best = result.best()
    metrics = _text_metrics(result)
    head = ["method", "baseline"] + [_header(result, m) for m in metrics] + ["explain s/img"]
    rows = []
    for i, c in enumerate(result.cells):
        marks = [_cell_text(result, m, i) + _mark(result, best, m, c) for m in metrics]
        tail = [f"error: {c.error}"] if c.error else [f"{c.seconds_per_image:.3f}"]
        if c.no_signal:
            tail[0] += " (no signal)"
        rows.append([c.method, c.baseline] + marks + tail)
    widths = [max(len(r[j]) for r in [head] + rows) for j in range(len(head))]
    lines = ["  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip() for r in [head] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{BEST_MEAN} best mean of the column (ties share it; not a test: the verdict "
                 f"below says what is significant); {OWN} the baseline is the column's own "
                 "removal")
    roms = result.r_oms()
    if roms:
        reference = result.config.get("roms_reference")
        lines.append(f"R-OMS against {reference} (1 = the removal keeps the model where the "
                     f"reference does): " + ", ".join(
                         f"{r} {v[0]:.3f}" for r, v in roms.items() if r != reference))
    lines += _verdict_lines(result.verdict())
    return "\n".join(lines)


def _too_few(verdicts: dict) -> str | None:
    """One sentence when no metric of any method has enough images for a test, else None."""
    metrics = [mv for v in verdicts.values() for mv in v.metrics.values() if mv.needed]
    if not metrics or not all(mv.too_few for mv in metrics):
        return None
    n = max(mv.n for mv in metrics)
    needed = max(mv.needed for mv in metrics)
    return (f"Too few images for a verdict: with n = {n} not even a baseline that is better on "
            f"every image would be significant (Wilcoxon signed-rank, Holm-corrected: n >= "
            f"{needed} needed); the tables show means and intervals only. Audit more images "
            f"(--n).")


def _verdict_lines(verdicts: dict) -> list[str]:
    """The verdict's sentences, or the one "too few images" sentence when it covers them all."""
    few = _too_few(verdicts)
    if few is None:
        return [line for v in verdicts.values() for line in v.sentences]
    # a method's sentences: one per metric, then one per baseline left out for no signal
    return [few] + [line for v in verdicts.values() for line in v.sentences[len(v.metrics):]]


def write_report(result: AuditResult, out: str) -> list[str]:
    """Write the report files into ``out``, replacing an existing report atomically.

    The files are built in a temporary folder ``.audit-tmp-<pid>-*`` beside ``out``, which then
    takes the place of ``out`` in one rename (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two
    renames, between which ``out`` is briefly absent): a reader sees the old report or the new
    one, never a mix. Temporary folders of a killed run are removed by the next run
    (:func:`clean_stale`).

    Raises:
        NotADirectoryError, FileExistsError: ``out`` is not a folder, or holds more than an
            earlier report (:func:`check_out`, before anything is done).
    """
    out = check_out(out)
    if os.path.islink(out):  # a link to a report folder: replace the folder, keep the link
        out = check_out(os.path.realpath(out))
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    clean_stale(parent)
    tmp = tempfile.mkdtemp(prefix=f"{_TMP}{os.getpid()}-", dir=parent)
    try:
        _write_all(result, tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it private
        if not os.path.exists(out):
            os.replace(tmp, out)  # one atomic step: out appears complete
        else:
            _swap(tmp, out)  # tmp now holds the old report
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return [os.path.join(out, f) for f in FILES] + [
        os.path.join(out, f) for f in sorted(os.listdir(out))
        if f.endswith(".png") and f not in FILES
    ]


#: prefix of the temporary folders beside a report (followed by the writer's process id)
_TMP = ".audit-tmp-"


#: files a file manager leaves in a folder it showed (macOS Finder, Windows Explorer)
_SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def check_out(out: str) -> str:
    """``out`` as an absolute path, checked before any work: the report replaces the whole folder.

    Raises:
        NotADirectoryError: ``out``, or the nearest of its parents that exists, is not a folder.
        FileExistsError: ``out`` is a folder holding anything but an earlier report's files
            (``results.csv``, ``results.json``, ``report.html``, ``*.png``; a file manager's
            ``.DS_Store``, ``Thumbs.db`` or ``desktop.ini`` aside): replacing it would
            delete them (a data folder, the working directory or one of its parents, notes).
    """
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    parent = os.path.dirname(out)
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"--out {out}: {parent} is a file, not a folder")
    if os.path.isdir(out):
        foreign = sorted(
            name for name in os.listdir(out)
            if name not in _SYSTEM_FILES
            and (not (name in FILES or name.endswith(".png"))
                 or not os.path.isfile(os.path.join(out, name)))
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                               if len(foreign) > 3 else "")
            raise FileExistsError(
                f"{out} (--out) holds files that are not an audit report's ({shown}); the report "
                f"replaces the whole folder, which would delete them: name a new or empty "
                f"folder, or an earlier report's"
            )
    return out


def clean_stale(parent: str) -> list[str]:
    """Remove ``.audit-tmp-<pid>-*`` folders in ``parent`` whose process is gone."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if not name.startswith(_TMP) or not os.path.isdir(path):
            continue
        pid_text = name[len(_TMP) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _alive(int(pid_text)):
            continue  # another audit is writing its report right now
        if os.path.islink(path):  # (a link an earlier version swapped in): the link only
            os.unlink(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _swap(new: str, out: str) -> None:
    """Exchange the folders ``new`` and ``out`` (atomically where the OS allows it)."""
    if _rename_exchange(new, out):
        return
    old = tempfile.mkdtemp(prefix=f"{_TMP}{os.getpid()}-old-", dir=os.path.dirname(out))
    os.rmdir(old)
    os.rename(out, old)
    os.rename(new, out)
    os.rename(old, new)  # so that the caller removes the old report


def _rename_exchange(a: str, b: str) -> bool:
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(result: AuditResult, folder: str) -> None:
    rows = result.rows()
    with open(os.path.join(folder, "results.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method", "baseline"])
        writer.writeheader()
        writer.writerows([{k: _csv_value(v) for k, v in r.items()} for r in rows])
    with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as f:
        json.dump(_json(result), f, indent=2, allow_nan=False)
    pngs = {"counterfactuals.png": _references_figure(result)}
    if any(c.curves is not None for c in result.cells):
        pngs["curves.png"] = _curves_figure(result)
    for i in range(result.examples.shape[0]):
        pngs[f"example_{i}.png"] = _example_figure(result, i)
    for name, data in pngs.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    with open(os.path.join(folder, "report.html"), "w", encoding="utf-8") as f:
        f.write(_html(result, list(pngs)))


def _csv_value(v: Any) -> Any:
    return "" if isinstance(v, float) and math.isnan(v) else v


def _num(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


def _verdict_json(result: AuditResult) -> dict[str, Any]:
    out = {}
    for method, mv in result.verdict().items():
        out[method] = {
            "sentences": mv.sentences,
            "excluded_no_signal": mv.excluded,
            "metrics": {
                m: {
                    "best": v.best,
                    "top": v.top,
                    "significant": v.significant,
                    "n": v.n,
                    "means": {b: _num(x) for b, x in v.means.items()},
                    "own_removal": v.own_removal,
                    "caveat": v.caveat,
                    "comparisons": [
                        {
                            "best": c.best, "other": c.other, "n": c.n,
                            "statistic": _num(float(c.statistic)),
                            "p_value": _num(float(c.p_value)), "p_holm": _num(float(c.p_holm)),
                            "rank_biserial": _num(float(c.effect)),
                            "significant": bool(c.significant),
                        }
                        for c in v.comparisons
                    ],
                }
                for m, v in mv.metrics.items()
            },
        }
    return out


def _json(result: AuditResult) -> dict[str, Any]:
    from captum_cf.audit.result import metric_spec

    ids = {im["index"]: im["id"] for im in result.images}
    cells = []
    for c in result.cells:
        metrics = {}
        for m in result.metrics + ["no_signal"]:
            mean, lo, hi, n = c.stats(m)
            values = [_num(float(v)) for v in c.values[m].tolist()] if m in c.values else []
            metrics[m] = {
                "mean": _num(mean),
                "ci95": [_num(lo), _num(hi)],
                "n": n,
                "values": values,
                "ids": [ids[i] for i in c.index.get(m, [])] if ids else [],
            }
        cells.append(
            {
                "method": c.method,
                "baseline": c.baseline,
                "metrics": metrics,
                "no_signal": c.no_signal,
                "explain_seconds": c.seconds,
                "explain_seconds_per_image": _num(c.seconds_per_image),
                "error": c.error,
            }
        )
    consistency = {
        method: {
            kind: {"pairs": {k: _num(t) for k, t in v["pairs"].items()},
                   "mean_tau": _num(v["mean_tau"])}
            for kind, v in kinds.items()
        }
        for method, kinds in result.consistency().items()
    }
    return {
        "captum_cf": _version(),
        "command": result.command,
        "config": result.config,
        "metrics": {
            m: {
                "label": metric_spec(m).label,
                "higher_is_better": metric_spec(m).higher_is_better,
                "description": metric_spec(m).description,
                "removal": metric_spec(m).removal,
            }
            for m in result.metrics
        },
        "cells": cells,
        "best": {m: [{"method": a, "baseline": b} for a, b in cs]
                 for m, cs in result.best().items()},
        "verdict": _verdict_json(result),
        "consistency": consistency,
        "r_oms": {
            r: {"mean": _num(v[0]), "ci95": [_num(v[1]), _num(v[2])], "n": v[3],
                "values": [_num(float(x)) for x in result.roms[r].tolist()],
                "reference": result.config.get("roms_reference")}
            for r, v in result.r_oms().items()
        },
        "images": [
            {"id": im["id"], "label": im["label"], "target": im["target"]} for im in result.images
        ],
        "seconds": round(result.seconds, 2),
    }


def _version() -> str:
    from captum_cf import __version__

    return __version__


def _png(fig: Any, tight: bool = True) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a file name in a script the font lacks (CJK): drawn as
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # boxes, the
        fig.savefig(buf, format="png", dpi=80,  # HTML names it in full; not a terminal line
                    bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _show_image(ax: Any, img: Tensor, alpha: float = 1.0) -> None:
    img = img.float().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, alpha=alpha)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy(), alpha=alpha)
    ax.set_xticks([])
    ax.set_yticks([])


def _figure(rows: int, cols: int, size: float = 1.3, **kw: Any) -> tuple[Any, Any]:
    """A figure outside pyplot (``matplotlib.figure.Figure``, drawn by Agg when saved): the
    report neither changes the caller's backend (a notebook's inline plots kept appearing
    blank after ``result.write``) nor leaves figures open in pyplot's list."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * cols + 1.2, size * rows + 0.4))
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _empty_figure() -> bytes:
    fig, axes = _figure(1, 1)
    axes[0, 0].axis("off")
    return _png(fig)


def _rgb(img: Tensor) -> Any:
    """(C, H, W) in [0, 1] -> (H, W, 3) numpy."""
    img = img.detach().float().clamp(0, 1).cpu()
    if img.shape[0] != 3:
        img = img[:1].expand(3, -1, -1)
    return img.permute(1, 2, 0).numpy()


def _mosaic(tiles: list[list[Any]], rows: list[str], cols: list[str], title: str,
            inches: float) -> bytes:
    """A grid of (H, W, 3) tiles (None: blank) drawn as one image on one axes (fast), labelled."""
    import numpy as np

    h, w = next(t for row in tiles for t in row if t is not None).shape[:2]
    pad = max(1, h // 16)
    grid = np.ones((len(rows) * (h + pad) - pad, len(cols) * (w + pad) - pad, 3))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile is not None:
                grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = tile
    fig, axes = _figure(1, 1)
    fig.set_size_inches(inches * len(cols) + 1.6, inches * len(rows) + 0.8)
    ax = axes[0, 0]
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([c * (w + pad) + w / 2 for c in range(len(cols))], cols, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(rows))], rows, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, pad=18)
    return _png(fig)


def _references_figure(result: AuditResult) -> bytes:
    """Rows: example images; columns: the input and each baseline's counterfactual (2.2 in)."""
    names = list(result.references)
    if result.examples.shape[0] == 0:
        return _empty_figure()
    tiles = [
        [_rgb(img)] + [_rgb(result.references[b][i]) for b in names]
        for i, img in enumerate(result.examples)
    ]
    rows = [f"image {result.images[i]['id']}" if i < len(result.images) else str(i)
            for i in range(len(tiles))]
    return _mosaic(tiles, rows, ["input"] + names, "", 2.2)


def _class_text(result: AuditResult, c: Any) -> str:
    """A class index with its name when the audit knows the names (an image folder's)."""
    names = result.config.get("class_names")
    if isinstance(c, int) and isinstance(names, list) and 0 <= c < len(names):
        return f"{c} ({names[c]})"
    return str(c)


def _example_title(result: AuditResult, i: int) -> str:
    im = result.images[i] if i < len(result.images) else {}
    label = im.get("label")
    label_text = "unknown" if label is None else _class_text(result, label)
    return (f"image {im.get('id', i)}: true label {label_text}, "
            f"explained class {_class_text(result, im.get('target', '?'))}")


def _example_figure(result: AuditResult, i: int) -> bytes:
    """Methods x baselines grid of example ``i``'s maps as overlays on the input (red +, blue -).
    """
    methods = list(dict.fromkeys(k[0] for k in result.example_maps))
    baselines = list(dict.fromkeys(k[1] for k in result.example_maps))
    if not methods:
        return _empty_figure()
    base = _rgb(result.examples[i])
    tiles = []
    for m in methods:
        row = []
        for b in baselines:
            amap = result.example_maps.get((m, b))
            if amap is None:
                row.append(None)
                continue
            over = _overlay(amap[i].float())
            alpha = over[..., 3:]
            row.append(base * (1 - alpha) + over[..., :3] * alpha)
        tiles.append(row)
    return _mosaic(tiles, methods, baselines, _example_title(result, i), 1.6)


def _overlay(amap: Tensor) -> Any:
    """(H, W) map -> RGBA: red positive, blue negative, opacity growing with |map| (the input
    shows through where the map is near 0)."""
    import numpy as np

    lim = float(amap.abs().max()) or 1.0
    a = (amap / lim).clamp(-1, 1).numpy()
    rgba = np.zeros((*a.shape, 4))
    rgba[..., 0] = a > 0
    rgba[..., 2] = a < 0
    rgba[..., 3] = 0.85 * np.abs(a)
    return rgba


def _curves_figure(result: AuditResult) -> bytes:
    """One panel per cell: MoRF (solid) and LeRF (dashed) mean curves per removal, 95 % band."""
    cells = [c for c in result.cells if c.curves is not None]
    removals = result.removals
    cols = min(4, len(cells))
    rows = math.ceil(len(cells) / cols)
    fig, axes = _figure(rows, cols, size=2.6)  # not shared axes: their limit sync is quadratic
    height = fig.get_size_inches()[1]
    # the layout is fixed here (room for the legend on top), so the PNG is saved without
    # ``bbox_inches="tight"``, whose extra draw of the 40-panel figure costs about a second
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.75 / height, bottom=0.5 / height,
                        hspace=0.25, wspace=0.08)
    fractions = result.config.get("fractions")
    colours = ["k", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:orange", "tab:brown"]
    for p, c in enumerate(cells):
        ax = axes[p // cols, p % cols]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_autoscale_on(False)
        if p % cols:
            ax.set_yticklabels([])
        if p // cols < rows - 1 and p + cols < len(cells):
            ax.set_xticklabels([])
        for r, name in enumerate(removals):
            for order in (0, 1):
                got = c.curve(2 * r + order)
                if got is None:
                    continue
                mean, lo, hi = (t.numpy() for t in got)
                xs = (fractions if fractions and len(fractions) == len(mean)
                      else [i / max(len(mean) - 1, 1) for i in range(len(mean))])
                col = colours[r % len(colours)]
                ax.plot(xs, mean, color=col, ls="-" if order == 0 else "--", lw=1,
                        label=f"{name} {'MoRF' if order == 0 else 'LeRF'}")
                ax.fill_between(xs, lo, hi, color=col, alpha=0.15, lw=0)
        ax.set_title(f"{c.method} / {c.baseline}", fontsize=8)
        ax.tick_params(labelsize=7)
    for q in range(len(cells), rows * cols):
        axes[q // cols, q % cols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center",
               bbox_to_anchor=(0.5, 1 - 0.05 / height), ncol=min(4, len(labels) or 1))
    fig.supxlabel("fraction of pixels removed", fontsize=8, y=0.1 / height)
    fig.supylabel("softmax of the explained class", fontsize=8, x=0.01)
    return _png(fig, tight=False)


_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1240px}
.box{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}
td.l,th.l{text-align:left}td.best{background:#d8f0d8;font-weight:bold}
td.nosignal{color:#999;text-decoration:line-through}
.ci{color:#555;font-size:80%}code{background:#f4f4f4}
.heats{display:flex;flex-wrap:wrap;gap:1.2em}.heat td{min-width:4.5em}
img{max-width:100%}figure{margin:.6em 0}figcaption{font-size:90%;color:#333}
#verdict li{margin:.25em 0}.meta{color:#444;font-size:90%}"""


def _rank_colour(rank: int, count: int) -> str:
    """Green (best) to red (worst) by rank among the baselines of a method."""
    if count <= 1:
        return "#e8f4e8"
    t = rank / (count - 1)
    red, green = int(120 + 135 * t), int(220 - 110 * t)
    return f"rgb({red},{green},130)"


def _heat_maps(result: AuditResult, verdicts: dict) -> str:
    """One methods x baselines table of SRG per removal; colour = rank within the method."""
    esc = html.escape
    baselines = list(dict.fromkeys(c.baseline for c in result.cells if c.baseline != "-"))
    methods = list(dict.fromkeys(c.method for c in result.cells if c.baseline != "-"))
    by_key = {(c.method, c.baseline): c for c in result.cells}
    parts = []
    for r in result.removals:
        m = f"srg_{r}"
        rows = []
        for method in methods:
            cells = [by_key[(method, b)] for b in baselines if (method, b) in by_key]
            scored = sorted((c for c in cells if not c.no_signal
                             and not math.isnan(c.stats(m)[0])),
                            key=lambda c: -c.stats(m)[0])
            ranks = {}
            for c in scored:  # ties share a rank
                ranks[c.baseline] = next(i for i, d in enumerate(scored)
                                         if abs(d.stats(m)[0] - c.stats(m)[0]) <= 1e-9)
            mv = verdicts.get(method)
            # a star only where the verdict has support: "no significant difference" stars none
            best = (mv.metrics[m].best if mv is not None and m in mv.metrics
                    and mv.metrics[m].significant else [])
            tds = []
            for b in baselines:
                c = by_key.get((method, b))
                if c is None:
                    tds.append("<td></td>")
                    continue
                mean, lo, hi, n = c.stats(m)
                attrs = f'class=heat data-method="{esc(method)}" data-baseline="{esc(b)}" ' \
                        f'data-removal="{esc(r)}"'
                if c.no_signal or b not in ranks:
                    tds.append(f'<td {attrs} title="no signal: left out">no signal</td>')
                    continue
                star = " ★" if b in best else ""
                star += OWN if star and b == r else ""
                title = (f"{method} / {b}, SRG under {r} removal: {mean:.3f} "
                         f"[{lo:.3f}, {hi:.3f}], n = {n}, rank {ranks[b] + 1} of {len(scored)}")
                tds.append(
                    f'<td {attrs} style="background:{_rank_colour(ranks[b], len(scored))}" '
                    f'title="{esc(title)}">{mean:.3f}{star}<br><span class=ci>'
                    f"[{lo:.3f}, {hi:.3f}]</span></td>"
                )
            rows.append(f"<tr><th class=l>{esc(method)}</th>{''.join(tds)}</tr>")
        head = "".join(f"<th>{esc(b)}</th>" for b in baselines)
        parts.append(
            f'<div class=box><table class=heatmap data-removal="{esc(r)}"><caption>SRG ↑, '
            f"{esc(r)} removal</caption><tr><th></th>{head}</tr>{''.join(rows)}</table></div>"
        )
    return f"<div class=heats>{''.join(parts)}</div>"


def _full_table(result: AuditResult) -> str:
    esc = html.escape
    best = result.best()
    head = "".join(f"<th>{esc(_header(result, m))}</th>" for m in result.metrics)
    body = []
    for c in result.cells:
        tds = []
        for m in result.metrics:
            mark = _mark(result, best, m, c).replace(f" {BEST_MEAN}", " ▲")
            mean, lo, hi, _ = c.stats(m)
            text = "–" if math.isnan(mean) else f"{mean:.3f}"
            if not math.isnan(lo):
                text += f' <span class="ci">[{lo:.3f}, {hi:.3f}]</span>'
            cls = "best" if mark else ("nosignal" if c.no_signal else "")
            tds.append(f"<td class='{cls}'>{text}{mark}</td>")
        if c.error:
            extra = f"<td class=l>error: {esc(c.error)}</td>"
        else:
            extra = f"<td>{c.seconds_per_image:.3f}{' (no signal)' if c.no_signal else ''}</td>"
        body.append(
            f'<tr class=cell data-method="{esc(c.method)}" data-baseline="{esc(c.baseline)}">'
            f"<td class=l>{esc(c.method)}</td><td class=l>{esc(c.baseline)}</td>"
            f"{''.join(tds)}{extra}</tr>"
        )
    return (
        f'<div class=box><table id="results"><tr><th class=l>method</th><th class=l>baseline</th>'
        f"{head}<th>explain s per image</th></tr>{''.join(body)}</table></div>"
    )


def _consistency_table(result: AuditResult) -> str:
    esc = html.escape
    cons = result.consistency()
    if not cons:
        return "<p>One removal (or one baseline): no consistency to measure.</p>"
    pairs = list(next(iter(next(iter(cons.values())).values()))["pairs"])
    head = "".join(f"<th>{esc(p)}</th>" for p in pairs)
    rows = []
    for method, kinds in cons.items():
        for kind, v in kinds.items():
            taus = [v["pairs"].get(p, math.nan) for p in pairs]
            tds = "".join(f"<td>{_tau(t)}</td>" for t in taus)
            mean = _tau(v["mean_tau"])
            label = {"srg": "SRG", "morf": "MoRF", "lerf": "LeRF"}.get(kind, kind)
            rows.append(f"<tr><td class=l>{esc(method)}</td><td class=l>{label}</td>"
                        f"{tds}<td><b>{mean}</b></td></tr>")
    return (f'<div class=box><table id="consistency"><tr><th class=l>method</th>'
            f"<th class=l>metric</th>{head}<th>mean τ</th></tr>{''.join(rows)}</table></div>")


def _tau(t: float) -> str:
    """A Kendall tau for the table: "–" when undefined, no "-0.00"."""
    return "–" if math.isnan(t) else f"{t:.2f}".replace("-0.00", "0.00")


def _roms_table(result: AuditResult) -> str:
    roms = result.r_oms()
    if not roms:
        return "<p>R-OMS not measured (no reference occlusion available).</p>"
    reference = result.config.get("roms_reference")
    rows = "".join(
        f"<tr><td class=l>{html.escape(r)}</td><td>"
        + ("1 (the reference itself: not a measurement)" if r == reference else
           f"{v[0]:.3f} <span class=ci>[{v[1]:.3f}, {v[2]:.3f}]</span>")
        + f"</td><td>{v[3]}</td></tr>" for r, v in roms.items()
    )
    ref = html.escape(str(reference))
    return (f"<p>R-OMS of each removal against {ref} (1 = the model's output under the removal "
            f"is the one under the reference; lower = the removal leaves the model's scope; "
            f"{ref} itself scores 1 by definition).</p>"
            f'<table id="roms"><tr><th class=l>removal</th><th>R-OMS ↑</th><th>n</th></tr>'
            f"{rows}</table>")


def _html(result: AuditResult, pngs: list[str]) -> str:
    import datetime

    esc = html.escape
    verdicts = result.verdict()
    items = [f"<li>{esc(line)}</li>" for line in _verdict_lines(verdicts)] if _too_few(
        verdicts) is not None else [
        f"<li><b>{esc(method)}</b><ul>{''.join(f'<li>{esc(s)}</li>' for s in v.sentences)}</ul>"
        "</li>" for method, v in verdicts.items()
    ]
    items += [f"<li>{esc(c.method)}: the maps carry no signal (constant); left out.</li>"
              for c in result.cells if c.baseline == "-" and c.no_signal]
    verdict = "".join(items) or "<li>No method with baselines to compare.</li>"
    cfg = "".join(
        f"<tr><td class=l>{esc(str(k))}</td><td class=l>{esc(str(v))}</td></tr>"
        for k, v in result.config.items()
        if k not in ("cells", "metrics")  # the table above shows them
    )
    examples = "".join(
        f'<figure><img alt="example {i}" src="example_{i}.png">'
        f"<figcaption>{esc(_example_title(result, i))}</figcaption></figure>"
        for i in range(result.examples.shape[0])
    )
    curves = ('<img alt="curves" src="curves.png">' if "curves.png" in pngs
              else "<p>No curves recorded.</p>")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    removals = ", ".join(result.removals)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>captum-cf audit</title><style>{_CSS}</style></head><body>
<h1>captum-cf audit</h1>
<p class=meta>captum_cf {esc(_version())} · {now} · <code>{esc(result.command)}</code><br>
model {esc(str(result.config.get("model")))} · data {esc(str(result.config.get("data")))} ·
{result.config.get("n")} images · {result.seconds:.1f} s</p>
<h2>Verdict</h2>
<p>Per method: the baselines with the best symmetric relevance gain (SRG, the area between the
LeRF and MoRF curves) under each removal ({esc(removals)}), compared image by image (Wilcoxon
signed-rank, Holm-corrected, rank-biserial effect size, n images).</p>
<ul id="verdict">{verdict}</ul>
<h2>SRG heat map</h2>
<p>Colour = rank of the baseline within its method (green best); value and 95&nbsp;% interval in
the cell, details on hover. ★ the leader by mean and the baselines the test could not tell apart
from it (Wilcoxon, Holm-corrected: not shown to be as good, only not shown to be worse; ties share
it; none where the verdict finds no significant difference); {OWN} the baseline is the removal
itself.</p>
{_heat_maps(result, verdicts)}
<h2>Removals</h2>
{_roms_table(result)}
<h2>All metrics</h2>
<p>Mean over images with the 95&nbsp;% Student-t interval of the mean (Wilson for the pointing
game), clipped to each metric's range; ▲ the best mean of each column (ties share it; cells without
signal are not candidates; a mark of the means, not a test: the verdict and the heat map's ★ say
what is significant), {OWN} such a cell whose baseline is the column's own removal: that column
favours it by construction. MoRF ↓: area under the class score as the most relevant pixels are
removed first; LeRF ↑: least relevant first; SRG ↑ = LeRF − MoRF.</p>
{_full_table(result)}
<h2>MoRF and LeRF curves</h2>
<p>Mean over images with a 95&nbsp;% band; solid MoRF, dashed LeRF, one colour per removal.</p>
{curves}
<h2>Ranking consistency across removals</h2>
<p>Kendall's τ between the baselines' rankings under two removals (1 = same order,
−1 = reversed). MoRF and LeRF rankings that flip while SRG stays consistent are the
removal's bias, not the baselines'.</p>
{_consistency_table(result)}
<h2>Example maps</h2>
<p>Each map over its input (red: positive attribution, blue: negative; each map scaled to its
own maximum).</p>
{examples}
<h2>Counterfactuals</h2>
<p>What each baseline puts in place of the input (its <code>reference</code>).</p>
<img alt="counterfactuals" src="counterfactuals.png">
<h2>Configuration</h2><div class=box><table>{cfg}</table></div>
</body></html>
"""
