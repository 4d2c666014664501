"""Interactive widgets for the lessons (ipywidgets), responsive because they only show
precomputed results: moving a slider never trains or measures anything.

Every view a widget can show is built up front, and the controls switch between them in the
browser (`jslink`), so a widget needs no kernel: it also works on the website, drawn from the
state a headless run (`effcourse run`, nbval) saves in the notebook.
"""
from __future__ import annotations

import html
import numbers
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    import ipywidgets
    import pandas as pd


def _format(value) -> str:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value == value else "n/a"
    return str(value)


def _formatted(formatters: Mapping[str, Callable], column, value) -> str:
    return str(formatters.get(column, _format)(value))


def row_html(table: "pd.DataFrame", index: int, formatters: Mapping[str, Callable] | None = None) -> str:
    """One row of `table` as a two-column HTML table (column name, formatted value)."""
    formatters = formatters or {}
    row = table.iloc[index]
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(column))}</th>"
        f"<td style='text-align:right'>{html.escape(_formatted(formatters, column, row[column]))}</td></tr>"
        for column in table.columns
    )
    return f"<table>{cells}</table>"


def table_slider(table: "pd.DataFrame", by: str, *, description: str | None = None, start: int = 0,
                 formatters: Mapping[str, Callable] | None = None) -> "ipywidgets.VBox":
    """A slider over the rows of a precomputed table: each position is one value of column `by`
    (e.g. a sparsity level), and the row's other values are shown below it.

    `formatters` maps column names to functions that format their values (default: thousands
    separators, three decimals). Returns the widget; display it as a cell's last expression."""
    import ipywidgets as widgets

    if by not in table.columns:
        raise KeyError(f"No column {by!r} to slide over. Columns: {', '.join(map(str, table.columns))}.")
    if table.empty:
        raise ValueError("The table has no rows to slide over: compute the levels first.")
    if not 0 <= start < len(table):
        raise IndexError(f"start must be a row number in [0, {len(table)}), got {start}")
    formatters = formatters or {}
    labels = [_formatted(formatters, by, value) for value in table[by]]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"Column {by!r} repeats a value as shown ({', '.join(repeated)}); each slider position must "
                         "be distinct: drop the repeated rows, or give the column a formatter with more digits.")
    slider = widgets.SelectionSlider(
        options=list(zip(labels, range(len(table)))), value=start, description=description or str(by),
        continuous_update=True, style={"description_width": "initial"}, layout=widgets.Layout(width="32em"),
    )
    rows = [widgets.HTML(row_html(table, i, formatters)) for i in range(len(table))]
    return widgets.VBox([slider, linked_pages(slider, rows)])


def linked_pages(control: "ipywidgets.Widget", pages: list) -> "ipywidgets.Stack":
    """`pages` in a stack that shows the one at `control`'s `index` (a slider's or buttons'
    position). The link runs in the browser, so it works with no kernel behind the page."""
    import ipywidgets as widgets

    if len(pages) != len(control.options):
        raise ValueError(f"{len(pages)} pages for a control with {len(control.options)} positions")
    stack = widgets.Stack(pages, selected_index=control.index)
    widgets.jslink((control, "index"), (stack, "selected_index"))
    return stack


def quantization_explorer(kernel, sweep: "pd.DataFrame", *, name: str = "kernel",
                          channel_axes: int = 1) -> "ipywidgets.VBox":
    """Pick a bit width and a granularity: see one kernel's weights before and after fake
    quantization (histograms), and the model's accuracy with every kernel quantized that way,
    looked up in a precomputed `quantization.bit_width_sweep` table (its bit widths are the choices).
    `channel_axes` as in `quantization.scales`: 2 for a depthwise kernel.
    The histograms of every choice are drawn up front (a second or two for one kernel)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import display

    from . import quantization

    quantized = quantization.quantized_rows(sweep)
    bit_options = sorted({int(b) for b in quantized["bits"]}, reverse=True)
    granularities = [g for g in quantization.GRANULARITIES if g in set(quantized["granularity"])]
    baseline = sweep.loc[sweep["granularity"] == "float32", "accuracy"]
    kernel = np.asarray(kernel, dtype=np.float32)
    bits_buttons = widgets.ToggleButtons(options=[(str(b), b) for b in bit_options], value=bit_options[0],
                                         description="bits", style={"button_width": "3em"})
    granularity_buttons = widgets.ToggleButtons(options=granularities, value=granularities[0],
                                                description="granularity")

    def view(bits: int, granularity: str) -> "ipywidgets.VBox":
        row = quantized[(quantized["bits"] == bits) & (quantized["granularity"] == granularity)]
        q = quantization.fake_quantize(kernel, bits, granularity, channel_axes)
        accuracy = f"{row['accuracy'].iloc[0]:.2%}" if len(row) else "not in the sweep"
        reference = f" (float32: {baseline.iloc[0]:.2%})" if len(baseline) else ""
        summary = widgets.HTML(
            f"<b>{bits} bits, {granularity}</b>: model accuracy {accuracy}{reference}; "
            f"{html.escape(name)} keeps {len(np.unique(q)):,} distinct values, mean |error| "
            f"{np.mean(np.abs(kernel - q)) / np.mean(np.abs(kernel)):.1%} of the mean |weight|")
        fig, ax = plt.subplots(figsize=(8, 3))
        quantization.draw_histograms(ax, {"float32": kernel, f"{bits} bits, {granularity}": q})
        ax.set_title(f"{name}: weights before and after quantization")
        fig.tight_layout()
        picture = widgets.Output()
        with picture:
            display(fig)
        plt.close(fig)
        return widgets.VBox([summary, picture])

    by_granularity = [linked_pages(bits_buttons, [view(bits, granularity) for bits in bit_options])
                      for granularity in granularities]
    return widgets.VBox([bits_buttons, granularity_buttons, linked_pages(granularity_buttons, by_granularity)])
