"""What made lesson 01's improved CNN more accurate: its architecture, or the training tools?

The improved recipe changes everything at once: wider and deeper convolutions with batch norm and
dropout, augmented images, a cosine learning-rate schedule from a higher rate, early stopping and
three times the epochs. This script trains variants in between, on the same data with the run
profile's budget (epochs scaled as the recipes scale them), and measures each on the same test
images: accuracy with its 95% interval and paired verdicts (exact McNemar test) against the
reference and the improved recipe, then the contrasts that separate one change from the others.
A second seed of the reference recipe shows how far two trainings of one recipe differ, which no
interval over test images includes.

    EFFCOURSE_PROFILE=workshop python benchmarks/ablation_baseline.py [--variants KEY ...] [--output FILE]

It prints the tables and writes them, with the profile, data and machine, to
benchmarks/results/ablation_baseline-<profile>.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import data as course_data
from effcourse import hardware, measure, models, paths, profiles, recipes, stats

RESULTS = paths.CHECKOUT / "benchmarks" / "results"
PATIENCE = 10  # early stopping's patience in the improved recipe


@dataclass(frozen=True)
class Variant:
    """One way to train: an architecture and the training tools it gets."""

    key: str
    name: str
    architecture: str  # "reference" (models.reference_cnn) or "improved" (models.improved_cnn)
    batch_norm_dropout: bool  # the improved CNN's batch norm and dropout (the reference has neither)
    augment: bool  # random flips and shifts of the training images
    learning_rate: float  # Adam's rate: constant, or where the cosine schedule starts
    schedule: bool  # cosine decay to zero over the run
    early_stopping: bool  # on validation accuracy, best weights restored
    full_epochs: int  # epochs in the full profile; a profile trains profile.epochs(full_epochs)
    seed: int = 0
    recipe: str | None = None  # trained by this recipe of effcourse.recipes itself

    def training(self) -> str:
        rate = f"{self.learning_rate:g}" + (" cosine to 0" if self.schedule else " constant")
        tools = [rate] + (["augmentation"] if self.augment else []) + (["early stopping"] if self.early_stopping else [])
        return ", ".join(tools)


VARIANTS = [
    Variant("reference", "reference recipe", "reference", False, False, 1e-3, False, False, 10, recipe="reference"),
    Variant("reference-seed1", "reference recipe, seed 1 (noise control)", "reference", False, False, 1e-3, False,
            False, 10, seed=1),
    Variant("reference-3x", "reference, 3x the epochs", "reference", False, False, 1e-3, False, False, 30),
    Variant("reference-tools", "reference architecture + training tools", "reference", False, True, 2e-3, True,
            True, 30),
    Variant("improved-plain-training", "improved architecture, reference training, 3x the epochs", "improved",
            True, False, 1e-3, False, False, 30),
    Variant("improved-no-bn-dropout", "improved convolutions without batch norm and dropout + training tools",
            "improved", False, True, 2e-3, True, True, 30),
    Variant("improved", "improved recipe", "improved", True, True, 2e-3, True, True, 30, recipe="improved"),
]
BY_KEY = {v.key: v for v in VARIANTS}

# (question, variant A, variant B): B against A differs in what the question names.
CONTRASTS = [
    ("Seed noise: the same recipe trained twice", "reference", "reference-seed1"),
    ("3x the epochs, nothing else", "reference", "reference-3x"),
    ("Training tools on the reference architecture (same epochs)", "reference-3x", "reference-tools"),
    ("Improved architecture with the reference training (same epochs)", "reference-3x", "improved-plain-training"),
    ("Training tools on the improved architecture", "improved-plain-training", "improved"),
    ("Batch norm and dropout (with the training tools)", "improved-no-bn-dropout", "improved"),
    ("Improved architecture (with the training tools)", "reference-tools", "improved"),
    ("Everything at once", "reference", "improved"),
]


def build(variant: Variant, data) -> "models.keras.Model":
    if variant.architecture == "reference":
        if variant.batch_norm_dropout:
            raise ValueError("The reference architecture has no batch norm or dropout to switch on.")
        return models.reference_cnn(data.image_shape, data.num_classes)
    if variant.batch_norm_dropout:
        return models.improved_cnn(data.image_shape, data.num_classes)
    return models.improved_cnn(data.image_shape, data.num_classes, batch_norm=False, dropout=0)


def train(variant: Variant, data, profile: profiles.Profile):
    """Train `variant` on `data` in `profile`: with its recipe if it names one, else as the recipes
    train (Adam on logits, seed set first, validation each epoch). Returns (model, history)."""
    import tf_keras as keras

    if variant.recipe:
        if variant.seed != 0:
            raise ValueError("The course's recipes train with seed 0.")
        return recipes.RECIPES[variant.recipe](data, profile)
    keras.utils.set_random_seed(variant.seed)
    epochs = profile.epochs(variant.full_epochs)
    rate = variant.learning_rate
    if variant.schedule:
        rate = keras.optimizers.schedules.CosineDecay(variant.learning_rate,
                                                      decay_steps=recipes.training_steps(data, epochs))
    model = recipes.compile_model(build(variant, data), learning_rate=rate)
    callbacks = ([keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=PATIENCE, restore_best_weights=True)]
                 if variant.early_stopping else [])
    history = model.fit(data.train_dataset(augment=variant.augment), validation_data=data.val_dataset(),
                        epochs=epochs, callbacks=callbacks, verbose=0)
    return model, history.history


@dataclass
class Outcome:
    variant: Variant
    correct: np.ndarray  # per test image
    params: int
    macs: int
    epochs: int
    best_epoch: int | None  # restored by early stopping
    seconds: float

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def run(variant: Variant, data, profile) -> Outcome:
    start = time.perf_counter()
    model, history = train(variant, data, profile)
    seconds = time.perf_counter() - start
    val = history.get("val_accuracy", [])
    best = int(np.argmax(val)) + 1 if variant.early_stopping and val else None
    return Outcome(variant, measure.correct(model, data.x_test, data.y_test), measure.parameters(model)[0],
                   measure.macs(model)[0], len(history.get("loss", [])), best, seconds)


def _accuracy(o: Outcome) -> str:
    low, high = stats.accuracy_interval(int(o.correct.sum()), len(o.correct))
    return f"{o.accuracy:.2%} ({low:.1%}-{high:.1%})"


def _versus(o: Outcome, base: Outcome | None) -> str:
    if base is None:
        return "-"
    if base is o:
        return "(itself)"
    p = stats.paired_accuracy(base.correct, o.correct)
    return f"{100 * p.difference:+.2f}, {p.verdict} (p={p.p_value:.2g})"


def variants_table(outcomes: list[Outcome]) -> list[list[str]]:
    by_key = {o.variant.key: o for o in outcomes}
    reference, improved = by_key.get("reference"), by_key.get("improved")
    rows = [["variant", "architecture", "BN + dropout", "training", "epochs", "params", "MACs (M)",
             "train s", "test accuracy (95% interval)", "vs reference recipe (points)",
             "vs improved recipe (points)"]]
    for o in outcomes:
        v = o.variant
        epochs = f"{o.epochs}" + (f" (best {o.best_epoch} kept)" if o.best_epoch else "")
        bn = "yes" if v.batch_norm_dropout else "no"
        rows.append([v.name, v.architecture, bn, v.training(), epochs, f"{o.params:,}", f"{o.macs / 1e6:.2f}",
                     f"{o.seconds:.0f}", _accuracy(o), _versus(o, reference), _versus(o, improved)])
    return rows


def contrasts_table(outcomes: list[Outcome]) -> list[list[str]]:
    by_key = {o.variant.key: o for o in outcomes}
    rows = [["question", "from", "to", "difference (points)", "verdict", "images only 'to' / only 'from' gets right"]]
    for question, a, b in CONTRASTS:
        if a in by_key and b in by_key:
            p = stats.paired_accuracy(by_key[a].correct, by_key[b].correct)
            rows.append([question, by_key[a].variant.name, by_key[b].variant.name, f"{100 * p.difference:+.2f}",
                         f"{p.verdict} (p={p.p_value:.2g})", f"{p.only_b_right} / {p.only_a_right}"])
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _half_width(outcomes: list[Outcome]) -> str:
    """How wide a 95% interval is at the median accuracy measured, e.g. '+-2.0 points at 70%'."""
    accuracy = float(np.median([o.accuracy for o in outcomes]))
    n = len(outcomes[0].correct)
    low, high = stats.accuracy_interval(round(accuracy * n), n)
    return f"a 95% interval spans about +-{100 * (high - low) / 2:.1f} points at {accuracy:.0%}"


def report(outcomes: list[Outcome], data, profile: profiles.Profile, seconds: float, command: str) -> str:
    """The result file: what ran where, the two tables, and how to read them."""
    n_test = len(data.y_test)
    kind = "" if data.synthetic else " (real images)"
    versions = ", ".join(f"{k} {v}" for k, v in hardware.versions().items())
    return "\n".join([
        f"# Ablation of lesson 01's improved CNN ({profile.name} profile)",
        "",
        f"- Profile: {profile.name} ({profile.description})",
        f"- Data: {data.source}{kind}; train {len(data.y_train):,}, validation {len(data.y_val):,}, "
        f"test {n_test:,} images",
        f"- Machine: {hardware.describe()}",
        f"- Versions: {versions}",
        f"- Run: `{command}`, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}, {seconds:,.0f} s in all; "
        "one training per variant",
        "",
        "## Variants",
        "",
        "Every variant trains on the same images with Adam on logits; epochs are the profile's share of the "
        "full-profile epochs (10 for the reference recipe and its second seed, 30 for the others). Accuracy is on the same "
        f"{n_test:,} test images, with its 95% (Wilson) interval; 'vs' columns give the difference in points and "
        "the paired verdict of an exact McNemar test (better, worse, within noise).",
        "",
        markdown_table(variants_table(outcomes)),
        "",
        "## One change at a time",
        "",
        "Each row compares two variants that differ in what the question names (paired, on the same test "
        "images).",
        "",
        markdown_table(contrasts_table(outcomes)),
        "",
        "## How to read it",
        "",
        f"- The intervals and verdicts cover the noise of a finite test set ({n_test:,} images: {_half_width(outcomes)}). "
        "They do not cover training noise: each variant was trained once, and the seed-noise row shows how far "
        "two trainings of one recipe land apart.",
        f"- This is the {profile.name} budget. Tools that pay off over long training (augmentation, a schedule, "
        "early stopping) can rank differently in the full profile, which trains all the images for 10 or 30 epochs; "
        "lesson 01 measures the two recipes there.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(BY_KEY), default=list(BY_KEY),
                        help="variants to train (default: all)")
    parser.add_argument("--output", type=Path, help="markdown file to write (default: "
                        "benchmarks/results/ablation_baseline-<profile>.md)")
    args = parser.parse_args()
    profile = profiles.current()
    start = time.perf_counter()
    print(f"Profile: {profile.name}; hardware: {hardware.describe()}", flush=True)
    cifar = course_data.load_cifar10(profile=profile)
    outcomes = []
    for key in args.variants:
        outcome = run(BY_KEY[key], cifar, profile)
        outcomes.append(outcome)
        print(f"{outcome.variant.name}: {outcome.epochs} epochs in {outcome.seconds:.0f} s, "
              f"test accuracy {_accuracy(outcome)}", flush=True)
    seconds = time.perf_counter() - start
    print("\n" + text_table(variants_table(outcomes)) + "\n\n" + text_table(contrasts_table(outcomes)))
    chosen = "" if args.variants == list(BY_KEY) else " --variants " + " ".join(args.variants)
    command = f"EFFCOURSE_PROFILE={profile.name} python benchmarks/ablation_baseline.py{chosen}"
    output = args.output or RESULTS / f"ablation_baseline-{profile.name}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report(outcomes, cifar, profile, seconds, command))
    print(f"\nWritten to {paths.display(output)} ({seconds:,.0f} s in all)")


if __name__ == "__main__":
    main()
