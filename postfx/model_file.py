"""Reading and writing model files (format: see model_format.py).

The loader validates everything (container, JSON, checksum, graph, tensor
shapes, finiteness) before it returns, so no GL object is ever created for a
file that will later turn out to be bad. It never unpickles and never runs
code from a file: the container is parsed here by hand, with every length and
offset checked against the file size before anything is allocated.

Order of the checks: container structure, then the metadata's format and
version (a newer file may define its checksum differently), then the checksum
(so a damaged download is reported as damaged rather than as whatever the
damage happens to look like), then the graph and tensors.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import struct

import numpy as np

from . import model_format as fmt
from .errors import (
    ChecksumMismatch,
    ModelFileError,
    ModelFormatError,
    ModelGraphError,
    NormSemanticsMismatch,
    NotAModelFile,
    TensorError,
    UnsupportedFormatVersion,
    UnsupportedNormSemantics,
)
from .files import atomic_write
from .model import Model
from .model_format import MODEL_SUFFIX, brief
from .styles import bundled_style_path, bundled_styles

MAX_HEADER_BYTES = 16 << 20          # a 1024-layer model's header is far below this
MAX_FILE_BYTES = 4 << 30
MAX_JSON_DEPTH = 32                  # a model's metadata nests 4 deep
_DTYPES = {"F32": np.dtype("<f4")}    # format v1 stores float32; fp16 is a run-time option
REGENERATE_HINT = "re-export it with postfx.export_torch(...) from the training checkpoint"
AGAIN_HINT = f"download or copy it again, or {REGENERATE_HINT}"
DAMAGED_HINT = f"the file is damaged: {AGAIN_HINT}"


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {brief(k)}")
        out[k] = v
    return out


def _no_constants(name):
    raise ValueError(f"non-standard JSON literal {name}")


def _finite_float(text):
    # json turns 1e999 into inf without calling parse_constant.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} overflows a float")
    return value


def _strict_json(text: str, what: str, path: str):
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                          parse_float=_finite_float)
    except (ValueError, RecursionError) as e:
        raise ModelFormatError(f"{path}: {what} is not valid JSON ({e}); {DAMAGED_HINT}") from None


def _json_depth(doc) -> int:
    depth, level = 0, [doc]
    while level:
        depth += 1
        level = [c for node in level if isinstance(node, (dict, list))
                 for c in (node.values() if isinstance(node, dict) else node)]
    return depth


def _canonical_json(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, allow_nan=False).encode("utf-8")


def checksum(meta: dict, tensor_table: dict, region) -> str:
    """sha256 of the canonical metadata (without its "checksum" entry), then the
    canonical tensor table ({name: {"dtype", "shape", "data_offsets"}}, the
    safetensors header without __metadata__), then the tensor data region: what
    format v1 stores in meta["checksum"]["value"]. The table binds each name to
    its bytes; without it, two same-shape tensors could trade places unnoticed."""
    digest = hashlib.sha256(_canonical_json({k: v for k, v in meta.items() if k != "checksum"}))
    digest.update(_canonical_json(tensor_table))
    digest.update(region)
    return digest.hexdigest()


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300


# --- the container -------------------------------------------------------------

def _check_signature(head: bytes, path: str) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise NotAModelFile(f"{path}: this is a zip archive (a torch.save checkpoint?), not a safetensors "
                            f"model file. postfx never unpickles files; {REGENERATE_HINT}")
    # A safetensors header length can begin with the same two bytes (e.g. 640 =
    # 80 02 ...); a real file has '{' at byte 8, a pickle never does.
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and head[8:9] != b"{":
        raise NotAModelFile(f"{path}: this is a Python pickle (a .pt / .pth / .ckpt?), not a safetensors "
                            f"model file. postfx never runs code from a model file; {REGENERATE_HINT}")
    if head.startswith(b"version https://git-lfs"):
        raise NotAModelFile(f"{path}: this is a Git LFS pointer, not the model itself; "
                            "run `git lfs pull` in its repository to fetch the real file")


def _parse_container(data: memoryview, path: str) -> tuple[dict, dict, memoryview]:
    """Returns (tensor entries, string metadata, data region)."""
    size = len(data)
    if size < 9:
        raise NotAModelFile(f"{path}: {size} bytes is too short for a safetensors file (an 8-byte header "
                            f"length and a JSON header); {DAMAGED_HINT}")
    _check_signature(bytes(data[:32]), path)
    if data[8] != ord("{"):
        # The safetensors spec requires the header to start with '{': anything
        # else (pickle protocol 0/1, an image, ONNX ...) is some other format.
        raise NotAModelFile(f"{path}: not a safetensors file (byte 8 is {bytes(data[8:9])!r}, expected b'{{'); "
                            f"pass a .safetensors file written by postfx, or {REGENERATE_HINT}")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > size - 8:
        raise ModelFormatError(f"{path}: the header claims {header_len} bytes but the file has only {size - 8} "
                               f"after the length field: the file is truncated; {AGAIN_HINT}")
    if header_len > MAX_HEADER_BYTES:
        raise ModelFormatError(f"{path}: header of {header_len} bytes is beyond the {MAX_HEADER_BYTES} byte "
                               f"limit for a model file; {DAMAGED_HINT}")
    try:
        header_text = bytes(data[8:8 + header_len]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"{path}: header is not UTF-8 ({e}); {DAMAGED_HINT}") from None
    header = _strict_json(header_text, "the safetensors header", path)
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path}: the safetensors header is a JSON {type(header).__name__}, expected an "
                               f"object; {DAMAGED_HINT}")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFormatError(f"{path}: the header has no string __metadata__: a safetensors file, but not one "
                               f"written by postfx; {REGENERATE_HINT}")
    region = data[8 + header_len:]
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ModelFormatError(f"{path}: tensor {brief(name)}: the entry must have exactly dtype, shape and "
                                   f"data_offsets, got {brief(got)}; {DAMAGED_HINT}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise TensorError(f"{path}: tensor {brief(name)} has dtype {brief(dtype)}; format v1 stores "
                              f"{list(_DTYPES)}; {REGENERATE_HINT}")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in shape)):
            raise TensorError(f"{path}: tensor {brief(name)} has shape {brief(shape)}, expected at most 8 dimensions "
                              f"in [0, 2**31); {DAMAGED_HINT}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise TensorError(f"{path}: tensor {brief(name)} has data_offsets {brief(offsets)}, expected [begin, end] "
                              f"integers; {DAMAGED_HINT}")
        begin, end = offsets
        if not 0 <= begin <= end <= len(region):
            raise TensorError(f"{path}: tensor {brief(name)} data_offsets [{begin}, {end}] fall outside the "
                              f"data region [0, {len(region)}] (a truncated file?); {DAMAGED_HINT}")
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
        if nbytes != end - begin:
            raise TensorError(f"{path}: tensor {brief(name)} of shape {brief(shape)} x {dtype} needs {nbytes} "
                              f"bytes but its data_offsets span {end - begin}; {DAMAGED_HINT}")
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else f"leaves a gap at byte {cursor}"
            raise TensorError(f"{path}: tensor {brief(name)} at [{begin}, {end}] {what} (tensors must tile the "
                              f"data region); {DAMAGED_HINT}")
        cursor = end
    if cursor != len(region):
        raise ModelFormatError(f"{path}: {len(region) - cursor} trailing bytes after the last tensor (data "
                               f"region {len(region)} bytes, tensors end at {cursor}); {DAMAGED_HINT}")
    return header, metadata, region


def _check_contract(meta: dict, path: str) -> int:
    """Validate the input / output contract; returns the input channel count."""
    inp, out = meta.get("input"), meta.get("output")
    if not isinstance(inp, dict) or not isinstance(out, dict):
        raise ModelFormatError(f"{path}: the metadata's 'input' / 'output' contracts must be JSON objects, got "
                               f"{type(inp).__name__} / {type(out).__name__}; {REGENERATE_HINT}")
    channels = inp.get("channels")
    for key, names in (("input", channels), ("output", out.get("channels"))):
        if (not isinstance(names, list) or not 1 <= len(names) <= fmt.MAX_IO_CHANNELS
                or not all(isinstance(c, str) and re.fullmatch(r"[A-Za-z0-9]{1,16}", c) for c in names)
                or len(set(names)) != len(names)):
            raise ModelFormatError(f"{path}: {key}.channels must be 1..{fmt.MAX_IO_CHANNELS} distinct names of "
                                   f"1-16 letters or digits, got {brief(names)}; {REGENERATE_HINT}")
    for key, obj in (("input", inp), ("output", out)):
        rng = obj.get("range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(map(_is_number, rng)) and rng[0] < rng[1]):
            raise ModelFormatError(f"{path}: {key}.range must be [lo, hi] with finite lo < hi, got {brief(rng)}; "
                                   f"{REGENERATE_HINT}")
    for key, allowed, needed in (("color", ("srgb",), "r" in channels),
                                 ("depth", fmt.DEPTH_ENCODINGS, "depth" in channels)):
        spec = inp.get(key)
        encoding = spec.get("encoding") if isinstance(spec, dict) else None
        if needed and encoding not in allowed:
            raise ModelFormatError(f"{path}: input.{key} must be an object with 'encoding' one of {list(allowed)}, "
                                   f"got {brief(spec)}; {REGENERATE_HINT}")
    if not isinstance(out.get("tensor"), str):
        raise ModelFormatError(f"{path}: output.tensor must be the name of a layer, got {brief(out.get('tensor'))}; "
                               f"{REGENERATE_HINT}")
    return len(channels)


def _check_description(meta: dict, path: str) -> None:
    """The free-text parts, only ever printed (provenance.norm aside: _check_norm), are typed
    so printing cannot fail."""
    name = meta.get("name")
    if name is not None and not (isinstance(name, str) and len(name) <= 256 and name.isprintable()):
        raise ModelFormatError(f"{path}: metadata 'name' must be printable text of at most 256 characters, "
                               f"got {brief(name)}; {REGENERATE_HINT}")
    for key in ("provenance", "training", "quality"):
        if not isinstance(meta.get(key), (dict, type(None))):
            raise ModelFormatError(f"{path}: metadata {key!r} must be a JSON object or null, got "
                                   f"{type(meta[key]).__name__}; {REGENERATE_HINT}")


def _check_norm(meta: dict, path: str) -> None:
    """B6: the file declares what its BatchNorms mean, "eval" (folded into the convs) or
    "frame" (per-frame statistics, kept as instance_norm layers); model_format.py."""
    provenance = meta.get("provenance") or {}
    if "norm" not in provenance:
        return
    norm = provenance["norm"]
    if not isinstance(norm, dict):
        raise ModelFormatError(f"{path}: provenance.norm must be an object {{'semantics': ..., 'folded_batchnorm': "
                               f"[...]}}, got {brief(norm)}; {REGENERATE_HINT}")
    semantics = norm.get("semantics")
    if semantics not in fmt.NORM_SEMANTICS:
        raise UnsupportedNormSemantics(
            f"{path}: provenance.norm declares normalization semantics {brief(semantics)}; this postfx runs "
            f"{list(fmt.NORM_SEMANTICS)} ('eval': BatchNorm folded into its conv with the running statistics; "
            "'frame': each frame normalized by its own statistics), so the file's weights would compute "
            f"something else; {REGENERATE_HINT} (batchnorm='eval' or 'frame')")
    folded = norm.get("folded_batchnorm", [])
    if not (isinstance(folded, list) and all(isinstance(n, str) for n in folded)):
        raise ModelFormatError(f"{path}: provenance.norm.folded_batchnorm must be a list of module names, got "
                               f"{brief(folded)}; {REGENERATE_HINT}")
    if semantics == "frame" and folded:
        raise NormSemanticsMismatch(
            f"{path}: provenance.norm declares 'frame' semantics (BatchNorm normalizes each frame by its own "
            f"statistics) but lists folded BatchNorm(s) {brief(folded)}, which used the running statistics; "
            f"{REGENERATE_HINT} and one batchnorm= choice")


def _check_norm_layers(meta: dict, graph: fmt.Graph, path: str) -> None:
    """B6: a BatchNorm kept as a per-frame norm layer needs the file to say "frame"."""
    norm = (meta.get("provenance") or {}).get("norm") or {}
    kept = [layer.name for layer in graph.layers
            if layer.op == "instance_norm" and layer.origin == "BatchNorm2d"]
    if kept and norm.get("semantics") != "frame":
        raise NormSemanticsMismatch(
            f"{path}: layer(s) {brief(kept)} normalize by each frame's statistics as BatchNorm2d in train mode, "
            f"but provenance.norm declares semantics {brief(norm.get('semantics'))}, not 'frame'; the file "
            f"contradicts itself: {REGENERATE_HINT}")


def _check_checksum(meta: dict, tensor_table: dict, region, path: str) -> None:
    stored = meta.get("checksum")
    if (not isinstance(stored, dict) or stored.get("algorithm") != "sha256"
            or not isinstance(stored.get("value"), str) or not re.fullmatch(r"[0-9a-f]{64}", stored["value"])):
        raise ModelFormatError(f"{path}: metadata 'checksum' must be {{'algorithm': 'sha256', 'value': <64 hex "
                               f"digits>}}, got {brief(stored)}; {DAMAGED_HINT}")
    actual = checksum(meta, tensor_table, region)
    if actual != stored["value"]:
        raise ChecksumMismatch(f"{path}: sha256 of the metadata, tensor table and tensor data is {actual[:16]}..., "
                               f"the file stores {stored['value'][:16]}...; {DAMAGED_HINT}")


def _shape_mismatch(path: str, layer: fmt.Layer, graph: fmt.Graph, name: str, actual: tuple, expected: tuple):
    if layer.op == "instance_norm":
        return TensorError(f"{path}: layer {layer.name!r} (instance_norm of {graph.tensors[layer.name].channels} "
                           f"channels): tensor {brief(name)} has shape {list(actual)}, the graph needs "
                           f"{list(expected)} (slices, 4); {REGENERATE_HINT}")
    cin = sum(fmt.in_segments(layer, graph.tensors))
    what = (f"{path}: layer {layer.name!r} ({layer.op} {cin} -> {layer.out_channels} channels, kernel "
            f"{layer.kernel}): tensor {brief(name)} has shape {list(actual)}, the graph needs {list(expected)}")
    if name.endswith(".bias"):
        return TensorError(f"{what} (out_slices, 4); {REGENERATE_HINT}")
    what += " (out_slices, k, k, in_slices, 4 in, 4 out)"
    if len(actual) == 6 and (actual[0], actual[3]) == (expected[3], expected[0]):
        torch_layout = "(in, out, k, k)" if layer.op == "conv_transpose2d" else "(out, in, k, k)"
        what += f"; in and out look swapped: torch stores {layer.op} weights as {torch_layout}"
    return TensorError(f"{what}; {REGENERATE_HINT}")


def parse_model_bytes(data: bytes | memoryview, path: str = "<bytes>") -> Model:
    """Validate and load a model from its bytes (see module docstring)."""
    view = memoryview(data)
    header, metadata, region = _parse_container(view, path)
    if fmt.METADATA_KEY not in metadata:
        raise ModelFormatError(f"{path}: no {fmt.METADATA_KEY!r} entry in the safetensors metadata (keys: "
                               f"{sorted(metadata)[:8]}): this file was not written by postfx; {REGENERATE_HINT}")
    meta = _strict_json(metadata[fmt.METADATA_KEY], "the postfx metadata", path)
    if _json_depth(meta) > MAX_JSON_DEPTH:
        # json.loads stops near the interpreter's recursion limit; json.dumps (the
        # checksum) and printing would stop at a slightly different depth.
        raise ModelFormatError(f"{path}: the postfx metadata nests deeper than {MAX_JSON_DEPTH} levels; "
                               f"{DAMAGED_HINT}")
    if not isinstance(meta, dict) or meta.get("format") != fmt.FORMAT_NAME:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFormatError(f"{path}: metadata 'format' is {brief(got)}, expected {fmt.FORMAT_NAME!r}; "
                               f"{REGENERATE_HINT}")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version != fmt.FORMAT_VERSION:
        raise UnsupportedFormatVersion(
            f"{path}: format version {brief(version)}; this postfx reads version {fmt.FORMAT_VERSION}. "
            f"Upgrade postfx, or {REGENERATE_HINT} with this version")
    _check_checksum(meta, header, region, path)
    _check_description(meta, path)
    _check_norm(meta, path)
    input_channels = _check_contract(meta, path)
    raw_layers = meta.get("layers")
    if not isinstance(raw_layers, list):
        raise ModelGraphError(f"{path}: metadata 'layers' must be a list, got {type(raw_layers).__name__}; "
                              f"{REGENERATE_HINT}")
    if len(raw_layers) > fmt.MAX_LAYERS:
        raise ModelGraphError(f"{path}: {len(raw_layers)} layers; the limit is {fmt.MAX_LAYERS}")
    try:
        layers = [fmt.parse_layer(d, i) for i, d in enumerate(raw_layers)]
        graph = fmt.build_graph(layers, input_channels, meta["output"]["tensor"])
    except ModelGraphError as e:
        raise ModelGraphError(f"{path}: {e}; {REGENERATE_HINT}") from None
    _check_norm_layers(meta, graph, path)
    out_channels = graph.tensors[graph.output].channels
    if len(meta["output"]["channels"]) != out_channels:
        raise ModelFormatError(f"{path}: output.channels names {len(meta['output']['channels'])} channels, "
                               f"tensor {graph.output!r} has {out_channels}; {REGENERATE_HINT}")
    if meta.get("pad_multiple") != graph.pad_multiple:
        raise ModelGraphError(f"{path}: pad_multiple {brief(meta.get('pad_multiple'))} disagrees with the graph, "
                              f"which needs {graph.pad_multiple}; {REGENERATE_HINT}")
    expected = fmt.expected_tensors(graph)
    layer_of = {f"{layer.name}.{kind}": layer for layer in graph.layers for kind in fmt.layer_tensor_kinds(layer)}
    for name, shape in expected.items():
        if name not in header:
            raise TensorError(f"{path}: layer {layer_of[name].name!r} ({layer_of[name].op}) needs tensor "
                              f"{brief(name)} of shape {list(shape)}, which is missing; {REGENERATE_HINT}")
    for name, entry in header.items():
        if name not in expected:
            raise TensorError(f"{path}: tensor {brief(name)} belongs to no layer of the graph (expected tensors: "
                              f"{sorted(expected)[:8]}); {REGENERATE_HINT}")
        if tuple(entry["shape"]) != expected[name]:
            raise _shape_mismatch(path, layer_of[name], graph, name, tuple(entry["shape"]), expected[name])
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        arr = np.frombuffer(region[begin:end], dtype=_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        finite = np.isfinite(arr)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise TensorError(f"{path}: layer {layer_of[name].name!r}: tensor {brief(name)} holds "
                              f"{int(arr.size - finite.sum())} NaN/Inf values (first at {first}: {arr[first]}), "
                              f"expected finite weights; re-export it from a checkpoint whose weights are finite")
        tensors[name] = arr.astype(np.float32)      # a copy: the model must not pin the file's bytes
    return Model(meta=meta, graph=graph, tensors=tensors, path=path)


def read_model_file(path: str | os.PathLike) -> Model:
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file; pass the path of a {MODEL_SUFFIX} model file or a bundled "
                             f"style name ({', '.join(bundled_styles()) or 'none installed'})") from None
    except (OSError, ValueError) as e:     # ValueError: a NUL in the path
        raise ModelFileError(f"{path}: cannot read the file ({e}); check the path and its permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise NotAModelFile(f"{path}: is a directory; pass the path of a {MODEL_SUFFIX} model file")
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO would block and /dev/zero would never end.
        raise NotAModelFile(f"{path}: is not a regular file; pass the path of a {MODEL_SUFFIX} model file")
    if info.st_size > MAX_FILE_BYTES:
        raise ModelFormatError(f"{path}: {info.st_size} bytes is beyond the {MAX_FILE_BYTES} byte limit "
                               "for a model file; check that this is the model you meant")
    try:
        with open(path, "rb") as f:
            data = f.read()     # not read(limit): that would allocate the whole limit up front
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the file ({e}); check the path and its permissions") from None
    return parse_model_bytes(data, path)


def load(model: str | os.PathLike | Model) -> Model:
    """A Model from a Model, a path to a .safetensors file, or a bundled style name.
    A bare name is a path only if such a file exists (a folder named after a style
    -- its training data, say -- does not hide the bundled style)."""
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if not isinstance(text, str) or os.path.sep in text or text.endswith(MODEL_SUFFIX) or os.path.isfile(text):
            return read_model_file(text)
        return read_model_file(bundled_style_path(text))
    raise TypeError(f"model must be a path, a bundled style name or a postfx Model, got {type(model).__name__}")


# --- writing -------------------------------------------------------------------

def serialize(meta: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """safetensors bytes: tensors sorted by name, metadata with its checksum added."""
    names = sorted(tensors)
    blobs, entries, offset = [], {}, 0
    for name in names:
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        blob = arr.tobytes()
        entries[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    region = b"".join(blobs)
    # Hash exactly what the loader will see: the document after a JSON round trip
    # (tuples become lists, and so on).
    meta = json.loads(_canonical_json({k: v for k, v in meta.items() if k != "checksum"}))
    meta["checksum"] = {"algorithm": "sha256", "value": checksum(meta, entries, region)}
    header = {"__metadata__": {fmt.METADATA_KEY: json.dumps(meta, allow_nan=False, sort_keys=True)}, **entries}
    text = json.dumps(header, allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)          # safetensors aligns the data region to 8 bytes
    return struct.pack("<Q", len(text)) + text + region


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
