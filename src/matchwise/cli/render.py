"""How the CLI shows things: the consoles, tables of recommendations, metrics and
dataset statistics, and the one way commands open the store."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.table import Table

from matchwise.runtime import Runtime
from matchwise.settings import load_settings

#: The width of output that goes to a file or a pipe: wide enough that no row of a table is
#: wrapped or cut (a reader splits it into lines, not a terminal).
PIPED_WIDTH = 4096


class CliConsole(Console):
    """Rich's console, except that output to a file or a pipe is not wrapped at 80 columns
    (or at the width of a terminal elsewhere in the pipeline): scripts read whole rows.
    ``COLUMNS`` still sets the width when given."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is not None or self.is_terminal or "COLUMNS" in os.environ:
            return size
        return ConsoleDimensions(PIPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = CliConsole()
err_console = CliConsole(stderr=True, soft_wrap=True)  # errors stay one line: paths copy-paste


def open_runtime() -> Runtime:
    """The store named by the settings, migrated: what every command works on."""
    return Runtime.open(load_settings())


def print_recommendations(result: Any) -> None:
    table = Table(
        title=f"for {result.user_id}  (route: {result.route}, model: {result.model_version})"
    )
    table.add_column("#", justify="right")
    table.add_column("candidate")
    table.add_column("score", justify="right")
    table.add_column("why")
    for r in result.recommendations:
        label = r.candidate_id if not r.title else f"{r.title} [dim]({r.candidate_id})[/dim]"
        table.add_row(str(r.rank), label, f"{r.score:.3f}", r.reason)
    if not result.recommendations:
        table.caption = "nothing to recommend: every candidate is filtered out"
    console.print(table)


def print_dataset_stats(manifest: dict[str, Any]) -> None:
    stats = manifest["stats"]
    table = Table(title=f"Dataset Statistics ({manifest['domain']}, {manifest['split']} split)")
    table.add_column("")
    table.add_column("value", justify="right")
    for part, n in stats["rows"].items():
        table.add_row(f"{part} rows", f"{n:,}")
    table.add_row("users (with data / all)", f"{stats['users_with_data']:,} / {stats['users']:,}")
    table.add_row("items (with data / all)", f"{stats['items_with_data']:,} / {stats['items']:,}")
    table.add_row("item coverage", f"{stats['item_coverage']:.1%}")
    table.add_row("density", f"{stats['density']:.4%}")
    table.add_row("positives", f"{stats['positives']:,}")
    console.print(table)
    labels = Table(title="label distribution")
    labels.add_column("label")
    labels.add_column("rows", justify="right")
    for label, n in sorted(stats["labels"].items(), key=lambda kv: -float(kv[0])):
        labels.add_row(label, f"{n:,}")
    console.print(labels)


def print_metrics(title: str, results: dict[str, dict[str, float]]) -> None:
    metrics = ["ndcg@10", "recall@10", "precision@10", "hit@10", "map@10", "f1@10"]
    table = Table(title=f"{title}: test split, full ranking")
    table.add_column("model")
    for m in metrics:
        table.add_column(m, justify="right")
    for name, values in results.items():
        table.add_row(name, *(f"{values.get(m, float('nan')):.4f}" for m in metrics))
    console.print(table)
