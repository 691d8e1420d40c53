"""The tuner's memory: which kernel won for a layer, on disk, so that a second
start does no timing. One JSON file in the user's cache directory
($POSTFX_CACHE_DIR, else $XDG_CACHE_HOME/postfx or ~/.cache/postfx; on Windows
%LOCALAPPDATA%\\postfx; on macOS ~/Library/Caches/postfx).

An entry is keyed by everything that can change the winner: the GL vendor,
renderer and version string (which carries the driver version), the postfx
version, the layer's signature (op, kernel, stride, padding, channels per
source, activation), its input and output sizes and the storage precision.

The file is never trusted: one that cannot be read, does not parse, is not
this format, or whose checksum does not match its entries is ignored with a
KernelCacheWarning and rewritten at the next save; an entry whose variant or
tunables this layer cannot run is ignored by the tuner (conv_kernels.is_valid_choice).
Writes go through a temp file and os.replace, so a crash leaves the old or the
new file; a save first merges what another process wrote meanwhile.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

from ..errors import KernelCacheWarning
from ..files import atomic_write
from .conv_kernels import KernelChoice

FORMAT = "postfx-kernel-choices"
VERSION = 1
FILE_NAME = "kernel-choices.json"
MAX_FILE_BYTES = 8 << 20        # far beyond any real cache; a bigger file is not ours


def default_cache_dir() -> Path:
    if os.environ.get("POSTFX_CACHE_DIR"):
        return Path(os.environ["POSTFX_CACHE_DIR"])
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "postfx"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "postfx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "postfx"


def entries_checksum(entries: dict) -> str:
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _valid_entry(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("key"), list)
            and isinstance(entry.get("variant"), str)
            and isinstance(entry.get("tunables"), dict)
            and all(isinstance(k, str) and type(v) is int for k, v in entry["tunables"].items())
            and isinstance(entry.get("seconds"), (int, float)))


class KernelCache:
    """The kernel choices of one cache file, read once, written by save()."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_dir() / FILE_NAME
        self.rewrite = False            # the file on disk is unusable: save() replaces it whole
        self.entries: dict[str, dict] = self._read()
        self._added: dict[str, dict] = {}

    def _read(self) -> dict:
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                return self._ignore(f"it is over {MAX_FILE_BYTES} bytes")
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            return self._ignore(f"it cannot be read ({e})")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:
            return self._ignore(f"it is not valid JSON ({e}): truncated or corrupt")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return self._ignore(f"it is not a postfx kernel cache (format {FORMAT!r})")
        if doc.get("version") != VERSION:
            return self._ignore(f"it is version {doc.get('version')!r}, this postfx reads {VERSION}")
        entries = doc.get("entries")
        if not isinstance(entries, dict) or not all(_valid_entry(e) for e in entries.values()):
            return self._ignore("its entries are malformed")
        try:
            intact = doc.get("sha256") == entries_checksum(entries)
        except ValueError:              # NaN / Infinity in an entry
            intact = False
        if not intact:
            return self._ignore("its checksum does not match its entries (edited or corrupt)")
        return entries

    def _ignore(self, why: str) -> dict:
        warnings.warn(f"ignoring the kernel cache {self.path}: {why}; it will be rewritten",
                      KernelCacheWarning, stacklevel=4)
        self.rewrite = True
        return {}

    @staticmethod
    def key_id(key: list) -> str:
        return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode("utf-8")).hexdigest()[:32]

    def get(self, key: list) -> KernelChoice | None:
        entry = self.entries.get(self.key_id(key))
        if entry is None or entry["key"] != key:
            return None
        return KernelChoice.of(entry["variant"], entry["tunables"])

    def seconds(self, key: list) -> float | None:
        entry = self.entries.get(self.key_id(key))
        return None if entry is None or entry["key"] != key else float(entry["seconds"])

    def put(self, key: list, choice: KernelChoice, seconds: float) -> None:
        entry = {"key": key, "variant": choice.variant, "tunables": choice.knobs, "seconds": float(seconds)}
        self.entries[self.key_id(key)] = self._added[self.key_id(key)] = entry

    def save(self) -> None:
        """Write the file (FileWriteError if it cannot be written): what another process
        saved since this one read it is kept, unless the file was unusable."""
        if not self._added and not self.rewrite:
            return
        merged = {} if self.rewrite else KernelCache._quiet_read(self.path)
        merged.update(self._added)
        doc = {"format": FORMAT, "version": VERSION, "entries": merged, "sha256": entries_checksum(merged)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        self.entries, self._added, self.rewrite = merged, {}, False

    @staticmethod
    def _quiet_read(path: Path) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KernelCacheWarning)
            return KernelCache(path).entries
