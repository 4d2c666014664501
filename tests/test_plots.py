"""The shared plots say what is wrong with what they are given, rather than failing deep inside."""
import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from effcourse import plots  # noqa: E402


@pytest.mark.parametrize("accuracies", [[80.0, 81.0], [0.8, float("nan")]])
def test_accuracy_band_needs_fractions(accuracies):
    """Percentages failed in stats ("correct must be in [0, 100]"), a NaN in round()."""
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\] \\(not percentages, not NaN\\)"):
        plots.accuracy_band(ax, [1, 2], accuracies, images=100)
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\]"):
        plots.accuracy_sweeps({"temperature": ([1, 2], accuracies)}, images=100)
    plt.close("all")


def test_learning_curves_need_history_dicts_with_validation():
    class History:  # what model.fit returns: the dict is its .history
        history = {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.1], "val_accuracy": [0.4]}

    with pytest.raises(ValueError, match="history of 'm' must be a dict \\(`model.fit\\(...\\).history`\\)"):
        plots.learning_curves({"m": History()})
    with pytest.raises(ValueError, match="fit with validation data"):
        plots.learning_curves({"m": {"loss": [1.0], "accuracy": [0.5]}})
    fig = plots.learning_curves({"m": History.history})
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2
    plt.close(fig)


@pytest.mark.parametrize("draw, what", [
    (lambda: plots.learning_curves({}), "histories is empty"),
    (lambda: plots.accuracy_band(plt.gca(), [], [], images=100), "accuracies is empty"),
    (lambda: plots.soft_labels([], {"T = 1": []}, ["cat", "dog"]), "images is empty"),
    (lambda: plots.soft_labels([[[0.0]]], {}, ["cat", "dog"]), "probabilities is empty"),
    (lambda: plots.accuracy_sweeps({}, images=100), "panels is empty"),
    (lambda: plots.accuracy_sweeps({"temperature": ([], [])}, images=100), "accuracies is empty"),
    (lambda: plots.pareto_fronts({}), "fronts is empty"),
])
def test_nothing_to_plot_is_refused(draw, what):
    """Matplotlib failed ("Number of columns must be a positive integer, not 0", "not enough values to
    unpack"), soft_labels divided by zero, and learning_curves and pareto_fronts drew an empty figure."""
    with pytest.raises(ValueError, match=f"Nothing to plot: {what}; pass "):
        draw()
    plt.close("all")


def test_a_history_without_epochs_is_refused():
    """Drew empty axes before."""
    empty = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    with pytest.raises(ValueError, match="history of 'm' has no epoch"):
        plots.learning_curves({"m": empty})


@pytest.mark.parametrize("trials", [([], [], []), ([1e6, 2e6], [0.5], [True, False])])
def test_a_search_without_trials_or_with_ragged_columns_is_refused(trials):
    """A search without trials drew empty axes; ragged columns failed inside numpy's indexing."""
    with pytest.raises(ValueError, match="Nothing to plot for the search 's'.*one of each per trial"):
        plots.pareto_fronts({"s": trials})
    plt.close("all")


def test_accuracy_energy_needs_models_both_measured():
    """A comparison and a measurement of other models drew an empty figure."""
    import pandas as pd
    from types import SimpleNamespace

    comparison = SimpleNamespace(table=pd.DataFrame(index=["float32", "int8"]))
    measurement = SimpleNamespace(subjects={"student": None})
    with pytest.raises(ValueError, match="comparison \\(float32, int8\\) and the energy measurement \\(student\\) share no model"):
        plots.accuracy_energy(comparison, measurement)
