"""Where the course keeps what it makes: results, trained models, executed notebooks."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EFFCOURSE_WORKDIR"
_CHECKOUT = Path(__file__).resolve().parents[1]


def workdir() -> Path:
    """The working folder (ignored by git): EFFCOURSE_WORKDIR, else `.effcourse/` in the
    course checkout, else `~/.effcourse` for an installed package."""
    if os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR]).expanduser()
    elif (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "notebooks").is_dir():
        root = _CHECKOUT / ".effcourse"
    else:
        root = Path.home() / ".effcourse"
    root.mkdir(parents=True, exist_ok=True)
    return root


def subdir(name: str) -> Path:
    """A named folder inside the working folder, created if missing."""
    path = workdir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
