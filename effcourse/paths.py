"""Where the course keeps what it makes (results, trained models, executed notebooks), and how
a path is shown to the learner: never as an absolute path of this machine."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EFFCOURSE_WORKDIR"
CHECKOUT = Path(__file__).resolve().parents[1]


class WorkdirError(Exception):
    """The working folder (or a folder in it) cannot be created or written, with what to do."""


def workdir() -> Path:
    """The working folder (ignored by git): EFFCOURSE_WORKDIR, else `.effcourse/` in the
    course checkout, else `~/.effcourse` for an installed package."""
    if os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR]).expanduser()
    elif _is_checkout():
        root = CHECKOUT / ".effcourse"
    else:
        root = Path.home() / ".effcourse"
    return _writable(root)


def _writable(folder: Path) -> Path:
    """`folder`, created if missing; WorkdirError unless this process may write in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        problem = "" if os.access(folder, os.W_OK | os.X_OK) else "is a folder you may not write in"
    except FileExistsError:
        problem = "is a file, not a folder"
    except OSError as err:
        problem = f"cannot be created ({err.strerror or type(err).__name__})"
    if problem:
        fix = (f"point {ENV_VAR} at a folder you may write (it is created if missing), or unset it"
               if os.environ.get(ENV_VAR) else f"set {ENV_VAR} to a folder you may write (it is created if missing)")
        raise WorkdirError(f"The course's working folder cannot be used: {display(folder)} {problem}. "
                           f"To fix it, {fix}.")
    return folder


def _is_checkout() -> bool:
    """Whether the package runs from a checkout of the course (not an installed copy)."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "notebooks").is_dir()


def subdir(name: str) -> Path:
    """A named folder inside the working folder, created if missing."""
    return _writable(workdir() / name)


def display(path: str | os.PathLike, setting: str | None = None) -> str:
    """`path` as the course prints it: relative to a setting that chose it (`$EFFCOURSE_DATA`,
    `$EFFCOURSE_WORKDIR/models/...`), to the checkout (`data/...`), or to the home folder
    (`~/...`); else only its name. Printed outputs end up in notebooks and on the website, so
    they name no absolute path of the machine that ran them.

    `setting` names the environment variable whose value is `path` or a folder above it."""
    path = Path(path).expanduser()
    absolute = Path(os.path.abspath(path))
    anchors = [(f"${name}", Path(os.path.abspath(Path(os.environ[name]).expanduser())))
               for name in (setting, ENV_VAR) if name and os.environ.get(name)]
    if _is_checkout():
        anchors.append(("", CHECKOUT))
    anchors.append(("~", Path.home()))
    for label, anchor in anchors:
        try:
            rest = absolute.relative_to(anchor)
        except ValueError:
            continue
        parts = [label] if label else []
        if str(rest) != ".":
            parts.append(rest.as_posix())
        return "/".join(parts) if parts else "."
    return path.as_posix() if not path.is_absolute() else f".../{path.name}"
