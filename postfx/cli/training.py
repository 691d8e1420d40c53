"""`postfx train` (a generator on paired folders) and `postfx export` (a torch
checkpoint or ONNX file to a postfx model)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .text import printable

# --option -> TrainConfig field ("generator.depth": a field of the nested config)
_TRAIN_OPTIONS = {"depth": "generator.depth", "ngf": "generator.ngf", "norm": "generator.norm",
                  "dropout": "generator.dropout", "in_channels": "generator.in_channels",
                  "disc": "discriminator.kind", "ndf": "discriminator.ndf", "disc_layers": "discriminator.layers",
                  "disc_norm": "discriminator.norm", "scales": "discriminator.scales",
                  "fm": "feature_matching", "gan_loss": "gan_loss", "l1": "l1_weight", "steps": "steps",
                  "crop": "crop", "batch": "batch", "lr": "lr", "beta1": "beta1", "decay_from": "decay_from",
                  "seed": "seed", "device": "device", "threads": "threads", "checkpoint_every": "checkpoint_every",
                  "sample_every": "sample_every", "log_every": "log_every", "max_nonfinite": "max_nonfinite",
                  "val": "val", "name": "name", "run_dir": "run_dir", "temporal": "temporal", "init": "init"}


def add_train(subparsers) -> None:
    from ..train.config import DISCRIMINATOR_NORMS, DISCRIMINATORS, GAN_LOSSES, GENERATOR_NORMS, TrainConfig
    cfg = TrainConfig()
    g, d = cfg.generator, cfg.discriminator
    p = subparsers.add_parser(
        "train", help="train a style (pix2pix U-Net + PatchGAN) on targets folders and export it",
        description="Train the generator on random crops of the pairs of the DATA targets folders (`postfx "
                    "dataset stylize`), with checkpoints, a metrics log and sample grids in the run directory, "
                    "then export it to MODEL with its config and quality figures. Every pair is checked before "
                    "step 1. Under torchrun (e.g. `torchrun --nproc_per_node 2 -m postfx train ...`) the "
                    "processes train together with DistributedDataParallel and rank 0 writes the files.")
    p.add_argument("data", nargs="*", metavar="DATA",
                   help="targets folders, pooled (with --resume: default the checkpoint's)")
    p.add_argument("--out", required=True, metavar="MODEL", help="the .safetensors model file written at the end")
    p.add_argument("--val", metavar="DIR", help="held-out targets folder: PSNR / SSIM in the model's metadata")
    p.add_argument("--run-dir", metavar="DIR", help="checkpoint, metrics.jsonl, samples/ (default: MODEL with .run)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run directory's checkpoint (options not given keep its values)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after step N, checkpointed, to resume later")
    p.add_argument("--name", help="the model's name in its file (default: MODEL's stem)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    net = p.add_argument_group("generator")
    net.add_argument("--depth", type=int, help=f"U-Net levels (default {g.depth})")
    net.add_argument("--ngf", type=int, help=f"channels at the first level (default {g.ngf})")
    net.add_argument("--norm", choices=GENERATOR_NORMS, help=f"(default {g.norm}; batch is folded at export)")
    net.add_argument("--dropout", type=float, help=f"dropout on the deepest decoder levels (default {g.dropout})")
    net.add_argument("--rgb-only", dest="in_channels", action="store_const", const=3,
                     help="no depth input (default: RGB + depth)")
    critic = p.add_argument_group("discriminator and losses")
    critic.add_argument("--disc", choices=DISCRIMINATORS, help=f"PatchGAN or multi-scale (default {d.kind})")
    critic.add_argument("--ndf", type=int, help=f"channels of its first conv (default {d.ndf})")
    critic.add_argument("--disc-layers", type=int, help=f"stride-2 convs, 3 = 70x70 patches (default {d.layers})")
    critic.add_argument("--disc-norm", choices=DISCRIMINATOR_NORMS, help=f"(default {d.norm})")
    critic.add_argument("--scales", type=int, help=f"PatchGANs of the multi-scale one (default {d.scales})")
    critic.add_argument("--gan-loss", choices=GAN_LOSSES, help=f"(default {cfg.gan_loss})")
    critic.add_argument("--l1", type=float, help=f"L1 weight lambda (default {cfg.l1_weight:g})")
    critic.add_argument("--fm", type=float, help=f"feature-matching weight (default {cfg.feature_matching:g}; "
                                                 "pix2pixHD uses 10 with --disc multiscale)")
    critic.add_argument("--temporal", type=float, metavar="W",
                        help="weight of the temporal loss: on consecutive frames of sequence targets (`dataset "
                             "render --sequences`), the output may change only as much as the input does "
                             f"(default {cfg.temporal:g}: off)")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--steps", type=int, help=f"optimizer steps (default {cfg.steps})")
    opt.add_argument("--crop", type=int, help=f"px, square training crops (default {cfg.crop})")
    opt.add_argument("--batch", type=int, help=f"crops per step per process (default {cfg.batch})")
    opt.add_argument("--lr", type=float, help=f"Adam learning rate (default {cfg.lr:g})")
    opt.add_argument("--beta1", type=float, help=f"Adam beta1 (default {cfg.beta1:g})")
    opt.add_argument("--decay-from", type=float,
                     help=f"fraction of the steps before the lr decays linearly (default {cfg.decay_from:g})")
    opt.add_argument("--seed", type=int, help=f"(default {cfg.seed})")
    opt.add_argument("--init", metavar="MODEL", help="fine-tune: start the generator from this model file or bundled "
                                                     "style (one `postfx train` wrote): its generator, and unless "
                                                     "given, its losses and discriminator")
    run = p.add_argument_group("run")
    run.add_argument("--device", help=f"cpu, cuda or cuda:N (default {cfg.device})")
    run.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's)")
    run.add_argument("--checkpoint-every", type=int, metavar="N", help=f"(default {cfg.checkpoint_every})")
    run.add_argument("--sample-every", type=int, metavar="N", help=f"0 = no sample grids (default {cfg.sample_every})")
    run.add_argument("--log-every", type=int, metavar="N", help=f"(default {cfg.log_every})")
    run.add_argument("--max-nonfinite", type=int, metavar="K",
                     help=f"consecutive NaN / Inf steps that abort (default {cfg.max_nonfinite})")
    p.set_defaults(run=_cmd_train)


def _train_config(args):
    """TrainConfig from the command line: the options given on top of the defaults, or on top
    of the checkpoint's config with --resume."""
    from dataclasses import replace

    from ..train.config import TrainConfig
    from ..train.trainer import load_run_config
    given = {field: getattr(args, option) for option, field in _TRAIN_OPTIONS.items()
             if getattr(args, option) is not None}
    if args.resume:
        probe = TrainConfig(out=args.out, run_dir=args.run_dir)
        cfg = load_run_config(probe.resolved_run_dir())
    else:
        cfg = TrainConfig()
    cfg = replace(cfg, out=args.out, data=list(args.data) or cfg.data)
    if args.init is not None and not args.resume:
        from ..train.config import check_init
        cfg = check_init(cfg, args.init, {key.split(".")[1] for key in given if key.startswith("generator.")})
    for part in ("generator", "discriminator"):
        nested = {key.split(".")[1]: value for key, value in given.items() if key.startswith(part + ".")}
        cfg = replace(cfg, **{part: replace(getattr(cfg, part), **nested)})
    return replace(cfg, **{key: value for key, value in given.items() if "." not in key})


def _cmd_train(args) -> int:
    from ..train.trainer import train
    cfg = _train_config(args)
    if not cfg.data:
        raise InputError("pass the training data: one or more targets folders written by `postfx dataset stylize`")
    result = train(cfg, resume=args.resume, stop_after=args.stop_after, progress=not args.no_progress)
    if result.rank != 0:
        return 0        # under torchrun rank 0 reports
    steps_per_s = result.step / result.seconds if result.seconds > 0 else float("nan")
    lines = [f"{result.step}/{cfg.steps} steps, {result.seconds:.1f} s of training ({steps_per_s:.2f} steps/s), "
             f"{result.nonfinite_steps} skipped for a non-finite loss; run directory {result.run_dir}"]
    if result.model is not None:
        quality = result.quality
        lines.append(f"-> {cfg.out}: {result.model.parameters:,} parameters"
                     + (f"; held-out PSNR {quality['val_psnr_db']} dB, SSIM {quality['val_ssim']} "
                        f"(input {quality['input_psnr_db']} dB)" if "val_psnr_db" in quality else ""))
    elif result.step < cfg.steps:
        lines.append(f"stopped after step {result.step}; continue with --resume")
    print(printable("\n".join(lines)))
    return 0


_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


def add_export(subparsers) -> None:
    from ..exporters.common import BATCHNORM_CHOICES
    p = subparsers.add_parser(
        "export", help="turn an ONNX graph into a verified postfx model file",
        description="Import an ONNX graph (torch.onnx.export, or any exporter) as a postfx model file: its nodes are "
                    "lowered onto postfx's layers (Conv, ConvTranspose, BatchNormalization, InstanceNormalization, "
                    "Pad, Relu / LeakyRelu / Tanh / Sigmoid, Add, Concat, 2x Resize ...), the result is run "
                    "against the graph itself (onnx.reference) on a probe frame, and only then written; anything "
                    "unsupported is named. Needs the onnx extra (pip install 'postfx[onnx]'), not onnxruntime. "
                    "A torch module is exported from Python with postfx.export_torch.")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX file (external data files are read from its folder)")
    p.add_argument("out", metavar="OUT.safetensors", help="the model file written")
    p.add_argument("--batchnorm", choices=BATCHNORM_CHOICES, default="eval",
                   help="what BatchNormalization means: eval = running statistics, folded into the conv before it "
                        "(default); frame = each frame's own statistics (the pix2pix paper's test time)")
    p.add_argument("--name", help="the model's name in its file (default: OUT's stem)")
    p.add_argument("--input-range", nargs=2, type=float, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="values the network expects for colour 0 and 1 (default -1 1)")
    p.add_argument("--output-range", nargs=2, type=float, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="values the network gives for colour 0 and 1 (default -1 1)")
    p.add_argument("--raw", action="store_true",
                   help="a raw network for postfx.run (channels c0, c1, ...), even one shaped like a style")
    p.add_argument("--probe", metavar="WxH", help="size of the verification frame (default: at least 40 px a side "
                                                  "and not a multiple of the network's pad multiple; a deep U-Net "
                                                  "checks faster at 150x200)")
    p.set_defaults(run=_cmd_export)


def _cmd_export(args) -> int:
    import math
    import time

    from ..errors import ExportError
    suffix = Path(args.model).suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        raise InputError(f"{args.model}: a torch checkpoint holds weights, not the network that uses them, so "
                         "postfx cannot rebuild it from the file alone. Load it into its module class and call "
                         f"postfx.export_torch(module, {args.out!r}) in Python, or torch.onnx.export the module "
                         "and run `postfx export MODEL.onnx OUT.safetensors`")
    if suffix != ".onnx":
        raise InputError(f"{args.model}: postfx export reads ONNX files (.onnx); for a torch module call "
                         "postfx.export_torch in Python")
    if Path(args.model).is_dir():
        raise InputError(f"{args.model}: is a folder; pass the .onnx file")
    for flag, value_range in (("--input-range", args.input_range), ("--output-range", args.output_range)):
        low, high = value_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InputError(f"{flag} {low:g} {high:g}: give two finite values, LO < HI (the values the network "
                             "uses for colour 0 and 1; default -1 1)")
    try:
        from ..exporters.onnx_import import import_onnx
    except ImportError as e:
        raise ExportError(f"postfx export needs the onnx package ({e}); pip install 'postfx[onnx]'") from None
    probe = None
    if args.probe:
        from ..frame_size import parse_size
        width, height = parse_size(args.probe)
        probe = (height, width)
    start = time.perf_counter()
    model = import_onnx(args.model, args.out, batchnorm=args.batchnorm, name=args.name, raw=True if args.raw else None,
                        input_range=tuple(args.input_range), output_range=tuple(args.output_range), probe_size=probe)
    check = model.meta["provenance"]["verification"]
    (height, width), norm = check["probe"], model.meta["provenance"]["norm"]
    folded = f", {len(norm['folded_batchnorm'])} BatchNorm folded" if norm["folded_batchnorm"] else ""
    kept = f", {len(norm['frame_batchnorm'])} BatchNorm per frame" if norm.get("frame_batchnorm") else ""
    channels = [", ".join(model.meta[end]["channels"]) for end in ("input", "output")]
    print(printable(f"{args.model} -> {args.out}: {model.name!r}, {len(model.graph.layers)} layers{folded}{kept}, "
                     f"{model.parameters:,} parameters, {'style' if model.is_style else 'raw network'} "
                     f"({channels[0]} -> {channels[1]}); "
                     f"matches the ONNX graph on a {width}x{height} probe (max |delta| {check['max_abs_error']:.2g}); "
                     f"{time.perf_counter() - start:.1f} s"))
    return 0
