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
from postfx import errors, model_file, styles
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
    return styles.bundled_style_path(styles.DEFAULT_STYLE).read_bytes()


def test_B6_the_bundled_style_declares_eval_semantics(bundled_bytes):
    model = postfx.load(styles.DEFAULT_STYLE)
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


# --- the two BatchNorm semantics: the layers must agree with the declaration ----------

NORMED = [Layer("enc1", "conv2d", ("input",), out_channels=4, kernel=2, stride=2),
          Layer("enc1_norm", "instance_norm", ("enc1",), activation="relu", origin="BatchNorm2d"),
          Layer("dec1", "conv_transpose2d", ("enc1_norm",), activation="tanh", out_channels=3, kernel=2, stride=2)]


def normed_model(norm):
    rng = np.random.default_rng(7)
    weights = {"enc1": (rng.standard_normal((4, 4, 2, 2)), None),
               "enc1_norm": (rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)),
               "dec1": (rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(3))}
    return build_model(NORMED, weights, input_channels=4, output="dec1",
                       provenance={} if norm is None else {"norm": norm})


def test_B6_a_per_frame_batchnorm_loads_under_frame_semantics():
    model = normed_model({"semantics": "frame", "folded_batchnorm": []})
    again = model_file.parse_model_bytes(serialize(model.meta, model.tensors), "frame.safetensors")
    assert again.norm_semantics == "frame"
    x = np.random.default_rng(0).uniform(-1, 1, (16, 12, 4)).astype(np.float32)
    np.testing.assert_array_equal(postfx.run(again, x, backend="numpy"), postfx.run(model, x, backend="numpy"))


@pytest.mark.parametrize("norm", [{"semantics": "eval", "folded_batchnorm": []}, None], ids=["eval", "undeclared"])
def test_B6_a_per_frame_batchnorm_under_eval_semantics_is_a_mismatch(norm):
    # The builder validates what it builds through the loader, so the file cannot even be made.
    with pytest.raises(errors.NormSemanticsMismatch, match="enc1_norm") as info:
        normed_model(norm)
    assert "'frame'" in str(info.value) and "re-export" in str(info.value)
    assert isinstance(info.value, errors.ModelFormatError)


def test_B6_folded_batchnorms_under_frame_semantics_are_a_mismatch():
    with pytest.raises(errors.NormSemanticsMismatch, match="enc2_norm"):
        model_file.parse_model_bytes(tiny_bytes({"semantics": "frame", "folded_batchnorm": ["enc2_norm"]}))


def test_B6_exporting_eval_semantics_of_a_batchnorm_without_running_stats_is_a_mismatch(tmp_path):
    torch = pytest.importorskip("torch")
    from postfx.exporters.torch_export import export_torch
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6, track_running_stats=False),
                              torch.nn.ReLU(), torch.nn.Conv2d(6, 3, 3, padding=1))
    path = tmp_path / "m.safetensors"
    with pytest.raises(errors.NormSemanticsMismatch, match="batchnorm='frame'"):
        export_torch(net, path)
    assert not path.exists()
    model = export_torch(net, path, batchnorm="frame")          # each frame's statistics: what it computes
    assert model.norm_semantics == "frame" and [layer.op for layer in model.graph.layers].count("instance_norm") == 1
    x = np.random.default_rng(1).uniform(-1, 1, (20, 24, 3)).astype(np.float32)
    with torch.no_grad():
        want = net.train()(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(postfx.run(postfx.load(path), x), want, atol=2e-4)
