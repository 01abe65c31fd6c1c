"""Training reports: a JSON metrics file and a self-contained HTML page with plots."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRIC_ORDER = ("ndcg@10", "recall@10", "precision@10", "hit@10", "map@10", "mrr@10",
                "f1@10", "coverage@10")  # fmt: skip


def _figure_png(draw: Any, width: float = 6.0, height: float = 3.2) -> str:
    """A PNG drawn on a bare Figure: no pyplot, so the process's backend (a notebook's
    inline plots, say) is left as it was."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    ax = fig.subplots()
    draw(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def _learning_curves(history: Sequence[Mapping[str, Any]]) -> str | None:
    if not history:
        return None
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    loss = [h.get("loss") for h in history]
    val = [h.get("val_ndcg@10", h.get("ndcg@10")) for h in history]

    def draw(ax: Any) -> None:
        if any(v is not None for v in loss):
            ax.plot(epochs, loss, marker="o", label="training loss", color="#4c72b0")
            ax.set_ylabel("loss")
        if any(v is not None for v in val):
            twin = ax.twinx()
            twin.plot(epochs, val, marker="s", color="#dd8452", label="validation NDCG@10")
            twin.set_ylabel("validation NDCG@10")
        ax.set_xlabel("epoch")
        ax.set_title("learning curves")

    return _img(_figure_png(draw), "learning curves")


def _metric_bars(results: Mapping[str, Mapping[str, float]], metric: str) -> str | None:
    names = [n for n in results if metric in results[n]]
    if not names:
        return None
    values = [results[n][metric] for n in names]

    def draw(ax: Any) -> None:
        colors = [
            "#55a868" if i == int(np.argmax(values)) else "#8c8c8c" for i in range(len(names))
        ]
        ax.barh(names, values, color=colors)
        ax.set_xlabel(metric)
        ax.set_title(f"{metric} on the test split (full ranking)")

    return _img(_figure_png(draw), f"{metric} by model")


def _label_distribution(labels: Mapping[str, int]) -> str | None:
    if not labels:
        return None
    keys = sorted(labels, key=float)

    def draw(ax: Any) -> None:
        ax.bar(keys, [labels[k] for k in keys], color="#4c72b0")
        ax.set_xlabel("label")
        ax.set_ylabel("rows")
        ax.set_title("label distribution")

    return _img(_figure_png(draw), "label distribution")


def _score_histogram(positive: np.ndarray, other: np.ndarray) -> str | None:
    if len(positive) == 0 or len(other) == 0:
        return None

    def draw(ax: Any) -> None:
        bins = np.histogram_bin_edges(np.concatenate([positive, other]), bins=40)
        ax.hist(other, bins=bins, alpha=0.6, density=True, label="all candidates")
        ax.hist(positive, bins=bins, alpha=0.6, density=True, label="held-out positives")
        ax.set_xlabel("model score")
        ax.set_ylabel("density")
        ax.legend()
        ax.set_title("score distribution")

    return _img(_figure_png(draw), "score histogram")


def _table(results: Mapping[str, Mapping[str, float]], best: str | None) -> str:
    metrics = [m for m in METRIC_ORDER if any(m in r for r in results.values())]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for name, values in results.items():
        cells = "".join(
            f"<td>{values[m]:.4f}</td>" if isinstance(values.get(m), int | float) else "<td></td>"
            for m in metrics
        )
        mark = ' class="best"' if name == best else ""
        rows.append(f"<tr{mark}><th>{html.escape(name)}</th>{cells}</tr>")
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:1rem 0}td,th{padding:.3rem .7rem;border-bottom:1px solid #ddd;
text-align:right}th:first-child{text-align:left}tr.best{background:#eaf6ec;font-weight:600}
.meta{color:#666;font-size:.9rem}img{max-width:100%}
"""


def write_report(
    folder: str | Path,
    name: str,
    payload: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    positive_scores: np.ndarray | None = None,
    other_scores: np.ndarray | None = None,
) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.html`` under ``folder``; returns both paths.

    ``payload`` holds ``model``, ``version``, ``test`` (by model, including baselines),
    ``validation``, ``dataset`` (its manifest) and anything else worth keeping.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str))

    results: Mapping[str, Mapping[str, float]] = payload.get("test", {})
    best = max(results, key=lambda n: results[n].get("ndcg@10", -1)) if results else None
    stats = payload.get("dataset", {}).get("stats", {})
    sections = [
        f"<h1>{html.escape(str(payload.get('model')))} "
        f"<small>{html.escape(str(payload.get('version')))}</small></h1>",
        f"<p class='meta'>dataset {html.escape(str(payload.get('dataset', {}).get('version')))}"
        f" · trained in {payload.get('train_seconds', 0):.1f} s"
        f" · {html.escape(str(payload.get('created_at', '')))}</p>",
        "<h2>Test metrics against baselines (every unseen item ranked)</h2>",
        _table(results, best),
    ]
    for block in (
        _metric_bars(results, "ndcg@10"),
        _learning_curves(history),
        _label_distribution(stats.get("labels", {})),
        _score_histogram(
            np.asarray(positive_scores if positive_scores is not None else []),
            np.asarray(other_scores if other_scores is not None else []),
        ),
    ):
        if block:
            sections.append(block)
    if payload.get("validation"):
        sections.append("<h2>Validation</h2>")
        sections.append(_table({str(payload.get("model")): payload["validation"]}, None))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>matchwise report: {html.escape(name)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )
    html_path = out / f"{name}.html"
    html_path.write_text(page)
    return json_path, html_path
