"""The lessons' widgets: they build, they show the view their controls select, they say what
is wrong. The controls switch views through links that run in the browser (`jslink`); here
`follow_links` does what the browser would."""
import ipywidgets
from ipywidgets.widgets.widget_link import Link
import pandas as pd
import pytest
from ipywidgets.widgets.widget import _instances

from effcourse import widgets


def follow_links():
    """Copy each browser-side link's source value to its target, as the page would."""
    for link in [w for w in list(_instances.values()) if isinstance(w, Link)]:
        (source, source_trait), (target, target_trait) = link.source, link.target
        setattr(target, target_trait, getattr(source, source_trait))


def shown(stack: ipywidgets.Stack):
    """The page a stack shows."""
    return stack.children[stack.selected_index]


@pytest.fixture
def levels():
    return pd.DataFrame({"sparsity %": [0, 50, 90], "accuracy %": [80.5, 79.25, 61.0], "MACs": [1_000_000, 500_000, 100_000]})


def test_table_slider_shows_the_selected_row(levels):
    box = widgets.table_slider(levels, by="sparsity %", description="sparsity")
    slider, rows = box.children
    assert [label for label, _ in slider.options] == ["0", "50", "90"]
    assert slider.description == "sparsity"
    assert "80.5" in shown(rows).value and "1,000,000" in shown(rows).value
    slider.value = 2  # moving the slider shows that row
    follow_links()
    assert "61" in shown(rows).value and "100,000" in shown(rows).value and "80.5" not in shown(rows).value


def test_table_slider_start_and_formatters(levels):
    box = widgets.table_slider(levels, by="sparsity %", start=1, formatters={"accuracy %": lambda v: f"{v:.1f}%"})
    slider, rows = box.children
    assert slider.value == 1 and "79.2%" in shown(rows).value


def test_linked_pages_needs_one_page_per_position():
    buttons = ipywidgets.ToggleButtons(options=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 pages for a control with 3 positions"):
        widgets.linked_pages(buttons, [ipywidgets.HTML("a"), ipywidgets.HTML("b")])


def test_row_html_escapes(levels):
    table = pd.DataFrame({"name": ["<b>x</b>"]})
    assert "&lt;b&gt;" in widgets.row_html(table, 0)


def test_table_slider_errors(levels):
    with pytest.raises(KeyError, match="No column 'bits'"):
        widgets.table_slider(levels, by="bits")
    with pytest.raises(ValueError, match="no rows"):
        widgets.table_slider(levels.iloc[:0], by="sparsity %")
    with pytest.raises(IndexError, match="start"):
        widgets.table_slider(levels, by="sparsity %", start=3)
    with pytest.raises(ValueError, match="repeats a value"):
        widgets.table_slider(pd.concat([levels, levels]), by="sparsity %")


def test_table_slider_says_when_formatting_merges_values():
    with pytest.raises(ValueError, match="repeats a value as shown \\(0.1\\).*formatter with more digits"):
        widgets.table_slider(pd.DataFrame({"ratio": [0.1001, 0.1002]}), by="ratio")
    box = widgets.table_slider(pd.DataFrame({"ratio": [0.1001, 0.1002]}), by="ratio", formatters={"ratio": lambda v: f"{v:.4f}"})
    assert [label for label, _ in box.children[0].options] == ["0.1001", "0.1002"]


def test_formatters_may_return_numbers(levels):
    """A formatter such as round() returns a number, which html.escape could not take."""
    box = widgets.table_slider(levels, by="sparsity %", formatters={"sparsity %": float, "accuracy %": round})
    slider, rows = box.children
    assert [label for label, _ in slider.options] == ["0.0", "50.0", "90.0"]
    assert ">80<" in shown(rows).value  # round(80.5)


# --------------------------------------------------------------------------- lesson 03: quantization explorer


def quantization_sweep() -> pd.DataFrame:
    from effcourse import quantization

    rows = [{"bits": 32, "granularity": "float32", "accuracy": 0.8, "relative error": 0.0, "distinct values": 999}]
    for bits, acc in ((8, 0.79), (4, 0.7), (2, 0.2)):
        for granularity in quantization.GRANULARITIES:
            rows.append({"bits": bits, "granularity": granularity, "accuracy": acc, "relative error": 1 / bits,
                         "distinct values": 2**bits - 1})
    return pd.DataFrame(rows)


def test_quantization_explorer_follows_the_buttons():
    import numpy as np

    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(np.float32)
    box = widgets.quantization_explorer(kernel, quantization_sweep(), name="conv")
    bits, granularity, views = box.children

    def summary() -> str:
        return shown(shown(views)).children[0].value

    assert [value for _, value in bits.options] == [8, 4, 2]
    assert "8 bits, per-tensor" in summary() and "79.00%" in summary() and "80.00%" in summary()
    bits.value = 2
    follow_links()
    assert "2 bits, per-tensor" in summary() and "20.00%" in summary()
    assert "keeps 3 distinct values" in summary()
    granularity.value = "per-channel"
    follow_links()
    assert "2 bits, per-channel" in summary()
    # every choice has its own histogram, drawn up front
    pictures = [page.children[1] for stack in views.children for page in stack.children]
    assert len(pictures) == 6 and all(isinstance(p, ipywidgets.Output) for p in pictures)


def test_quantization_explorer_gives_a_depthwise_kernel_one_scale_per_channel_and_multiplier():
    import numpy as np

    # (kh, kw, channels, multiplier), weights +-100 in channel 0 and +-1 in channel 1: one scale per
    # multiplier (the last axis alone) would round channel 1 to zero at 2 bits
    signs = np.where(np.random.default_rng(0).random((3, 3, 2, 2)) < 0.5, -1.0, 1.0)
    kernel = (signs * np.array([100.0, 1.0])[:, None]).astype(np.float32)
    table = quantization_sweep()
    views = widgets.quantization_explorer(kernel, table, channel_axes=2).children[2]
    per_channel = views.children[1].children[2].children[0].value  # 2 bits, per channel
    assert "2 bits, per-channel" in per_channel
    assert "keeps 4 distinct values, mean |error| 0.0% of the mean |weight|" in per_channel  # kept exactly


def test_quantization_explorer_needs_a_sweep():
    import numpy as np

    table = quantization_sweep()
    with pytest.raises(ValueError, match="no quantized rows"):
        widgets.quantization_explorer(np.ones((3, 3)), table[table["granularity"] == "float32"])
    with pytest.raises(ValueError, match="bit_width_sweep table is needed; this one has no column granularity"):
        widgets.quantization_explorer(np.ones((3, 3)), table.drop(columns="granularity"))
    with pytest.raises(ValueError, match="Unknown granularity 'channel', 'tensor'"):
        widgets.quantization_explorer(np.ones((3, 3)), table.replace({"per-tensor": "tensor", "per-channel": "channel"}))
