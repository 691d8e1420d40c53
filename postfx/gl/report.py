"""What `postfx info --gl` and `postfx tune` print: the renderer and the limits
and extensions that matter to postfx, the EGL devices, and the kernel of each
conv layer of a model at a frame size (tuned, cached or static)."""
from __future__ import annotations

from pathlib import Path

from .. import model_format as fmt
from .context import is_software
from .dispatch import query_shared_memory_size
from .egl_devices import egl_devices
from .kernel_cache import KernelCache

LIMITS = ("GL_MAX_COMPUTE_WORK_GROUP_COUNT", "GL_MAX_COMPUTE_WORK_GROUP_SIZE",
          "GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS", "GL_MAX_SHADER_STORAGE_BLOCK_SIZE", "GL_MAX_TEXTURE_SIZE",
          "GL_MAX_ARRAY_TEXTURE_LAYERS")
# Extensions worth knowing about when reading a figure or a failure, and why.
EXTENSIONS = {
    "GL_ARB_timer_query": "GPU timer queries (the tuner and the demo time dispatches with them)",
    "GL_KHR_shader_subgroup": "subgroup operations (not used yet)",
    "GL_NV_gpu_shader5": "NVIDIA: fp16 arithmetic types (not used: fp16 is storage only)",
    "GL_AMD_gpu_shader_half_float": "AMD: fp16 arithmetic (not used: fp16 is storage only)",
    "GL_ARB_shader_image_load_formatted": "image loads without a format qualifier",
    "GL_KHR_robustness": "context-loss reporting",
}


def shown_path(path) -> str:
    """A path as the user would type it here: relative when under the working folder
    (so a log kept with results names no machine's folders)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def gl_lines(ctx) -> list[str]:
    info = ctx.info
    lines = [f"renderer:   {info.get('GL_RENDERER', '?')}",
             f"vendor:     {info.get('GL_VENDOR', '?')}",
             f"version:    {info.get('GL_VERSION', '?')}",
             f"CPU renderer (llvmpipe-like): {'yes' if is_software(ctx) else 'no'}"]
    devices = egl_devices()
    lines.append("EGL devices: " + ("; ".join(d.describe() for d in devices) if devices else "none listed"))
    lines += ["", "limits:"]
    shared = query_shared_memory_size()
    values = {name: info.get(name, "?") for name in LIMITS}
    values["GL_MAX_COMPUTE_SHARED_MEMORY_SIZE"] = shared if shared is not None else "? (planned as 32768)"
    width = max(map(len, values))
    for name, value in values.items():
        lines.append(f"  {name:<{width}}  {' '.join(map(str, value)) if isinstance(value, tuple) else value}")
    lines += ["", "extensions:"]
    width = max(map(len, EXTENSIONS))
    for name, why in EXTENSIONS.items():
        lines.append(f"  {name:<{width}}  {'yes' if name in ctx.extensions else 'no ':3}  {why}")
    cache = KernelCache()
    lines += ["", f"kernel cache: {shown_path(cache.path)} ({len(cache.entries)} choices)"]
    return lines


def kernel_lines(network, reports=None) -> list[str]:
    """The kernel of each conv layer of a network at its run size. reports: the
    tuner's LayerReports of that size, when it just ran."""
    run_h, run_w = network.run_size
    lines = [f"kernels of {network.model.name!r} at run size {run_w}x{run_h} "
             f"({'fp16' if network.fp16 else 'fp32'} storage, kernels={network.kernels!r}):"]
    by_layer = {r.layer: r for r in reports or ()}
    width = max((len(name) for name in network.choices), default=5)
    for layer in network.model.graph.layers:
        if layer.op not in fmt.CONV_OPS:
            continue
        choice = network.choices[layer.name]
        report = by_layer.get(layer.name)
        how = "" if report is None else f"  [{report.source}]"
        if report is not None and report.seconds is not None:
            how += f"  {report.seconds * 1e3:.3f} ms"
            timed = sorted((s, str(c)) for c, s in report.timings.items() if isinstance(s, float) and c != choice)
            if timed:
                how += f"  (next: {timed[0][1]} {timed[0][0] * 1e3:.3f} ms, {len(report.timings)} tried)"
        lines.append(f"  {layer.name:<{width}}  {choice}{how}")
    return lines
