"""Plots the lessons share."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def learning_curves(histories: dict[str, dict]) -> Figure:
    """Training and validation accuracy and loss per epoch, one colour per model."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, history) in enumerate(histories.items()):
        colour = f"C{i}"
        epochs = range(1, len(history["loss"]) + 1)
        ax_acc.plot(epochs, history["accuracy"], "--", color=colour, label=f"{name} (train)")
        ax_acc.plot(epochs, history["val_accuracy"], "-", color=colour, label=f"{name} (validation)")
        ax_loss.plot(epochs, history["loss"], "--", color=colour)
        ax_loss.plot(epochs, history["val_loss"], "-", color=colour)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.legend(fontsize="small")
    fig.tight_layout()
    return fig
