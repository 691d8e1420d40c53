"""Compute programs: shader files (shipped as postfx.shaders), specialised by
#defines, compiled once per (shader, defines) and context.

Every knob a shader reads is declared in it as `#ifndef NAME` with a default;
passing a define the shader does not declare is an error, so a misspelled knob
can never be silently ignored. Define values are numbers computed by postfx,
never strings from a model file (reliability A8).
"""
from __future__ import annotations

import re
from functools import cache
from importlib import resources

import moderngl

from ..errors import ShaderCompileError
from .context import renderer

_INCLUDE = re.compile(r'^\s*#include\s+"([\w.]+)"\s*$', re.M)
_KNOB = re.compile(r"^\s*#ifndef\s+(\w+)", re.M)
# `uniform <type> <name>;` (samplers and images too: `layout(...) ... uniform image2D name;`)
_UNIFORM = re.compile(r"\buniform\s+(?:(?:lowp|mediump|highp)\s+)?\w+\s+(\w+)\s*(?:\[[^\]]*\])?\s*;")
_LOG_LINE = re.compile(r"^\s*(\d+)[:(](\d+)[):(]", re.M)     # Mesa "0:12(5):", NVIDIA "0(12) :"


@cache
def shader_source(name: str) -> str:
    return (resources.files("postfx.shaders") / name).read_text(encoding="utf-8")


@cache
def expanded_source(name: str) -> tuple[str, frozenset, tuple]:
    """The shader with includes inlined, the knobs it declares, and the file of
    each GLSL source-string number. #line markers give included text source
    string 1, 2, ... so a driver log's "string:line" names the right file."""
    text = shader_source(name)
    out, knobs, files = [], set(_KNOB.findall(text)), [name]
    for number, line in enumerate(text.split("\n"), start=1):
        m = _INCLUDE.match(line)
        if m:
            included = shader_source(m.group(1))
            knobs |= set(_KNOB.findall(included))
            out += [f"#line 1 {len(files)}", included, f"#line {number + 1} 0"]
            files.append(m.group(1))
        else:
            out.append(line)
    return "\n".join(out), frozenset(knobs), tuple(files)


@cache
def declared_uniforms(name: str) -> frozenset:
    """The uniforms a shader file (with its includes) declares, whatever the defines."""
    return frozenset(_UNIFORM.findall(expanded_source(name)[0]))


def set_uniforms(program, shader, uniforms: dict, write=None) -> None:
    """Set `uniforms` on a compiled program of `shader` (a file name, or several for a
    vertex + fragment program). A name the shader does not declare is an error -- the
    uniform version of a misspelled define, which would otherwise be silently dropped;
    a declared uniform the compiler optimized away in this variant is skipped.
    write(program, name, value): how to set one (default: assignment)."""
    shaders = (shader,) if isinstance(shader, str) else tuple(shader)
    declared = frozenset().union(*(declared_uniforms(s) for s in shaders))
    unknown = set(uniforms) - declared
    if unknown:
        raise ValueError(f"shader {' + '.join(shaders)} declares no uniform(s) {sorted(unknown)}; "
                         f"it declares {sorted(declared)}")
    for uniform, value in uniforms.items():
        if uniform in program:
            if write is None:
                program[uniform] = value
            else:
                write(program, uniform, value)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(float(value))
        return text if ("." in text or "e" in text) else text + ".0"
    raise TypeError(f"shader define values must be numbers, got {type(value).__name__}")


def specialise(name: str, defines: dict) -> str:
    source, knobs, _ = expanded_source(name)
    unknown = set(defines) - knobs
    if unknown:
        raise ValueError(f"shader {name} declares no knob(s) {sorted(unknown)}; it declares {sorted(knobs)}")
    head, _, body = source.partition("\n")          # the #version line stays first
    block = "".join(f"#define {k} {_format_value(v)}\n" for k, v in sorted(defines.items()))
    return f"{head}\n{block}#line 2 0\n{body}"


class ProgramCache:
    """Compiled compute programs of one context, keyed by (shader, defines)."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self._programs: dict = {}

    def get(self, name: str, defines: dict, layer: str = "") -> moderngl.ComputeShader:
        key = (name, tuple(sorted(defines.items())))
        program = self._programs.get(key)
        if program is None:
            source = specialise(name, defines)
            try:
                program = self.ctx.compute_shader(source)
            except moderngl.Error as e:
                raise ShaderCompileError(_compile_message(name, layer, source, str(e), self.ctx)) from None
            self._programs[key] = program
        return program

    def release(self) -> None:
        for program in self._programs.values():
            program.release()
        self._programs.clear()

    def __len__(self) -> int:
        return len(self._programs)


def _compile_message(name: str, layer: str, source: str, log: str, ctx) -> str:
    msg = [f"shader {name} failed to compile" + (f" for layer {layer!r}" if layer else ""),
           f"renderer: {renderer(ctx)}", "driver log:", log.strip()]
    m = _LOG_LINE.search(log)
    files = expanded_source(name)[2]
    if m and int(m.group(1)) < len(files):
        file, line = files[int(m.group(1))], int(m.group(2))
        file_lines = shader_source(file).split("\n")
        if 1 <= line <= len(file_lines):
            msg.append(f"{file}:{line}: >>> {file_lines[line - 1].strip()}")
    return "\n".join(msg)
