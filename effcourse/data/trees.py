"""The layout of a class-per-folder image tree, in a folder or a zip: which files are the
images of which class in which split, and their bytes."""
from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from effcourse import paths

from .batches import _BATCH_FILES, _BATCHES_DIR, _TAR_NAME
from .imagedata import DataError, _reason

_IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
}


@dataclass
class _Folder:
    path: str  # relative to the tree's root, "" for the root
    dirs: dict
    files: list

    def rel(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name


class _Tree:
    """A class-per-folder tree in a folder or a zip: its layout and the bytes of its files.
    `setting` is the environment variable that chose `path`, if one did (for messages)."""

    def __init__(self, path: Path, setting: str | None = None):
        self.path = path
        self.setting = setting
        self.zip = None
        if path.is_dir():
            self.root = _scan(path, "", depth=4)
            return
        try:
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DataError(f"{self.where('')} cannot be read as a zip ({_reason(err)}). It may "
                            "be truncated or corrupt: create or download it again.") from err
        self.root = _Folder("", {}, [])
        self.members = {}  # relative path -> the zip's own name for it
        for name in names:
            parts = [p for p in name.replace("\\", "/").split("/") if p]
            if not parts or any(_hidden(p) for p in parts):
                continue
            is_dir = name.endswith(("/", "\\"))
            folder = self.root
            for part in parts if is_dir else parts[:-1]:
                folder = folder.dirs.setdefault(part, _Folder(folder.rel(part), {}, []))
            if not is_dir:
                folder.files.append(parts[-1])
                self.members[folder.rel(parts[-1])] = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.zip is not None:
            self.zip.close()

    def where(self, rel: str) -> str:
        """How to name a file or folder of the tree in a message (see `paths.display`)."""
        if self.zip is not None and rel:
            return f"{paths.display(self.path, self.setting)} (entry {rel})"
        return paths.display(self.path / rel if rel else self.path, self.setting)

    def _instead(self) -> str:
        """How to load another copy instead: as the setting that chose this one, or as `path`."""
        return f"set ${self.setting} to its path" if self.setting else "pass its path"

    def read(self, rel: str) -> bytes:
        if self.zip is None:
            return (self.path / rel).read_bytes()
        try:
            return self.zip.read(self.members[rel])
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, KeyError) as err:
            raise DataError(f"{self.where(rel)} cannot be read from the zip ({_reason(err)}). "
                            "The zip may be truncated or corrupt: create or download it "
                            "again.") from err

    def stamp(self, files: list[str]) -> list:
        """What identifies these files' contents for the cache: a zip's own bytes (hashed, a
        fraction of a second per 100 MB, so a copy or a touch of the same zip keeps its cache),
        or each file's size and modification time."""
        if self.zip is not None:
            digest = hashlib.blake2b()
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            return [digest.hexdigest()]
        return [[(s := (self.path / rel).stat()).st_size, s.st_mtime_ns] for rel in files]

    def splits(self) -> dict[str, dict[str, list[str]]]:
        """{"train": ..., "test": ...} or {"all": ...}, each {class: [relative image paths]}."""
        node = self.root
        if len(node.dirs) == 1 and not any(_is_image(f) for f in node.files):
            (only,) = node.dirs.values()
            if only.dirs and only.path.lower() not in ("train", "test"):
                node = only  # one wrapping folder
        self._refuse_batches(node)
        lower = {name.lower(): sub for name, sub in node.dirs.items() if sub.dirs}
        if "train" in lower and "test" in lower:
            train, test = self._classes(lower["train"]), self._classes(lower["test"])
            if set(train) != set(test):
                raise DataError(
                    f"{self.where(lower['train'].path)} and {self.where(lower['test'].path)} hold "
                    f"different class folders (only in train: {sorted(set(train) - set(test))}, "
                    f"only in test: {sorted(set(test) - set(train))}). Give both splits the same "
                    "class folders."
                )
            return {"train": train, "test": test}
        if "train" in lower or "test" in lower:
            raise DataError(f"{self.where(node.path)} has a train/ or a test/ folder of "
                            "class folders but not both. Add the other, or make it one tree of "
                            "class folders (a test split is then held out).")
        return {"all": self._classes(node)}

    def _refuse_batches(self, node: _Folder) -> None:
        """A DataError when `node` or a folder in it holds CIFAR-10's pickled batches."""
        batches = next((f for f in (node, *node.dirs.values())
                        if set(f.files) & set(_BATCH_FILES)), None)
        if batches is None:
            return
        if self.zip is not None:
            raise DataError(
                f"{self.where('')} looks like CIFAR-10's pickled batches ({_BATCHES_DIR}) "
                "zipped, not class folders of images; the course reads those batches only from "
                "the extracted folder or the original archive. Unzip it and load the "
                f"{_BATCHES_DIR} folder, or {_TAR_NAME}, with load_cifar10 ({self._instead()})."
            )
        raise DataError(
            f"{self.where(batches.path)} holds CIFAR-10's pickled batches, not class folders of "
            f"images. Load that folder itself with load_cifar10 ({self._instead()})."
        )

    def _classes(self, node: _Folder) -> dict[str, list[str]]:
        where = self.where(node.path)
        if not node.dirs:
            zips = [node.rel(f) for f in node.files if f.lower().endswith(".zip")]
            found = (f" It holds {', '.join(self.where(z) for z in zips)}: to load "
                     f"{'that zip' if len(zips) == 1 else 'one of them'}, {self._instead()}."
                     if zips and self.zip is None else "")
            raise DataError(
                f"{where} has no class folders. Expected one folder per class holding its images "
                "(<class>/<image>), or train/ and test/ folders that each hold the class folders."
                + found
            )
        if len(node.dirs) < 2:
            raise DataError(f"{where} has a single class folder {next(iter(node.dirs))!r}; a "
                            "classification dataset needs a folder for each of at least 2 classes.")
        classes = {}
        for name, sub in sorted(node.dirs.items()):
            images = sorted(sub.rel(f) for f in sub.files if _is_image(f))
            if not images:
                raise DataError(f"{self.where(sub.path)}: the class folder {name!r} holds no "
                                f"images ({', '.join(sorted(_IMAGE_SUFFIXES))}). Add its images "
                                "or delete the folder.")
            classes[name] = images
        return classes


def _scan(root: Path, rel: str, depth: int) -> _Folder:
    """The folders and files under `root`, `depth` levels deep, sorted, hidden ones left out."""
    folder = _Folder(rel, {}, [])
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if _hidden(entry.name):
                continue
            if entry.is_dir():
                if depth > 1:
                    sub = _scan(Path(entry.path), folder.rel(entry.name), depth - 1)
                    folder.dirs[entry.name] = sub
            else:
                folder.files.append(entry.name)
    return folder


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _IMAGE_SUFFIXES


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"
