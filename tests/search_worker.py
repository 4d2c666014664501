"""A search worker with a cheap objective, for the engine's tests: run as
`python tests/search_worker.py <the arguments of effcourse worker>`, it registers the "toy"
objective and hands over to the command line. $SEARCH_TEST_PAUSE: seconds each trial sleeps."""
import dataclasses
import os
import sys
import time

from effcourse import cli, measure, search, search_space

SHAPE, CLASSES = (8, 8, 3), 4


def toy_accuracy(spec: search_space.Spec) -> float:
    """A made-up accuracy that grows with the candidate's width, depth and head, below 1."""
    return 1 - 1 / (2 + sum(spec.filters) / 32 + spec.head / 64 + (spec.kernel_size == 5))


def toy_objective(study, data=None):
    """Each trial builds its candidate on tiny images, counts its MACs and parameters, and
    records them with stand-ins for the converted model's costs (no conversion, no training)."""
    pause = float(os.environ.get("SEARCH_TEST_PAUSE", "0"))

    def objective(trial):
        spec = search_space.suggest(trial)
        model = search_space.build(spec, SHAPE, CLASSES)
        macs, parameters = measure.macs(model)[0], measure.parameters(model)[0]
        attrs = {"spec": dataclasses.asdict(spec), "macs": macs, "parameters": parameters,
                 "int8_bytes": parameters, "peak_activation_bytes": 2 * SHAPE[0] * SHAPE[1] * max(spec.filters)}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        time.sleep(pause)
        return toy_accuracy(spec), macs

    return objective


if __name__ == "__main__":
    search.OBJECTIVES["toy"] = toy_objective
    sys.exit(cli.main(["worker", *sys.argv[1:]]))
