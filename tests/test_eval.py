"""Held-out evaluation (postfx.train.evaluate, `postfx eval`): the metrics, the GL
path against the numpy reference, the two baselines, the CLI and what it refuses."""
import json
import math

import numpy as np
import pytest
from PIL import Image

import postfx
from postfx import cli, save_model
from postfx.dataset import render_views
from postfx.errors import InputError
from postfx.exporters.builder import build_model
from postfx.model_format import Layer
from postfx.train.evaluate import ColourTransfer, baselines, compare, evaluate, markdown_table, model_source, row_labels
from postfx.train.metrics import psnr, ssim
from postfx.train.pairs import load_pair, load_targets_index, stylize_dataset

SIZE = (70, 54)         # (W, H): 70 is no multiple of 4, so a depth-2 model pads and crops
VIEWS = 3
MIX_A = np.array([[0.60, 0.30, 0.10], [0.10, 0.70, 0.20], [0.25, 0.10, 0.55]])
MIX_B = np.array([[0.90, 0.00, 0.10], [0.30, 0.50, 0.20], [0.00, 0.40, 0.60]])


def channel_mix(matrix, offset):
    """A global colour change: every pixel's RGB through one affine map."""
    def fn(rgb, depth01):
        y = rgb.astype(np.float64) @ matrix.T + offset
        return np.clip(np.round(y), 0, 255).astype(np.uint8)
    return fn


def fog(rgb, depth01):
    """A depth-dependent look (no global colour map reproduces it): blend toward a haze colour with depth."""
    t = depth01[..., None] ** 0.5
    return np.round(rgb * (1 - t) + np.array([230.0, 220.0, 200.0]) * t).astype(np.uint8)


def unet(depth, ngf, in_channels=4, name=None, seed=0, **extra):
    """The reference U-Net family (postfx.testing.unet) with random weights, built without torch."""
    rng = np.random.default_rng(seed)
    width = [in_channels] + [min(ngf * 2 ** level, 8 * ngf) for level in range(depth)]
    layers, weights = [], {}
    for level in range(1, depth + 1):
        layers.append(Layer(f"enc{level}", "conv2d", (f"enc{level - 1}" if level > 1 else "input",),
                            activation="leaky_relu", negative_slope=0.2, out_channels=width[level],
                            kernel=4, stride=2, padding=1))
        fan_in = 16 * width[level - 1]
        weights[f"enc{level}"] = (rng.standard_normal((width[level], width[level - 1], 4, 4)) / fan_in ** 0.5 * 2,
                                  rng.standard_normal(width[level]) * 0.1)
    for level in range(depth, 0, -1):
        inputs = (f"enc{level}",) if level == depth else (f"dec{level + 1}", f"enc{level}")
        cin = width[level] * len(inputs)
        cout = 3 if level == 1 else width[level - 1]
        layers.append(Layer(f"dec{level}", "conv_transpose2d", inputs, activation="tanh" if level == 1 else "relu",
                            out_channels=cout, kernel=4, stride=2, padding=1))
        weights[f"dec{level}"] = (rng.standard_normal((cin, cout, 4, 4)) / (4 * cin) ** 0.5,
                                  rng.standard_normal(cout) * 0.1)
    return build_model(layers, weights, input_channels=in_channels, output="dec1",
                       name=name or f"unet-d{depth}-ngf{ngf}", **extra)


@pytest.fixture(scope="module")
def data(tmp_path_factory, gl_ctx):
    """Rendered training (seed 0) and held-out (seed 1) views, and targets folders for each filter."""
    root = tmp_path_factory.mktemp("eval")
    train = render_views(root / "train", VIEWS, SIZE, seed=0, progress=False)
    held = render_views(root / "held", VIEWS, SIZE, seed=1, progress=False)
    folders = {"train": train, "held": held}
    for split, src in (("train", train), ("held", held)):
        folders[f"{split}_mix_a"] = stylize_dataset(src, root / f"{split}_mix_a", "mix-a", channel_mix(MIX_A, 20),
                                                    progress=False)
    folders["held_mix_b"] = stylize_dataset(held, root / "held_mix_b", "mix-b", channel_mix(MIX_B, -5),
                                            progress=False)
    folders["held_fog"] = stylize_dataset(held, root / "held_fog", "fog", fog, progress=False)
    folders["root"] = root
    return folders


@pytest.fixture(scope="module")
def model_files(data):
    """Two RGBD U-Nets of depth 1 and 2 as files."""
    paths = []
    for depth in (1, 2):
        path = data["root"] / f"unet-d{depth}.safetensors"
        save_model(unet(depth, 8, seed=depth), path)
        paths.append(path)
    return paths


# --- metrics -------------------------------------------------------------------------

def test_metrics_of_identical_images():
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert ssim(image / 255.0, image) == pytest.approx(1.0, abs=1e-12)      # uint8 and [0, 1] floats agree


def test_psnr_of_known_noise():
    image = np.full((30, 30, 3), 100, np.uint8)
    noisy = image + np.where(np.indices((30, 30, 3)).sum(0) % 2 == 0, 5, -5).astype(np.uint8)   # |error| 5 everywhere
    assert psnr(image, noisy) == pytest.approx(10 * math.log10(255 ** 2 / 25), abs=1e-9)        # 34.15 dB
    assert psnr(image / 255.0, noisy / 255.0) == pytest.approx(psnr(image, noisy), abs=1e-9)
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 0.8, (48, 48, 3))
    scores = [ssim(clean, np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1)) for sigma in (0.01, 0.05, 0.2)]
    assert 1 > scores[0] > scores[1] > scores[2] > 0


def test_ssim_of_flat_images_is_the_luminance_term():
    # For two constant images the variances vanish: SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.3, 0.5
    c1 = 0.01 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((16, 16, 3), a), np.full((16, 16, 3), b)) == pytest.approx(expected, rel=1e-9)


def reference_ssim(a, b) -> float:
    """The hand-written SSIM postfx used before scikit-image's (Wang et al. 2004: 11-tap
    Gaussian, sigma 1.5, K1 0.01, K2 0.03, valid region, mean over channels): the
    reference scikit-image's figures must keep matching, so that reported SSIM stays
    comparable with the figures measured before the switch."""
    a = np.asarray(a, np.float64) / (255.0 if np.asarray(a).dtype == np.uint8 else 1.0)
    b = np.asarray(b, np.float64) / (255.0 if np.asarray(b).dtype == np.uint8 else 1.0)
    taps, sigma = 11, 1.5
    t = np.arange(taps) - (taps - 1) / 2
    kernel = np.exp(-t ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()

    def blur(x):                                                     # separable 'valid' filter along H, then W
        rows = sum(kernel[i] * x[i:x.shape[0] - taps + 1 + i] for i in range(taps))
        return sum(kernel[i] * rows[:, i:rows.shape[1] - taps + 1 + i] for i in range(taps))
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2))
                  / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))).mean())


def test_ssim_agrees_with_the_earlier_reference_on_stylized_frames(data):
    """scikit-image's SSIM against the earlier numpy one, on what eval scores: a style's
    network output against its filter's targets, and the unstylized input against them."""
    model = postfx.load("ink")
    info = load_targets_index(data["held_fog"])
    for index in range(info["count"]):
        rgb, depth, target = load_pair(data["held_fog"], index, info)
        out = postfx.stylize(rgb, (depth * 65535).astype(np.uint16), model=model)
        for image in (out, rgb):
            assert abs(ssim(image, target) - reference_ssim(image, target)) < 1e-9


def test_metrics_refuse_mismatched_or_tiny_images():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))


# --- evaluate: the GL path ----------------------------------------------------------------

def reference_scores(model, folder, use_depth):
    """PSNR / SSIM of the numpy reference's output, quantized as the pass writes it."""
    info = load_targets_index(folder)
    scores = []
    for index in range(info["count"]):
        rgb, depth01, target = load_pair(folder, index, info)
        channels = [rgb.astype(np.float32) / 255.0] + ([depth01[..., None]] if use_depth else [])
        x = np.concatenate(channels, axis=2) * 2 - 1                       # input range [-1, 1]
        y = postfx.run(model, x.astype(np.float32), backend="numpy")
        out = np.round(np.clip((y + 1) / 2, 0, 1) * 255).astype(np.uint8)
        scores.append((psnr(out, target), ssim(out, target)))
    return np.mean([p for p, _ in scores]), np.mean([s for _, s in scores])


def test_rgbd_model_runs_on_the_gl_path_with_depth(data, tmp_path):
    model = unet(2, 8, seed=3)
    result = evaluate(model, data["held_fog"], data["train_mix_a"], runs=2, warmup=1,
                      samples_dir=tmp_path / "samples", samples=2)
    for key in ("psnr_db", "ssim", "filter_ms"):
        assert math.isfinite(result[key]), key
    assert result["network_ms"]["median"] > 0 and result["network_ms"]["runs"] == 2
    assert (result["model"], result["depth"], result["ngf"], result["views"]) == ("unet-d2-ngf8", 2, 8, VIEWS)
    assert result["frame_size"] == list(SIZE) and result["parameters"] == model.parameters
    assert "llvmpipe" in result["renderer"] or "OpenGL" in result["renderer"]
    assert result["style"] == "fog" and result["uses_depth"]

    gl_psnr, gl_ssim = result["psnr_db"], result["ssim"]
    ref_psnr, ref_ssim = reference_scores(model, data["held_fog"], use_depth=True)
    assert gl_psnr == pytest.approx(ref_psnr, abs=0.05) and gl_ssim == pytest.approx(ref_ssim, abs=2e-3)

    # input | network | target sheets of the first views
    assert len(result["samples"]) == 2
    rgb, _, target = load_pair(data["held_fog"], 0)
    sheet = np.asarray(Image.open(result["samples"][0]))
    width = SIZE[0]
    assert sheet.shape == (SIZE[1], 3 * width + 8, 3)
    assert np.array_equal(sheet[:, :width], rgb) and np.array_equal(sheet[:, -width:], target)
    assert psnr(sheet[:, width + 4:2 * width + 4], target) == pytest.approx(result["per_view_psnr_db"][0], abs=1e-9)


def test_depth_reaches_the_network(data):
    """The same RGBD model scored with the view's depth and with a flat depth: the GL
    figure follows the one with the real depth."""
    model = unet(2, 8, seed=3)
    result = evaluate(model, data["held_fog"], runs=1, warmup=0)
    info = load_targets_index(data["held_fog"])
    flat = []
    for index in range(info["count"]):
        rgb, _, target = load_pair(data["held_fog"], index, info)
        x = np.concatenate([rgb / 255.0, np.ones(rgb.shape[:2] + (1,))], axis=2) * 2 - 1
        y = postfx.run(model, x.astype(np.float32), backend="numpy")
        flat.append(psnr(np.round(np.clip((y + 1) / 2, 0, 1) * 255).astype(np.uint8), target))
    with_depth, _ = reference_scores(model, data["held_fog"], use_depth=True)
    assert abs(np.mean(flat) - with_depth) > 0.2, "test model ignores depth; pick another seed"
    assert result["psnr_db"] == pytest.approx(with_depth, abs=0.05)


def test_rgb_model_gets_no_depth(data):
    model = unet(1, 8, in_channels=3, seed=4)
    result = evaluate(model, data["held_fog"], runs=1, warmup=0)
    assert not result["uses_depth"] and result["input_channels"] == ["r", "g", "b"]
    ref_psnr, ref_ssim = reference_scores(model, data["held_fog"], use_depth=False)
    assert result["psnr_db"] == pytest.approx(ref_psnr, abs=0.05)
    assert result["ssim"] == pytest.approx(ref_ssim, abs=2e-3)


# --- baselines -----------------------------------------------------------------------------

def test_colour_transfer_nearly_reproduces_a_global_colour_change(data):
    result = baselines(data["held_mix_a"], data["train_mix_a"])
    transfer, plain = result["colour_transfer"], result["input"]
    assert transfer["psnr_db"] > 45 and transfer["ssim"] > 0.995, transfer
    assert transfer["psnr_db"] > plain["psnr_db"] + 15
    assert transfer["train_views"] == VIEWS and transfer["fitted_on"] == str(data["train_mix_a"])
    assert result["missing"] == {}


def test_colour_transfer_is_fitted_on_training_pairs_only(data):
    """Train with mix A, hold out mix B: the baseline scores what mix A's map scores
    against mix B, not the near-perfect fit it would get from the held-out pairs."""
    result = baselines(data["held_mix_b"], data["train_mix_a"])
    info = load_targets_index(data["held_mix_b"])
    expected = []
    for index in range(info["count"]):
        rgb, depth01, target_b = load_pair(data["held_mix_b"], index, info)
        expected.append(psnr(channel_mix(MIX_A, 20)(rgb, depth01), target_b))
    assert result["colour_transfer"]["psnr_db"] == pytest.approx(np.mean(expected), abs=0.5)
    assert result["colour_transfer"]["psnr_db"] < 35


def test_colour_transfer_without_training_data_is_missing(data):
    result = baselines(data["held_mix_a"])
    assert result["colour_transfer"] is None
    assert "training" in result["missing"]["colour_transfer"]
    assert math.isfinite(result["input"]["psnr_db"])


def test_colour_transfer_round_trips_a_polynomial():
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    target = channel_mix(MIX_B, 10)(rgb, None)
    fitted = ColourTransfer.fit([(rgb, target)], pixels_per_view=2000)
    assert fitted.train_pixels == 2000
    assert np.abs(fitted.apply(rgb).astype(int) - target).max() <= 1


def test_held_out_views_must_not_be_training_views(data, tmp_path):
    same_seed = render_views(tmp_path / "again", VIEWS, SIZE, seed=0, progress=False)
    again = stylize_dataset(same_seed, tmp_path / "again_mix", "mix-a", channel_mix(MIX_A, 20), progress=False)
    for held in (data["train_mix_a"], again):
        with pytest.raises(InputError, match="held-out views would be training views"):
            baselines(held, data["train_mix_a"])


# --- the command line --------------------------------------------------------------------

def test_cli_prints_the_table_and_writes_json(data, model_files, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert cli.main(["eval", str(model_files[1]), str(data["held_mix_a"]), "--train", str(data["train_mix_a"]),
                     "--json", str(out), "--runs", "2", "--warmup", "1"]) == 0
    text = capsys.readouterr().out
    assert "| model | depth | ngf | params | PSNR dB | SSIM |" in text
    row = next(line for line in text.splitlines() if line.startswith("| unet-d2-ngf8 |"))
    results = json.loads(out.read_text(), parse_constant=pytest.fail)          # strict JSON: no NaN / Infinity
    assert len(results) == 1
    r = results[0]
    assert f"| {r['psnr_db']:.2f} | {r['ssim']:.4f} |" in row
    assert f"{r['baselines']['colour_transfer']['psnr_db']:.2f}" in row
    assert r["depth"] == 2 and r["ngf"] == 8 and r["train"] == str(data["train_mix_a"])
    assert "median of 2 frames after 1 warm-up" in text


def test_cli_compare_writes_the_plot(data, model_files, tmp_path, capsys):
    plot, out = tmp_path / "quality.png", tmp_path / "all.json"
    assert cli.main(["eval", str(model_files[0]), str(data["held_fog"]), "--compare", str(model_files[1]),
                     "toon", "--train", str(data["train_mix_a"]), "--plot", str(plot), "--json", str(out),
                     "--runs", "1", "--warmup", "0"]) == 0
    text = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert [(r["model"], r["depth"]) for r in results] == [("unet-d1-ngf8", 1), ("unet-d2-ngf8", 2),
                                                           ("toon", 3)]
    assert len({json.dumps(r["baselines"]) for r in results}) == 1          # one set of baselines for all
    assert all(f"| {r['model']} |" in text for r in results)
    with Image.open(plot) as img:
        assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 200
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10                                                # something was drawn


def test_markdown_table_marks_missing_figures(data):
    result = evaluate(unet(1, 8, seed=1), data["held_mix_a"], runs=1, warmup=0)
    table = markdown_table([result])
    assert "| missing |" in table and table.count("\n") == 2


def test_fine_tunes_of_one_style_get_distinct_rows_and_bundled_styles_no_machine_path(data, tmp_path):
    """Fine-tunes keep their style's name: the table tells them apart by file; a bundled style is
    recorded by name, not by this machine's install folder."""
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    save_model(unet(1, 8, seed=1, name="same"), first)
    save_model(unet(1, 8, seed=2, name="same"), second)
    results = compare([first, second, first], data["held_mix_a"], runs=1, warmup=0)
    table = markdown_table(results)
    assert "| same (first.safetensors) |" in table and "| same (second.safetensors) |" in table
    assert markdown_table(results[:1]).count("| same |") == 1                # a lone name stays plain
    assert row_labels([{"model": "ink", "model_path": "bundled style ink"},
                       {"model": "ink", "model_path": "runs/ink_t.safetensors"}]) == ["ink (bundled)",
                                                                                     "ink (ink_t.safetensors)"]
    assert model_source(postfx.load("ink")) == "bundled style ink"
    assert model_source(postfx.load(first)) == str(first)


# --- what it refuses ------------------------------------------------------------------------

def test_missing_folder_is_a_typed_error(data, model_files, tmp_path, capsys):
    with pytest.raises(InputError, match="does not exist"):
        evaluate(model_files[0], tmp_path / "nowhere")
    with pytest.raises(InputError, match="does not exist"):
        evaluate(model_files[0], data["held_mix_a"], tmp_path / "nowhere")
    assert cli.main(["eval", str(model_files[0]), str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(InputError, match="targets.json"):
        evaluate(model_files[0], data["held"])          # a dataset, not a targets folder


def test_model_that_does_not_take_the_pairs_is_refused(data):
    raw = build_model([Layer("enc1", "conv2d", ("input",), out_channels=3, kernel=3, stride=1, padding=1)],
                      {"enc1": (np.zeros((3, 5, 3, 3)), None)}, input_channels=5, output="enc1", raw=True,
                      name="five-in")
    with pytest.raises(InputError, match="five-in"):
        evaluate(raw, data["held_mix_a"])
    with pytest.raises(InputError, match="five-in"):
        compare([unet(1, 8), raw], data["held_mix_a"])


def test_frames_too_small_for_ssim_are_refused(data, tmp_path):
    tiny = render_views(tmp_path / "tiny", 1, (16, 8), seed=2, progress=False)
    targets = stylize_dataset(tiny, tmp_path / "tiny_mix", "mix-a", channel_mix(MIX_A, 20), progress=False)
    with pytest.raises(InputError, match="16x8.*SSIM"):
        evaluate(unet(1, 8), targets)


def test_target_of_the_wrong_size_is_refused(data, tmp_path):
    import shutil
    broken = data["held_mix_a"].parent / "broken"          # a sibling: the source is found at the same relative path
    shutil.copytree(data["held_mix_a"], broken)
    Image.new("RGB", (SIZE[0] // 2, SIZE[1])).save(broken / "target" / "000001.png")
    with pytest.raises(InputError, match="000001.png.*not the one targets.json recorded"):
        evaluate(unet(1, 8), broken, runs=1, warmup=0)
    shutil.rmtree(broken)


@pytest.mark.parametrize("runs,warmup", [(0, 1), (2, -1), (1.5, 0)])
def test_bad_timing_options_are_refused(data, runs, warmup):
    with pytest.raises(InputError, match="runs"):
        evaluate(unet(1, 8), data["held_mix_a"], runs=runs, warmup=warmup)
