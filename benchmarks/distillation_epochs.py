"""What moves lesson 05's distillation gain: how long the student trains, how strong its teacher is, mixup?

Lesson 05's student is trained alone and distilled, for several budgets of epochs, from the same
seed; each budget is a run of its own, with its own cosine schedule over its epochs. The code is
the lesson's own: its `Distiller` and `train_student`, and its temperature and alpha, are read from
the notebook, so this measures what the lesson runs, not a copy. The teacher is lesson 01's
improved CNN from the model cache (trained first if it is not there), or with `--teacher
improved-wide` the same CNN 1.5x wider trained by the same recipe, or with several recipes their
ensemble (the mean of their logits; Hinton et al. 2015 distilled an ensemble): is a stronger
teacher the lever the lesson's gain lacks? With `--mixup`, the distilled student learns on mixup
images (two training images blended with a random weight per image), the teacher answering for the
same blend: "function matching" (Beyer et al. 2022, "Knowledge distillation: A good teacher is
patient and consistent"), where the teacher's answers carry information no label has; a third
student, trained alone on the same blends with their blended labels, is the same-augmentation
control. Each pair of students is compared on the same test images: the paired verdict (exact
McNemar test) and the 95% interval of the difference; with several seeds, each budget's mean gain
gets its interval too.

    EFFCOURSE_PROFILE=full python benchmarks/distillation_epochs.py [--epochs 4 10 20] [--seeds 0 1]
        [--teacher improved-wide [improved ...]] [--mixup] [--out FILE]

Budgets are epochs of the `full` profile (a shorter profile scales them as its recipes do). The
results, with the profile, data and machine, are written after every pair to
benchmarks/results/distillation_epochs-<profile>[-<teacher>[+<teacher>]][-mixup].json (or --out).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
import types
from pathlib import Path

import nbformat
import numpy as np

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import data as course_data
from effcourse import hardware, measure, paths, profiles, recipes, stats, zoo

import tensorflow as tf  # noqa: E402  (after effcourse: Keras 2)
import tf_keras as keras  # noqa: E402

LESSON = paths.CHECKOUT / "notebooks" / "05_distillation.ipynb"
DEFINITIONS = ("class Distiller(", "def train_student(")  # the cells this script runs
SETTINGS = re.compile(r"^TEMPERATURE, ALPHA = (.+), (.+)$", re.MULTILINE)


def lesson_code(path: Path = LESSON) -> types.ModuleType:
    """Lesson 05's imports and the cells that define its Distiller and train_student, run as a
    module, with the lesson's TEMPERATURE and ALPHA."""
    cells = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    chosen = [cells[0]]  # the imports
    for definition in DEFINITIONS:
        found = [source for source in cells if definition in source]
        if len(found) != 1:
            raise SystemExit(f"{paths.display(path)} has {len(found)} cells with {definition!r}, not one: "
                             "this script runs the lesson's own code; restore the notebook with git.")
        chosen += found
    settings = [SETTINGS.search(source) for source in cells]
    settings = [match for match in settings if match]
    if len(settings) != 1:
        raise SystemExit(f"{paths.display(path)} does not set `TEMPERATURE, ALPHA = ...` in one line of one cell.")
    module = types.ModuleType("lesson05")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile("\n\n".join(chosen), str(path), "exec"), module.__dict__)
    module.TEMPERATURE, module.ALPHA = (ast.literal_eval(value) for value in settings[0].groups())
    return module


def with_mixup(distiller: type) -> type:
    """The lesson's Distiller, training on mixup blends of its augmented batch: each image blended
    with another of the batch by a weight drawn uniformly per image; the hard loss is the
    blend's weighted loss on both labels, and the teacher sees the same blend as the student."""

    class MixupDistiller(distiller):
        def train_step(self, batch):
            x, labels = batch
            labels = tf.reshape(labels, [-1])
            weight = tf.random.uniform(tf.shape(labels))
            other = tf.random.shuffle(tf.range(tf.shape(labels)[0]))
            x = weight[:, None, None, None] * x + (1 - weight[:, None, None, None]) * tf.gather(x, other)
            teacher_logits = self.teacher(x, training=False) if self.alpha < 1 else None
            with tf.GradientTape() as tape:
                student_logits = self.student(x, training=True)
                cross_entropy = lambda y: keras.losses.sparse_categorical_crossentropy(y, student_logits, from_logits=True)
                hard = tf.reduce_mean(weight * cross_entropy(labels) + (1 - weight) * cross_entropy(tf.gather(labels, other)))
                if teacher_logits is None:  # alpha = 1: the labels only, as the lesson's Distiller
                    loss, soft = hard, tf.constant(0.0)
                else:  # the lesson's soft term, on the blend
                    _, _, soft = self.loss_terms(labels, student_logits, teacher_logits)
                    loss = self.alpha * hard + (1 - self.alpha) * soft
            weights = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            for tracker, value in zip(self.trackers, (loss, hard, soft)):
                tracker.update_state(value)
            self.accuracy.update_state(labels, student_logits)  # against the larger share's label, mostly
            return {m.name: m.result() for m in self.metrics}

    return MixupDistiller


def train(lesson: types.ModuleType, data, teacher, *, alpha: float, epochs: int, seed: int, mixup: bool):
    """The lesson's train_student, its Distiller swapped for the mixup one where `mixup`."""
    distiller = lesson.Distiller
    lesson.Distiller = with_mixup(distiller) if mixup else distiller
    try:
        return lesson.train_student(data, teacher, alpha=alpha, temperature=lesson.TEMPERATURE, epochs=epochs, seed=seed)
    finally:
        lesson.Distiller = distiller


def compare(lesson: types.ModuleType, data, teacher, x_test, *, epochs: int, seed: int,
            mixup: bool = False) -> tuple[dict, dict]:
    """Train the student alone and distilled (with `mixup`: distilled on blends, and a third
    student alone on the same blends) for `epochs` from `seed`; the pair's row, and each
    student's per-image correctness on the test images."""
    students = [("alone", 1.0, False), ("distilled", lesson.ALPHA, mixup)] + [("alone, mixup", 1.0, True)] * mixup
    correct, seconds = {}, {}
    for kind, alpha, blends in students:
        start = time.perf_counter()
        run = train(lesson, data, teacher, alpha=alpha, epochs=epochs, seed=seed, mixup=blends)
        seconds[kind] = round(time.perf_counter() - start, 1)
        correct[kind] = measure.correct(run.student, x_test, data.y_test)
    row = {"seed": seed, "epochs": epochs, "alone %": round(100 * correct["alone"].mean(), 2),
           "distilled %": round(100 * correct["distilled"].mean(), 2), **gain(correct["alone"], correct["distilled"])}
    if mixup:
        row |= {"mixup": True, "alone, mixup %": round(100 * correct["alone, mixup"].mean(), 2),
                "over alone, mixup": gain(correct["alone, mixup"], correct["distilled"])}
    return row | {"seconds": seconds}, correct


def gain(alone, distilled) -> dict:
    """The distilled student's gain over the one alone, in points, its 95% interval and paired verdict."""
    paired = stats.paired_accuracy(alone, distilled)
    low, high = stats.paired_difference_interval(alone, distilled)
    return {"gain (points)": round(100 * paired.difference, 2), "95% interval": [round(100 * low, 2), round(100 * high, 2)],
            "verdict": paired.verdict, "McNemar p": round(paired.p_value, 4)}


def ensemble(members: list, image_shape) -> keras.Model:
    """One model that answers with the mean of its members' logits (a lone member: itself)."""
    if len(members) == 1:
        return members[0]
    images = keras.Input(shape=image_shape)
    return keras.Model(images, keras.layers.Average()([member(images, training=False) for member in members]), name="ensemble")


def by_budget(correct: dict) -> list[dict]:
    """Per budget of epochs, the mean gain over the seeds run so far, with its 95% interval."""
    rows = []
    for epochs in sorted({e for e, _ in correct}):
        runs = [correct[e, s] for e, s in sorted(correct) if e == epochs]
        alone, distilled = np.array([r["alone"] for r in runs]), np.array([r["distilled"] for r in runs])
        low, high = stats.mean_difference_interval(alone, distilled)
        rows.append({"epochs": epochs, "seeds": len(runs), "mean gain (points)": round(100 * (distilled.mean() - alone.mean()), 2),
                     "95% interval": [round(100 * low, 2), round(100 * high, 2)]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 10, 20], help="budgets, in epochs of the full profile")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--teacher", nargs="+", default=["improved"], choices=sorted(set(recipes.RECIPES) - {"reference", "distilled-student"}),
                        help="the model cache's recipe that trains the teacher (several: their ensemble)")
    parser.add_argument("--mixup", action="store_true", help="distil on mixup blends (function matching); adds a control alone on them")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: benchmarks/results/distillation_epochs-<profile>[-<teacher>].json)")
    args = parser.parse_args()
    profile = profiles.current()
    name = "+".join(args.teacher)
    suffix = ("" if name == "improved" else f"-{name}") + ("-mixup" if args.mixup else "")
    out = args.out or paths.CHECKOUT / "benchmarks" / "results" / f"distillation_epochs-{profile.name}{suffix}.json"
    print(f"Profile: {profile.name}; hardware: {hardware.describe()}", flush=True)
    lesson = lesson_code()
    cifar = course_data.load_cifar10(profile=profile)
    runs = [zoo.trained(recipe, cifar, profile) for recipe in args.teacher]
    teacher = ensemble([run.model for run in runs], cifar.image_shape)
    seconds = [run.seconds for run in runs]
    x_test = course_data.normalise(cifar.x_test)
    result = {"question": __doc__.splitlines()[0],
              "hardware": hardware.describe(), "versions": hardware.versions(), "profile": profile.name,
              "data": cifar.source, "training images": len(cifar.x_train), "test images": len(x_test),
              "temperature": lesson.TEMPERATURE, "alpha": lesson.ALPHA, "mixup": args.mixup,
              "teacher": name, "teacher parameters": measure.parameters(teacher)[0],
              "teacher %": round(100 * measure.correct(teacher, x_test, cifar.y_test).mean(), 2),
              "teacher's training (min)": None if None in seconds else round(sum(seconds) / 60, 1),
              "pairs": []}
    correct = {}
    start = time.perf_counter()
    for seed in args.seeds:
        for epochs in sorted({profile.epochs(full_epochs) for full_epochs in args.epochs}):
            row, correct[epochs, seed] = compare(lesson, cifar, teacher, x_test, epochs=epochs, seed=seed, mixup=args.mixup)
            result["pairs"].append(row)
            result["by budget"] = by_budget(correct)
            result["minutes"] = round((time.perf_counter() - start) / 60, 1)
            out.write_text(json.dumps(result, indent=1) + "\n")
            print(f"seed {seed}, {epochs} epochs: alone {row['alone %']:.2f}%, distilled {row['distilled %']:.2f}%, "
                  f"gain {row['gain (points)']:+.2f} ({row['95% interval'][0]:+.2f} to {row['95% interval'][1]:+.2f}), "
                  f"{row['verdict']}; {sum(row['seconds'].values()) / 60:.1f} min", flush=True)
    print(f"Written to {paths.display(out)}")


if __name__ == "__main__":
    main()
