"""Keras 2 is selected whichever the learner imports first, a wrong setting is a clear error,
and the conda environment installs the same project as pip."""
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


def test_environment_yml_installs_this_project_with_a_supported_python():
    """conda users get the same dependency list as pip users: environment.yml pins a Python the
    package supports and installs pyproject.toml with the extras `make test` installs."""
    import re
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10 has no tomllib: tomli is the same parser (the test extra installs it there)
        import tomli as tomllib
    import yaml
    from packaging.specifiers import SpecifierSet

    root = Path(__file__).resolve().parents[1]
    environment = yaml.safe_load((root / "environment.yml").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    python_pin = [d.split("=", 1)[1] for d in conda if d.startswith("python=")]
    assert len(python_pin) == 1 and python_pin[0] in SpecifierSet(project["requires-python"])
    assert sorted(conda) == sorted(["pip", f"python={python_pin[0]}"]), "other dependencies belong in pyproject.toml"
    assert len(pip) == 1 and len(pip[0]) == 1
    extras = re.fullmatch(r'-e "?\.\[([\w,]+)\]"?', pip[0][0])
    make_extras = re.search(r'pip install --quiet -e "\.\[([\w,]+)\]"', (root / "Makefile").read_text())
    assert extras and make_extras and extras.group(1) == make_extras.group(1)
    assert set(extras.group(1).split(",")) <= set(project["optional-dependencies"])
