"""The precomputed-levels slider: it builds, it shows the selected row, it says what is wrong."""
import pandas as pd
import pytest

from effcourse import widgets


@pytest.fixture
def levels():
    return pd.DataFrame({"sparsity %": [0, 50, 90], "accuracy %": [80.5, 79.25, 61.0], "MACs": [1_000_000, 500_000, 100_000]})


def test_table_slider_shows_the_selected_row(levels):
    box = widgets.table_slider(levels, by="sparsity %", description="sparsity")
    slider, view = box.children
    assert [label for label, _ in slider.options] == ["0", "50", "90"]
    assert slider.description == "sparsity"
    assert "80.5" in view.value and "1,000,000" in view.value
    slider.value = 2  # moving the slider looks the row up
    assert "61" in view.value and "100,000" in view.value and "80.5" not in view.value


def test_table_slider_start_and_formatters(levels):
    box = widgets.table_slider(levels, by="sparsity %", start=1, formatters={"accuracy %": lambda v: f"{v:.1f}%"})
    slider, view = box.children
    assert slider.value == 1 and "79.2%" in view.value


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
    bits, granularity, summary, picture = box.children
    assert [value for _, value in bits.options] == [8, 4, 2]
    assert "8 bits, per-tensor" in summary.value and "79.00%" in summary.value and "80.00%" in summary.value
    bits.value = 2
    assert "2 bits, per-tensor" in summary.value and "20.00%" in summary.value
    assert "keeps 3 distinct values" in summary.value
    granularity.value = "per-channel"
    assert "2 bits, per-channel" in summary.value


def test_quantization_explorer_needs_a_sweep():
    import numpy as np

    table = quantization_sweep()
    with pytest.raises(ValueError, match="no quantized rows"):
        widgets.quantization_explorer(np.ones((3, 3)), table[table["granularity"] == "float32"])
