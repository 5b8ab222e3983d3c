"""Rendering of an :class:`~captum_cf.audit.AuditResult`: text table, CSV, JSON, HTML, figures."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from captum_cf.audit.result import AuditResult

__all__ = ["text_table", "write_report", "FILES"]

#: the files a report consists of
FILES = ("results.csv", "results.json", "report.html", "maps.png", "counterfactuals.png")


def _cell_text(result: AuditResult, metric: str, cell_index: int) -> str:
    mean, lo, hi, _ = result.cells[cell_index].stats(metric)
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" if math.isnan(lo) else f"{mean:.3f} ± {(hi - lo) / 2:.3f}"


def _header(result: AuditResult, metric: str) -> str:
    from captum_cf.audit.result import METRICS

    spec = METRICS[metric]
    return f"{spec.label} {'↑' if spec.higher_is_better else '↓'}"


def text_table(result: AuditResult) -> str:
    """Plain-text table, one row per cell, mean ± 95 % CI half-width; ``*`` marks the best."""
    best = result.best()
    head = ["method", "baseline"] + [_header(result, m) for m in result.metrics] + ["explain s"]
    rows = []
    for i, c in enumerate(result.cells):
        marks = [
            _cell_text(result, m, i) + (" *" if best.get(m) == (c.method, c.baseline) else "")
            for m in result.metrics
        ]
        tail = [f"error: {c.error}"] if c.error else [f"{c.seconds:.1f}"]
        rows.append([c.method, c.baseline] + marks + tail)
    widths = [max(len(r[j]) for r in [head] + rows) for j in range(len(head))]
    lines = ["  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip() for r in [head] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_report(result: AuditResult, out: str) -> list[str]:
    """Write the report files into ``out``, replacing an existing report atomically.

    The files are built in a temporary folder ``.audit-tmp-<pid>-*`` beside ``out``, which then
    takes the place of ``out`` in one rename (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two
    renames, between which ``out`` is briefly absent): a reader sees the old report or the new
    one, never a mix. Temporary folders of a killed run are removed by the next run
    (:func:`clean_stale`).

    Raises:
        NotADirectoryError: ``out`` exists and is not a folder (checked before anything is done).
    """
    out = check_out(out)
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
    return [os.path.join(out, f) for f in FILES]


#: prefix of the temporary folders beside a report (followed by the writer's process id)
_TMP = ".audit-tmp-"


def check_out(out: str) -> str:
    """``out`` as an absolute path; ``NotADirectoryError`` if it exists and is not a folder."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
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
    pngs = {"maps.png": _maps_figure(result), "counterfactuals.png": _references_figure(result)}
    for name, data in pngs.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    with open(os.path.join(folder, "report.html"), "w", encoding="utf-8") as f:
        f.write(_html(result, pngs))


def _csv_value(v: Any) -> Any:
    return "" if isinstance(v, float) and math.isnan(v) else v


def _num(v: float) -> float | None:
    return None if math.isnan(v) else v


def _json(result: AuditResult) -> dict[str, Any]:
    from captum_cf.audit.result import METRICS

    ids = {im["index"]: im["id"] for im in result.images}
    cells = []
    for c in result.cells:
        metrics = {}
        for m in result.metrics:
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
                "explain_seconds": c.seconds,
                "error": c.error,
            }
        )
    return {
        "config": result.config,
        "metrics": {
            m: {
                "label": METRICS[m].label,
                "higher_is_better": METRICS[m].higher_is_better,
                "description": METRICS[m].description,
            }
            for m in result.metrics
        },
        "cells": cells,
        "best": {m: {"method": mb[0], "baseline": mb[1]} for m, mb in result.best().items()},
        "images": [
            {"id": im["id"], "label": im["label"], "target": im["target"]} for im in result.images
        ],
        "seconds": round(result.seconds, 2),
    }


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _show_image(ax: Any, img: Tensor) -> None:
    img = img.float().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _figure(rows: int, cols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        rows, cols, figsize=(1.3 * cols + 1.2, 1.3 * rows + 0.4), squeeze=False
    )
    return fig, axes


def _empty_figure() -> bytes:
    fig, axes = _figure(1, 1)
    axes[0, 0].axis("off")
    return _png(fig)


def _references_figure(result: AuditResult) -> bytes:
    """Rows: example images; columns: the input and each baseline's counterfactual."""
    names = list(result.references)
    if result.examples.shape[0] == 0:
        return _empty_figure()
    fig, axes = _figure(result.examples.shape[0], 1 + len(names))
    for i, img in enumerate(result.examples):
        _show_image(axes[i, 0], img)
        for j, b in enumerate(names):
            _show_image(axes[i, j + 1], result.references[b][i])
    for j, title in enumerate(["input"] + names):
        axes[0, j].set_title(title, fontsize=8)
    return _png(fig)


def _maps_figure(result: AuditResult) -> bytes:
    """Rows: the inputs, then one row per cell; columns: example images. Red +, blue -."""
    cells = list(result.example_maps)
    e = result.examples.shape[0]
    if e == 0:
        return _empty_figure()
    fig, axes = _figure(1 + max(len(cells), 1), e)
    for i in range(e):
        _show_image(axes[0, i], result.examples[i])
    axes[0, 0].set_ylabel("input", fontsize=7)
    for r, key in enumerate(cells, start=1):
        for i in range(e):
            amap = result.example_maps[key][i].float()
            lim = float(amap.abs().max()) or 1.0
            axes[r, i].imshow(amap.numpy(), cmap="bwr", vmin=-lim, vmax=lim)
            axes[r, i].set_xticks([])
            axes[r, i].set_yticks([])
        axes[r, 0].set_ylabel(
            f"{key[0]}\n{key[1]}", fontsize=7, rotation=0, ha="right", va="center"
        )
    for r in range(len(cells) + 1, axes.shape[0]):
        for ax in axes[r]:
            ax.axis("off")
    return _png(fig)


_CSS = """body{font-family:sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td.l,th.l{text-align:left}td.best{background:#d8f0d8;font-weight:bold}
.ci{color:#666;font-size:85%}code{background:#f4f4f4}"""


def _html(result: AuditResult, pngs: dict[str, bytes]) -> str:
    best = result.best()
    esc = html.escape
    head = "".join(f"<th>{esc(_header(result, m))}</th>" for m in result.metrics)
    body = []
    for c in result.cells:
        tds = []
        for m in result.metrics:
            is_best = best.get(m) == (c.method, c.baseline)
            mean, lo, hi, _ = c.stats(m)
            text = "–" if math.isnan(mean) else f"{mean:.3f}"
            if not math.isnan(lo):
                text += f' <span class="ci">[{lo:.3f}, {hi:.3f}]</span>'
            tds.append(
                f"<td{' class=best' if is_best else ''}>{text}{' ★' if is_best else ''}</td>"
            )
        extra = (
            f"<td class=l>error: {esc(c.error)}</td>" if c.error else f"<td>{c.seconds:.1f}</td>"
        )
        body.append(
            f"<tr><td class=l>{esc(c.method)}</td><td class=l>{esc(c.baseline)}</td>"
            f"{''.join(tds)}{extra}</tr>"
        )
    cfg = "".join(
        f"<tr><td class=l>{esc(str(k))}</td><td class=l>{esc(str(v))}</td></tr>"
        for k, v in result.config.items()
        if k not in ("cells", "metrics")  # the table above shows them
    )
    imgs = {k: base64.b64encode(v).decode("ascii") for k, v in pngs.items()}
    removal = esc(str(result.config.get("removal")))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>captum-cf audit</title><style>{_CSS}</style></head><body>
<h1>captum-cf audit</h1>
<p>Every attribution method explained the same {result.config.get("n")} images with every baseline.
Mean over images with the 95&nbsp;% confidence interval; ★ marks the best cell of each column
(↑ higher is better, ↓ lower is better). Pixels are removed by: {removal};
a cell whose baseline is that same removal has an advantage on that column (compare with
<code>--removal</code>).</p>
<table id="results">
<tr><th class=l>method</th><th class=l>baseline</th>{head}<th>explain s</th></tr>
{"".join(body)}</table>
<h2>Example maps</h2>
<p>Red: positive attribution, blue: negative (each map scaled to its own maximum).</p>
<img alt="maps" src="data:image/png;base64,{imgs["maps.png"]}">
<h2>Counterfactuals</h2>
<p>What each baseline puts in place of the input (its <code>reference</code>).</p>
<img alt="counterfactuals" src="data:image/png;base64,{imgs["counterfactuals.png"]}">
<h2>Configuration</h2><table>{cfg}</table>
</body></html>
"""
