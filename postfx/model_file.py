"""Reading and writing model files (format: see model_format.py).

The loader validates everything (container, JSON, graph, tensor shapes,
checksum, finiteness) before it returns, so no GL object is ever created for a
file that will later turn out to be bad. It never unpickles and never runs
code from a file: the container is parsed here by hand, with every length and
offset checked against the file size before anything is allocated.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from . import model_format as fmt
from .errors import (ChecksumMismatch, ModelFileError, ModelFormatError, ModelGraphError, NotAModelFile,
                     StyleNotFound, TensorError, UnsupportedFormatVersion)

MAX_HEADER_BYTES = 16 << 20          # a 1024-layer model's header is far below this
MAX_FILE_BYTES = 4 << 30
MODEL_SUFFIX = ".safetensors"
_DTYPES = {"F32": np.dtype("<f4")}    # format v1 stores float32; fp16 is a run-time option
REGENERATE_HINT = "re-export it with postfx.export_torch(...) from the training checkpoint"


@dataclass
class Model:
    """A validated model file in memory: the graph and its packed tensors."""
    meta: dict                              # the parsed "postfx" JSON document
    graph: fmt.Graph
    tensors: dict[str, np.ndarray]          # packed float32, shapes from fmt.expected_tensors
    path: str | None = None

    @property
    def name(self) -> str:
        return self.meta.get("name") or (Path(self.path).stem if self.path else "model")

    @property
    def input_channels(self) -> int:
        return self.graph.input_channels

    @property
    def uses_depth(self) -> bool:
        return "depth" in self.meta["input"]["channels"]

    @property
    def is_style(self) -> bool:
        """RGB / RGBD in, RGB out at the frame size: usable by PostFX and stylize()."""
        return (tuple(self.meta["input"]["channels"]) in (fmt.RGB, fmt.RGBD)
                and tuple(self.meta["output"]["channels"]) == fmt.RGB
                and self.graph.tensors[self.graph.output].scale == (1, 1))

    @property
    def input_range(self) -> tuple[float, float]:
        lo, hi = self.meta["input"]["range"]
        return float(lo), float(hi)

    @property
    def output_range(self) -> tuple[float, float]:
        lo, hi = self.meta["output"]["range"]
        return float(lo), float(hi)

    @property
    def output_channels(self) -> int:
        return self.graph.tensors[self.graph.output].channels

    @property
    def pad_multiple(self) -> int:
        return self.graph.pad_multiple

    def layer_weights(self, layer: fmt.Layer) -> tuple[np.ndarray, np.ndarray]:
        return self.tensors[f"{layer.name}.weight"], self.tensors[f"{layer.name}.bias"]

    @property
    def parameters(self) -> int:
        return fmt.parameter_count(self.graph)

    @property
    def macs_per_pixel(self) -> float:
        return fmt.macs_per_pixel(self.graph)

    def describe(self) -> str:
        """Human-readable summary: what `postfx info` prints."""
        g = self.graph
        inp = self.meta["input"]
        lines = [f"model      {self.name}  ({self.path or 'in memory'})",
                 f"format     {fmt.FORMAT_NAME} v{self.meta['format_version']}",
                 f"input      {', '.join(inp['channels'])}  -> {inp['range']}"
                 + ("  (sRGB-encoded colour)" if "r" in inp["channels"] else "")]
        if self.uses_depth:
            lines.append("depth      linear view depth, (z - near) / (far - near) clamped to [0, 1] "
                         f"-> {inp['range']}")
        out = self.meta["output"]
        lines += [f"output     {', '.join(out['channels'])} from {out['tensor']!r} in {out['range']}",
                  f"frames     padded to a multiple of {g.pad_multiple} (edge repeat), cropped back",
                  f"params     {self.parameters:,}",
                  f"MACs/px    {self.macs_per_pixel:,.0f}  ({self.macs_per_pixel * 1280 * 720 / 1e9:.2f} GMAC "
                  "per 1280x720 frame)", "", "layers:"]
        for layer in g.layers:
            t = g.tensors[layer.name]
            desc = f"  {layer.name:<14} {layer.op:<17} <- {', '.join(layer.inputs):<22}"
            if layer.op in fmt.CONV_OPS:
                desc += (f" {sum(fmt.in_segments(layer, g.tensors)):>4} -> {layer.out_channels:<4} "
                         f"k{layer.kernel} s{layer.stride} p{layer.padding}")
                if layer.padding_mode != "zeros":
                    desc += f" {layer.padding_mode}"
            elif layer.op == "upsample":
                desc += f" x{layer.scale} {layer.mode}"
            else:
                desc += f" {t.channels} ch"
            if layer.activation != "none":
                desc += f"  + {layer.activation}"
            num, den = t.scale
            desc += f"  @ {'1' if num == den else f'{num}/{den}'}"
            lines.append(desc)
        prov = self.meta.get("provenance") or {}
        if prov:
            lines += ["", "provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items())]
        return "\n".join(lines)


# --- JSON that refuses what Python's json module lets through -----------------

def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(name):
    raise ValueError(f"non-standard JSON literal {name}")


def _strict_json(text: str, what: str, path: str):
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise ModelFormatError(f"{path}: {what} is not valid JSON ({e}); {REGENERATE_HINT}") from None


# --- the container -------------------------------------------------------------

def _check_signature(head: bytes, path: str) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise NotAModelFile(f"{path}: this is a zip archive (a torch.save checkpoint?). postfx never "
                            f"unpickles files; {REGENERATE_HINT}")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise NotAModelFile(f"{path}: this is a Python pickle. postfx never runs code from a model file; "
                            f"{REGENERATE_HINT}")
    if head.startswith(b"version https://git-lfs"):
        raise NotAModelFile(f"{path}: this is a Git LFS pointer, not the model itself; run `git lfs pull`")


def _parse_container(data: memoryview, path: str) -> tuple[dict, dict, memoryview]:
    """Returns (tensor entries, metadata, data region)."""
    size = len(data)
    if size < 8:
        raise NotAModelFile(f"{path}: {size} bytes is too short for a safetensors file (at least 8)")
    _check_signature(bytes(data[:32]), path)
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or header_len > size - 8:
        raise ModelFormatError(f"{path}: header length {header_len} does not fit the file of {size} bytes "
                               f"(limit {MAX_HEADER_BYTES}); the file is truncated or not a model file")
    try:
        header_text = bytes(data[8:8 + header_len]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"{path}: header is not UTF-8 ({e})") from None
    header = _strict_json(header_text, "the safetensors header", path)
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path}: safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFormatError(f"{path}: no string __metadata__ in the header: not a postfx model file; "
                               f"{REGENERATE_HINT}")
    region = data[8 + header_len:]
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ModelFormatError(f"{path}: tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
        if entry["dtype"] not in _DTYPES:
            raise TensorError(f"{path}: tensor {name!r} has dtype {entry['dtype']!r}; format v1 stores F32")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in shape)):
            raise TensorError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise TensorError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= len(region):
            raise TensorError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] fall outside the "
                              f"data region of {len(region)} bytes")
        nbytes = math.prod(shape) * _DTYPES[entry["dtype"]].itemsize
        if nbytes != end - begin:
            raise TensorError(f"{path}: tensor {name!r} shape {shape} needs {nbytes} bytes but its "
                              f"data_offsets span {end - begin}")
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else f"leaves a gap at byte {cursor}"
            raise TensorError(f"{path}: tensor {name!r} at [{begin}, {end}] {what}")
        cursor = end
    if cursor != len(region):
        raise ModelFormatError(f"{path}: {len(region) - cursor} trailing bytes after the last tensor; "
                               "the file was appended to or is corrupt")
    return header, metadata, region


def _check_contract(meta: dict, path: str) -> int:
    """Validate the input / output contract; returns the input channel count."""
    inp, out = meta.get("input"), meta.get("output")
    if not isinstance(inp, dict) or not isinstance(out, dict):
        raise ModelFormatError(f"{path}: metadata lacks the 'input' / 'output' contract objects")
    channels = inp.get("channels")
    for key, names in (("input", channels), ("output", out.get("channels"))):
        if (not isinstance(names, list) or not 1 <= len(names) <= fmt.MAX_IO_CHANNELS
                or not all(isinstance(c, str) and c.isalnum() and len(c) <= 16 for c in names)
                or len(set(names)) != len(names)):
            raise ModelFormatError(f"{path}: {key}.channels must be 1..{fmt.MAX_IO_CHANNELS} distinct short "
                                   f"names, got {names!r}")
    for key, obj in (("input", inp), ("output", out)):
        rng = obj.get("range")
        if (not isinstance(rng, list) or len(rng) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in rng)
                or not rng[0] < rng[1]):
            raise ModelFormatError(f"{path}: {key}.range must be [lo, hi] with lo < hi, got {rng!r}")
    if "r" in channels and (inp.get("color") or {}).get("encoding") != "srgb":
        raise ModelFormatError(f"{path}: input.color.encoding must be 'srgb', got {inp.get('color')!r}")
    if "depth" in channels:
        enc = (inp.get("depth") or {}).get("encoding")
        if enc not in fmt.DEPTH_ENCODINGS:
            raise ModelFormatError(f"{path}: input.depth.encoding {enc!r}; supported: {list(fmt.DEPTH_ENCODINGS)}")
    if not isinstance(out.get("tensor"), str):
        raise ModelFormatError(f"{path}: output.tensor must name a layer")
    return len(channels)


def parse_model_bytes(data: bytes | memoryview, path: str = "<bytes>") -> Model:
    """Validate and load a model from its bytes (see module docstring)."""
    view = memoryview(data)
    header, metadata, region = _parse_container(view, path)
    if fmt.METADATA_KEY not in metadata:
        raise ModelFormatError(f"{path}: no {fmt.METADATA_KEY!r} entry in the metadata: this safetensors file "
                               f"was not written by postfx; {REGENERATE_HINT}")
    meta = _strict_json(metadata[fmt.METADATA_KEY], "the postfx metadata", path)
    if not isinstance(meta, dict) or meta.get("format") != fmt.FORMAT_NAME:
        raise ModelFormatError(f"{path}: metadata 'format' is not {fmt.FORMAT_NAME!r}")
    version = meta.get("format_version")
    if version != fmt.FORMAT_VERSION:
        raise UnsupportedFormatVersion(
            f"{path}: format version {version!r}; this postfx reads version {fmt.FORMAT_VERSION}. "
            f"Upgrade postfx, or {REGENERATE_HINT} with this version")
    input_channels = _check_contract(meta, path)
    raw_layers = meta.get("layers")
    if not isinstance(raw_layers, list):
        raise ModelGraphError(f"{path}: metadata 'layers' must be a list")
    if len(raw_layers) > fmt.MAX_LAYERS:
        raise ModelGraphError(f"{path}: {len(raw_layers)} layers; the limit is {fmt.MAX_LAYERS}")
    try:
        layers = [fmt.parse_layer(d, i) for i, d in enumerate(raw_layers)]
        graph = fmt.build_graph(layers, input_channels, meta["output"]["tensor"])
    except ModelGraphError as e:
        raise ModelGraphError(f"{path}: {e}") from None
    out_channels = graph.tensors[graph.output].channels
    if len(meta["output"]["channels"]) != out_channels:
        raise ModelFormatError(f"{path}: output.channels names {len(meta['output']['channels'])} channels, "
                               f"tensor {graph.output!r} has {out_channels}")
    if meta.get("pad_multiple") != graph.pad_multiple:
        raise ModelGraphError(f"{path}: pad_multiple {meta.get('pad_multiple')!r} disagrees with the graph, "
                              f"which needs {graph.pad_multiple}")
    expected = fmt.expected_tensors(graph)
    for name in expected:
        if name not in header:
            raise TensorError(f"{path}: layer {name.rsplit('.', 1)[0]!r} needs tensor {name!r} "
                              f"of shape {list(expected[name])}, which is missing")
    for name, entry in header.items():
        if name not in expected:
            raise TensorError(f"{path}: tensor {name!r} belongs to no layer of the graph")
        if tuple(entry["shape"]) != expected[name]:
            raise TensorError(f"{path}: layer {name.rsplit('.', 1)[0]!r}: tensor {name!r} has shape "
                              f"{entry['shape']}, the graph needs {list(expected[name])} "
                              "(out_slices, k, k, in_slices, 4 in, 4 out)")
    checksum = meta.get("checksum") or {}
    if checksum.get("algorithm") != "sha256" or not isinstance(checksum.get("value"), str):
        raise ModelFormatError(f"{path}: metadata lacks a sha256 checksum of the tensor data")
    actual = hashlib.sha256(region).hexdigest()
    if actual != checksum["value"]:
        raise ChecksumMismatch(f"{path}: tensor data sha256 {actual[:16]}... does not match the stored "
                               f"{checksum['value'][:16]}...; the file is corrupt, re-download or {REGENERATE_HINT}")
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        arr = np.frombuffer(region[begin:end], dtype=_DTYPES[entry["dtype"]]).reshape(entry["shape"]).copy()
        if not np.isfinite(arr).all():
            bad = int(np.size(arr) - np.isfinite(arr).sum())
            raise TensorError(f"{path}: tensor {name!r} holds {bad} NaN/Inf values; {REGENERATE_HINT} "
                              "from a checkpoint with finite weights")
        tensors[name] = arr.astype(np.float32, copy=False)
    return Model(meta=meta, graph=graph, tensors=tensors, path=path)


def read_model_file(path: str | os.PathLike) -> Model:
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ModelFormatError(f"{path}: {size} bytes is beyond the {MAX_FILE_BYTES} byte limit for a model")
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise NotAModelFile(f"{path}: is a directory, not a model file") from None
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    return parse_model_bytes(data, path)


# --- bundled styles ---------------------------------------------------------

def _styles_dir() -> Path:
    return Path(str(resources.files("postfx.styles")))


def bundled_styles() -> list[str]:
    return sorted(p.name[: -len(MODEL_SUFFIX)] for p in _styles_dir().glob("*" + MODEL_SUFFIX)
                  if p.is_file() and not p.is_symlink())


def bundled_style_path(name: str) -> Path:
    """The file of a bundled style; names are plain identifiers (reliability A11)."""
    if not name or not all(c.isalnum() or c in "_-" for c in name) or name.startswith("-"):
        raise StyleNotFound(f"style name {name!r} may hold only letters, digits, '_' and '-'; "
                            f"bundled styles: {bundled_styles()}")
    path = _styles_dir() / (name + MODEL_SUFFIX)
    if path.is_symlink():
        raise StyleNotFound(f"bundled style {name!r} is a symbolic link; refusing to follow it")
    if not path.is_file():
        raise StyleNotFound(f"no bundled style {name!r}; bundled styles: {bundled_styles()}. "
                            "Pass a path to load your own model file")
    return path


def load(model: "str | os.PathLike | Model") -> Model:
    """A Model from a Model, a path to a .safetensors file, or a bundled style name."""
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if os.path.sep in text or text.endswith(MODEL_SUFFIX) or os.path.exists(text):
            return read_model_file(text)
        return read_model_file(bundled_style_path(text))
    raise TypeError(f"model must be a path, a bundled style name or a postfx Model, got {type(model).__name__}")


# --- writing -------------------------------------------------------------------

def serialize(meta: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """safetensors bytes: tensors sorted by name, metadata with the data checksum added."""
    names = sorted(tensors)
    blobs, entries, offset = [], {}, 0
    for name in names:
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        blob = arr.tobytes()
        entries[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    region = b"".join(blobs)
    meta = dict(meta, checksum={"algorithm": "sha256", "value": hashlib.sha256(region).hexdigest()})
    header = {"__metadata__": {fmt.METADATA_KEY: json.dumps(meta, allow_nan=False, sort_keys=True)}, **entries}
    text = json.dumps(header, allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)          # safetensors aligns the data region to 8 bytes
    return struct.pack("<Q", len(text)) + text + region


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file, fsync, os.replace: a crash leaves the old or the new file (D1)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def model_from_parts(meta: dict, tensors: dict[str, np.ndarray], path: str | None = None) -> Model:
    """Serialize and re-parse: the in-memory model is exactly what a file would give."""
    return parse_model_bytes(serialize(meta, tensors), path or "<in memory>")


def save_model(model_or_meta, path, tensors=None) -> None:
    if isinstance(model_or_meta, Model):
        meta, tensors = model_or_meta.meta, model_or_meta.tensors
    else:
        meta = model_or_meta
    data = serialize(meta, tensors)
    parse_model_bytes(data, os.fspath(path))     # never write a file the loader would refuse
    atomic_write(path, data)
