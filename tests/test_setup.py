"""Keras 2 is selected whichever the learner imports first, and a wrong setting is a clear error."""
import os
import subprocess
import sys


def python(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_tensorflow_first_still_gets_keras_2():
    done = python("import tensorflow as tf; print(tf.keras.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("tf_keras")


def test_effcourse_first_gets_keras_2_quietly():
    done = python("import effcourse, tensorflow as tf; print(tf.keras.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("tf_keras")
    assert "cuda" not in done.stderr.lower()  # TensorFlow's start-up noise is silenced


def test_keras_3_setting_is_a_clear_error():
    done = python("import effcourse", TF_USE_LEGACY_KERAS="0")
    assert done.returncode != 0
    assert "effcourse needs Keras 2" in done.stderr and "TF_USE_LEGACY_KERAS='0'" in done.stderr
