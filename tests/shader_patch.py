"""Tests that need a broken shader: the source of one file with one line replaced,
while the `with` lasts. The source caches are cleared on both sides, so no other
test sees the patched text."""
from __future__ import annotations

from contextlib import contextmanager

from postfx.gl import programs


@contextmanager
def patched_shader(name: str, old: str, new: str):
    real = programs.shader_source

    def patched(file_name):
        text = real(file_name)
        if file_name == name:
            assert old in text, f"{name} no longer contains {old!r}: update the test"
            text = text.replace(old, new)
        return text
    programs.expanded_source.cache_clear()
    programs.shader_source = patched
    try:
        yield
    finally:
        programs.shader_source = real
        programs.expanded_source.cache_clear()
