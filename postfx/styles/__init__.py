"""The bundled styles: trained model files shipped in this folder, loaded by name
(postfx.load("ink"))."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ..errors import StyleNotFound
from ..model_format import MODEL_SUFFIX, brief

DEFAULT_STYLE = "ink"               # what stylize / the demo use when no model is named (a trained style)
_STYLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


def styles_dir() -> Path:
    """The folder of the bundled style files."""
    return Path(str(resources.files("postfx.styles")))


def bundled_styles() -> list[str]:
    return sorted(p.name[: -len(MODEL_SUFFIX)] for p in styles_dir().glob("*" + MODEL_SUFFIX)
                  if p.is_file() and not p.is_symlink())


def bundled_style_path(name: str) -> Path:
    """The file of a bundled style; names are plain identifiers (reliability A11)."""
    if not isinstance(name, str) or not _STYLE_NAME.fullmatch(name):
        raise StyleNotFound(f"style name {brief(name)} must be 1-64 ASCII letters, digits, '_' or '-', not starting "
                            f"with '-'; bundled styles: {bundled_styles()}. Pass a path to load your own file")
    path = styles_dir() / (name + MODEL_SUFFIX)
    if path.is_symlink():
        raise StyleNotFound(f"bundled style {brief(name)} is a symbolic link ({path}); refusing to follow it. "
                            "Pass the target's path to load it as your own file")
    if not path.is_file():
        raise StyleNotFound(f"no bundled style {brief(name)}; bundled styles: {bundled_styles()}. "
                            "Pass a path to load your own model file")
    return path
