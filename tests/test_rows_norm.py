"""Reliability B6: a model file declares the normalization semantics its weights were
folded with (provenance.norm, written by the torch exporter: tests/test_export.py
test_B6_*), and the loader refuses any semantics the runtime does not implement.

The files here are real exports (the bundled style, trained with BatchNorm) and
builder files, edited in their metadata with the checksum re-computed, as an
exporter that meant it would write them.
"""
import json
import struct

import numpy as np
import pytest

import postfx
from postfx import errors, model_file
from postfx.exporters.builder import build_model
from postfx.model_file import checksum, serialize
from postfx.model_format import NORM_SEMANTICS, Layer

TINY = [Layer("enc1", "conv2d", ("input",), activation="relu", out_channels=4, kernel=2, stride=2),
        Layer("dec1", "conv_transpose2d", ("enc1",), activation="tanh", out_channels=3, kernel=2, stride=2)]


def tiny_bytes(norm=None) -> bytes:
    rng = np.random.default_rng(6)
    weights = {"enc1": (rng.standard_normal((4, 4, 2, 2)), rng.standard_normal(4)),
               "dec1": (rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(3))}
    provenance = {} if norm is None else {"norm": norm}
    model = build_model(TINY, weights, input_channels=4, output="dec1", provenance=provenance)
    return serialize(model.meta, model.tensors)


def with_norm(data: bytes, norm) -> bytes:
    """The file with provenance.norm replaced (deleted for `...`), checksum re-computed."""
    (n,) = struct.unpack("<Q", data[:8])
    header, region = json.loads(data[8:8 + n]), data[8 + n:]
    meta = json.loads(header["__metadata__"]["postfx"])
    if norm is ...:
        meta["provenance"].pop("norm", None)
    else:
        meta["provenance"]["norm"] = norm
    table = {name: entry for name, entry in header.items() if name != "__metadata__"}
    meta["checksum"]["value"] = checksum(meta, table, region)
    header["__metadata__"]["postfx"] = json.dumps(meta)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + region


@pytest.fixture(scope="module")
def bundled_bytes() -> bytes:
    return model_file.bundled_style_path(model_file.DEFAULT_STYLE).read_bytes()


def test_B6_the_bundled_style_declares_eval_semantics(bundled_bytes):
    model = postfx.load(model_file.DEFAULT_STYLE)
    assert model.meta["provenance"]["norm"]["semantics"] == "eval"
    assert NORM_SEMANTICS == ("eval", "frame")
    # The declaration is what the loader reads: the same file declaring nothing also loads.
    again = model_file.parse_model_bytes(with_norm(bundled_bytes, ...))
    for name, tensor in model.tensors.items():
        np.testing.assert_array_equal(again.tensors[name], tensor)


UNSUPPORTED = ["train", "batch_stats", "instance", "group", "Eval", " eval", "", None, 1, ["eval"]]


@pytest.mark.parametrize("semantics", UNSUPPORTED, ids=repr)
def test_B6_an_unsupported_semantics_is_refused(tmp_path, bundled_bytes, semantics):
    path = tmp_path / "declares.safetensors"
    path.write_bytes(with_norm(bundled_bytes, {"semantics": semantics, "folded_batchnorm": ["enc2_norm"]}))
    with pytest.raises(errors.UnsupportedNormSemantics) as info:
        postfx.load(path)
    message = str(info.value)
    assert str(path) in message and repr(semantics)[:20] in message
    assert "'eval'" in message and "re-export" in message
    assert isinstance(info.value, errors.ModelFormatError)


def test_B6_a_declaration_without_semantics_is_refused(bundled_bytes):
    with pytest.raises(errors.UnsupportedNormSemantics, match="semantics None"):
        model_file.parse_model_bytes(with_norm(bundled_bytes, {"folded_batchnorm": []}))


@pytest.mark.parametrize("norm", ["eval", ["eval"], 3, {"semantics": "eval", "folded_batchnorm": "enc2_norm"},
                                  {"semantics": "eval", "folded_batchnorm": [3]}], ids=repr)
def test_B6_a_malformed_declaration_is_refused(norm):
    with pytest.raises(errors.ModelFormatError, match="provenance.norm"):
        model_file.parse_model_bytes(tiny_bytes(norm), "tiny.safetensors")


@pytest.mark.parametrize("norm", [None, {"semantics": "eval", "folded_batchnorm": []},
                                  {"semantics": "eval", "folded_batchnorm": ["enc2_norm", "dec3_norm"]},
                                  {"semantics": "eval"}], ids=repr)
def test_B6_eval_or_no_declaration_loads(norm):
    model = model_file.parse_model_bytes(tiny_bytes(norm), "tiny.safetensors")
    assert model.meta["provenance"].get("norm") == norm


def test_B6_the_check_sits_behind_the_checksum(bundled_bytes):
    # Damage that happens to spell "train" is reported as damage, not as a norm problem.
    damaged = bundled_bytes.replace(b'\\"semantics\\": \\"eval\\"', b'\\"semantics\\": \\"trai\\"')
    assert damaged != bundled_bytes
    with pytest.raises(errors.ChecksumMismatch):
        model_file.parse_model_bytes(damaged)
