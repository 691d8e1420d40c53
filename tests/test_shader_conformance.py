"""Every program postfx can build, judged by the Khronos reference compiler
(glslangValidator), not only by Mesa's lenient front end: each conv variant x
its tunables x fp32 / fp16 storage over the reference U-Net family (depth 1-6,
ngf 8 / 16 / 32, RGB and RGBD), the PyTorch pix2pix / CycleGAN reference
generators, the bundled styles, instance norm and the weightless ops; pack /
present for every colour encoding and depth mode; the demo scene's shaders and
the benchmark probes. Planned under the shared-memory sizes drivers report
(the 32 KiB minimum, 48 KiB, 64 KiB), since the cooperative kernels' chunk
follows from it. Also: what a real build compiles is inside the catalogue."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import postfx
from postfx import model_format as fmt
from postfx.bench import ceiling
from postfx.gl import catalog, programs
from postfx.gl.dispatch import DeviceLimits
from postfx.testing.unet import reference_layers

GLSLANG = shutil.which("glslangValidator")
SHARED_MEMORY_SIZES = (32768, 49152, 65536)
BATCH = 150                     # files per glslangValidator process


def reference_unet_graphs():
    for depth in range(1, 7):
        for ngf in (8, 16, 32):
            for channels in (3, 4):
                layers, _ = reference_layers(depth, ngf, in_channels=channels)
                yield f"unet d{depth} ngf{ngf} in{channels}", fmt.build_graph(layers, channels, "dec1")


def reference_generator_graphs():
    """The pix2pix / CycleGAN generators' graphs, lowered as the exporter lowers them."""
    torch = pytest.importorskip("torch")
    from postfx.exporters.torch_export import Lowering, trace
    from postfx.testing.generators import resnet_generator, unet_generator
    torch.manual_seed(0)
    nets = [("pix2pix unet 8/64 batchnorm eval", unet_generator(8, 64, "batch"), "eval"),
            ("pix2pix unet 8/64 batchnorm frame", unet_generator(8, 64, "batch"), "frame"),
            ("cyclegan resnet 9 blocks", resnet_generator(9, 64, "instance"), "eval"),
            ("cyclegan resnet 6 blocks batchnorm", resnet_generator(6, 32, "batch"), "eval")]
    for name, net, batchnorm in nets:
        lowering = Lowering(trace(net.eval()), batchnorm)
        yield name, fmt.build_graph(list(lowering.layers.values()), lowering.input_channels(), lowering.output)


def pool_graphs():
    """avg_pool2d under every legal window of kernel <= 5 and both divisors."""
    layers = []
    for k in range(1, 6):
        for s in range(1, 4):
            for p in range(k // 2 + 1):
                if k - s <= 2 * p <= k - 1:
                    for include in (True, False):
                        layers.append(fmt.Layer(f"pool{len(layers)}", "avg_pool2d", (fmt.INPUT_TENSOR,),
                                                kernel=k, stride=s, padding=p, count_include_pad=include))
    for layer in layers:
        yield layer.name, fmt.build_graph([layer], 4, layer.name)


def bundled_style_graphs():
    for name in postfx.bundled_styles():
        yield f"style {name}", postfx.load(name).graph


def scene_programs(gl_ctx, monkeypatch) -> set:
    """The demo scene's vertex / fragment programs, as its renderer specialises them."""
    from postfx.scene import Scene, renderer
    seen = set()
    real = renderer.specialise

    def recording(name, defines):
        seen.add(catalog.program_key(name, defines))
        return real(name, defines)
    monkeypatch.setattr(renderer, "specialise", recording)
    with Scene(gl_ctx, seed=0):
        pass
    return seen | {catalog.program_key("demo_composite.vert", {}), catalog.program_key("demo_composite.frag", {})}


def probe_programs() -> set:
    """The benchmark probes: the ceiling probe as `postfx bench` builds it, and every source
    combination load_path_probe.comp declares (benchmarks/load_paths.py runs some of them)."""
    probes = {catalog.program_key("ceiling_probe.comp", {"CHAINS": c, "LOCAL_SIZE": 64})
              for c in ceiling.CHAIN_COUNTS}
    loads = {catalog.program_key("load_path_probe.comp", {"WEIGHT_SOURCE": w, "INPUT_SOURCE": i, "PRODUCTS": 256})
             for w in range(3) for i in range(5)}
    return probes | loads


def all_programs(gl_ctx, monkeypatch) -> set:
    graphs = [*reference_unet_graphs(), *reference_generator_graphs(), *pool_graphs(),
              *bundled_style_graphs()]
    out = set()
    for shared in SHARED_MEMORY_SIZES:
        limits = DeviceLimits(max_shared_memory=shared, renderer=f"a device with {shared} bytes of shared memory")
        for _, graph in graphs:
            for fp16 in (False, True):
                out |= catalog.network_programs(graph, fp16, limits)
    return out | catalog.pass_programs() | scene_programs(gl_ctx, monkeypatch) | probe_programs()


def validate(batch: list[Path]) -> dict[Path, str]:
    """glslangValidator on some files: {file: its error lines} for each it refuses."""
    result = subprocess.run([GLSLANG, *map(str, batch)], capture_output=True, text=True, timeout=600)
    if result.returncode == 0:
        return {}
    errors, current = {}, None
    names = {str(p): p for p in batch}
    for line in result.stdout.splitlines():
        if line.strip() in names:
            current = names[line.strip()]
        elif current is not None and line.startswith("ERROR"):
            errors[current] = errors.get(current, "") + line + "\n"
    return errors or {batch[0]: result.stdout + result.stderr}


@pytest.mark.skipif(GLSLANG is None, reason="glslangValidator is not installed (scripts/install.sh dev installs it)")
def test_C19_every_program_validates_with_the_reference_compiler(gl_ctx, monkeypatch, capsys):
    programs_to_check = sorted(all_programs(gl_ctx, monkeypatch))
    with tempfile.TemporaryDirectory(prefix="postfx-glslang-") as folder:
        files = {}
        for number, (shader, defines) in enumerate(programs_to_check):
            stem, stage = shader.rsplit(".", 1)
            path = Path(folder) / f"{number:05d}_{stem}.{stage}"
            path.write_text(programs.specialise(shader, dict(defines)), encoding="utf-8")
            files[path] = (shader, defines)
        batches = [list(files)[i:i + BATCH] for i in range(0, len(files), BATCH)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            failures = {}
            for found in pool.map(validate, batches):
                failures.update(found)
    with capsys.disabled():
        print(f"\nglslangValidator: {len(files)} distinct programs checked, {len(failures)} refused")
    report = "\n".join(f"{files[path][0]} {dict(files[path][1])}:\n{log}" for path, log in list(failures.items())[:5])
    assert not failures, f"{len(failures)} of {len(files)} programs refused by glslangValidator; first ones:\n{report}"


def test_C19_what_a_real_build_compiles_is_in_the_catalogue(gl_ctx, monkeypatch):
    """The catalogue is what the runtime plans, not a copy that could drift: every
    program a PostFX build and frame compiles here (each variant, fp16 too) is in it."""
    import numpy as np
    compiled = set()
    real_get = programs.ProgramCache.get

    def recording(self, name, defines, layer=""):
        compiled.add(catalog.program_key(name, defines))
        return real_get(self, name, defines, layer)
    monkeypatch.setattr(programs.ProgramCache, "get", recording)
    model = postfx.load("ink")
    limits = DeviceLimits.of(gl_ctx)
    color = gl_ctx.texture((40, 24), 4, np.full((24, 40, 4), 128, np.uint8).tobytes())
    depth = gl_ctx.depth_texture((40, 24), np.full((24, 40), 0.5, np.float32).tobytes())
    motion = gl_ctx.texture((40, 24), 4, np.zeros((24, 40, 4), np.float32).tobytes(), dtype="f4")
    try:
        for kernels in ("naive", "tiled", "blocked", "cooperative", "optimized"):
            for fp16 in (False, True):
                with postfx.PostFX(gl_ctx, model, kernels=kernels, fp16=fp16) as fx:
                    fx.apply(color, depth, near=0.1, far=100.0)
        for budget in (None, 1e-6):                  # temporal: the network whole, and spread over frames
            with postfx.PostFX(gl_ctx, model, temporal=0.5, frame_budget_ms=budget) as fx:
                for _ in range(2):
                    fx.apply(color, depth, near=0.1, far=100.0, motion_tex=motion)
    finally:
        color.release()
        depth.release()
        motion.release()
    known = catalog.network_programs(model.graph, False, limits) | catalog.network_programs(model.graph, True, limits)
    known |= catalog.pass_programs()
    assert compiled and compiled <= known, f"compiled but not catalogued: {sorted(compiled - known)[:3]}"
