"""Folders whose JSON index is the truth: a rendered dataset (views.json) and a
targets folder (targets.json). They must not be able to lie:

- a writer removes the folder's old index before it writes any file, and writes
  the new one last, holding the sha256 of every file of its run (and a run id
  derived from them);
  so an interrupted writer -- Ctrl-C, a kill, a full disk -- leaves a folder with
  no index, which every reader refuses, never an old index over new files;
- a reader checks every file it reads against the index (FileMismatch names the
  file), and reads the index through a schema: a wrong type, a missing key, an
  unsafe path or absurd nesting is an InputError naming the file and the field.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath

from .errors import InputError
from .files import atomic_write

MAX_INDEX_BYTES = 256 << 20         # a million views is ~300 MiB of JSON; anything past this is not ours
SHA256 = re.compile(r"[0-9a-f]{64}")


class FileMismatch(InputError):
    """A file of an indexed folder is missing or is not the file its index recorded."""


def content_id(records) -> str:
    """A run's id: the sha256 of its records (which hold every file's sha256), so two runs
    that wrote the same files share it and any other run has another."""
    return sha256_hex(json.dumps(records, sort_keys=True, separators=(",", ":")).encode("utf-8"))[:32]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def begin_writing(folder: Path, index_name: str) -> None:
    """Before a writer touches any file of `folder`: its old index goes first, so nothing
    reads the folder as complete until the new index is written."""
    path = Path(folder) / index_name
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):       # no old index (or no folder yet)
        return
    except OSError as e:
        raise InputError(f"{path}: cannot remove the old index before rewriting the folder ({e})") from None


def write_index(folder: Path, index_name: str, doc: dict) -> None:
    atomic_write(Path(folder) / index_name, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))


# --- reading -------------------------------------------------------------------------

class Fields:
    """Typed access to one JSON object of an index, every failure naming the file and the
    field: Fields(doc, path, "views[3]").get("color", str)."""

    def __init__(self, doc, path: Path, where: str = ""):
        self.path, self.where = path, where
        if not isinstance(doc, dict):
            raise InputError(f"{path}: {where or 'the index'} must be a JSON object, got {_kind(doc)}")
        self.doc = doc

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind, *, optional: bool = False):
        if key not in self.doc:
            if optional:
                return None
            raise InputError(f"{self.path}: field {self._name(key)!r} is missing")
        value = self.doc[key]
        if optional and value is None:
            return None
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int to Python, not to an index
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise InputError(f"{self.path}: field {self._name(key)!r} must be "
                             f"{' or '.join(_kind_name(k) for k in kinds)}, got {_kind(value)}")
        return value

    def whole(self, key: str, low: int = 0, high: int | None = None, *, optional: bool = False) -> int | None:
        value = self.get(key, int, optional=optional)
        if value is not None and (value < low or (high is not None and value > high)):
            raise InputError(f"{self.path}: field {self._name(key)!r} is {value}, expected "
                             f"{low} .. {high if high is not None else 'any'}")
        return value

    def sha256(self, key: str) -> str:
        value = self.get(key, str)
        if not SHA256.fullmatch(value):
            raise InputError(f"{self.path}: field {self._name(key)!r} is not a sha256 (64 hex digits)")
        return value

    def relative_file(self, key: str) -> str:
        """A path inside the folder: relative, no '..', no backslash tricks."""
        value = self.get(key, str)
        parts = PurePosixPath(value).parts
        if not value or value.startswith(("/", "\\")) or "\\" in value or ".." in parts or ":" in value \
                or "\0" in value:
            raise InputError(f"{self.path}: field {self._name(key)!r} ({value!r}) must be a relative path inside "
                             "the folder")
        return value

    def object(self, key: str) -> Fields:
        return Fields(self.get(key, dict), self.path, self._name(key))

    def objects(self, key: str, *, at_least: int = 0) -> list[Fields]:
        items = self.get(key, list)
        if len(items) < at_least:
            raise InputError(f"{self.path}: field {self._name(key)!r} holds {len(items)} entries; at least "
                             f"{at_least} expected (an empty folder?)")
        return [Fields(item, self.path, f"{self._name(key)}[{i}]") for i, item in enumerate(items)]


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true / false", type(None): "null",
            int: "a whole number", float: "a number"}.get(type(value), type(value).__name__)


def _kind_name(kind) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a whole number", float: "a number",
            bool: "true / false"}.get(kind, kind.__name__)


def read_index(path: Path, format_name: str, version: int, written_by: str) -> Fields:
    """A folder's JSON index, parsed and checked for its format name and version.
    written_by: the command that writes it, for the hints."""
    path = Path(path)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise InputError(f"{path}: not found; is {path.parent} a folder written by `{written_by}`? ({path.name} "
                         "is written last, so an interrupted or unfinished run leaves none: run it again)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e})") from None
    if size > MAX_INDEX_BYTES:
        raise InputError(f"{path}: {size} bytes is beyond the {MAX_INDEX_BYTES} byte limit of an index")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read it ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be an index") from None
    fields = Fields(doc, path)
    if doc.get("format") != format_name:
        raise InputError(f"{path}: not a {format_name} index; run `{written_by}` again")
    if doc.get("format_version") != version:
        raise InputError(f"{path}: a {format_name} index of version {doc.get('format_version')!r}; this postfx "
                         f"reads version {version} (it records a checksum of every file): run `{written_by}` again")
    return fields


def read_recorded(folder: Path, name: str, sha256: str, index_name: str, what: str) -> bytes:
    """The bytes of `folder/name`, after checking them against the sha256 the index recorded."""
    path = Path(folder) / name
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):         # a FIFO would block the read
            raise FileMismatch(f"{path}: the {what} that {index_name} lists is not a regular file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileMismatch(f"{path}: the {what} that {index_name} lists is missing") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e})") from None
    if sha256_hex(data) != sha256:
        raise FileMismatch(f"{path}: this {what} is not the one {index_name} recorded (it changed since, or a "
                           "later run was interrupted over this folder): write the folder again")
    return data
