"""Training configs: plain dataclasses, a comment per field, readable without torch (the
command line builds them before torch is imported). models.py re-exports the model ones."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..errors import CheckpointError, InputError

GENERATOR_NORMS = ("none", "batch")                 # what the exporter can fold
DISCRIMINATOR_NORMS = ("none", "batch", "instance")
DISCRIMINATORS = ("patch", "multiscale")
GAN_LOSSES = ("vanilla", "lsgan")


@dataclass
class UNetConfig:
    depth: int = 4              # levels down (= levels up); frames are padded to a multiple of 2**depth
    ngf: int = 16               # channels at the first level; doubled per level, capped at 8 * ngf
    in_channels: int = 4        # 4 = RGB + depth, 3 = RGB only
    out_channels: int = 3       # RGB
    norm: str = "none"          # "none" or "batch" (folded into the convs at export)
    dropout: float = 0.0        # dropout on the deepest decoder levels (pix2pix uses 0.5); identity at eval

    def width(self, level: int) -> int:
        """Channels produced by encoder level `level` (1-based)."""
        return min(self.ngf * 2 ** (level - 1), 8 * self.ngf)


@dataclass
class DiscriminatorConfig:
    kind: str = "patch"     # "patch": one PatchGAN (pix2pix); "multiscale": `scales` PatchGANs (pix2pixHD)
    ndf: int = 64           # channels of the first conv (pix2pix's C64); doubled per layer, capped at 8 * ndf
    layers: int = 3         # stride-2 convs before the two stride-1 ones; 3 = pix2pix's 70x70 receptive field
    norm: str = "batch"     # "batch", "instance" or "none"; the first conv never has one (pix2pix)
    scales: int = 3         # multiscale only: scale k sees the pair average-pooled k - 1 times (1x, 1/2, 1/4 ...)

    def width(self, level: int) -> int:
        """Channels produced by conv `level` (1-based)."""
        return min(self.ndf * 2 ** (level - 1), 8 * self.ndf)

    def receptive_field(self) -> int:
        """Pixels a side of the input patch one output logit sees (70 for layers=3)."""
        field = 1
        for stride in reversed([2] * self.layers + [1, 1]):     # every conv is 4x4
            field = (field - 1) * stride + 4
        return field

    def min_input(self) -> int:
        """Smallest square input (of the full-resolution pair) that leaves every scale a
        logit map of at least 1x1: each stride-2 conv halves, each stride-1 conv loses a pixel."""
        side = 3 * 2 ** self.layers
        return side * 2 ** (self.scales - 1) if self.kind == "multiscale" else side


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # targets folders (`postfx dataset stylize`); their pairs are pooled
    out: str | None = None          # the model file written at the end; None: train and checkpoint only
    val: str | None = None          # held-out targets folder: PSNR / SSIM of whole frames in the file's quality
    run_dir: str | None = None      # checkpoint, metrics.jsonl, samples/; default: OUT with the suffix .run
    name: str | None = None         # the model's name in its file; default: OUT's stem
    generator: UNetConfig = field(default_factory=UNetConfig)    # depth, ngf, norm, dropout, in_channels 4 / 3
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)   # patch / multiscale, ndf
    crop: int = 128                 # px, side of the square random training crops; a multiple of 2**depth
    batch: int = 8                  # crops per step per process (under torchrun the global batch is batch x processes)
    steps: int = 10000              # optimizer steps (each updates the discriminator and the generator once)
    lr: float = 2e-4                # Adam learning rate of both networks (pix2pix)
    beta1: float = 0.5              # Adam beta1 (pix2pix)
    beta2: float = 0.999            # Adam beta2
    l1_weight: float = 100.0        # lambda_L1: weight of the L1 distance to the target (pix2pix)
    gan_loss: str = "vanilla"       # "vanilla": BCE on logits (pix2pix); "lsgan": least squares (pix2pixHD)
    feature_matching: float = 0.0   # weight of the discriminator feature-matching L1 (pix2pixHD: 10); 0 = off
    decay_from: float = 0.5         # fraction of the steps at constant lr; after it the lr falls linearly toward 0
    seed: int = 0                   # initial weights, data order, crops and flips, dropout
    device: str = "cpu"             # "cpu", "cuda" or "cuda:N"; under torchrun each process takes cuda:LOCAL_RANK
    threads: int = 0                # torch CPU threads per process; 0 = torch's default
    checkpoint_every: int = 500     # steps between checkpoints (and one at the end)
    sample_every: int = 500         # steps between sample grids; 0 = none
    log_every: int = 10             # steps per line of metrics.jsonl (and per progress-bar update)
    max_nonfinite: int = 10         # consecutive steps with a NaN / Inf loss that abort the run
    temporal: float = 0.0           # weight of the temporal loss on consecutive frames (sequence data); 0 = off
    init: str | None = None         # start the generator from this model file / bundled style (fine-tuning)

    def resolved_run_dir(self) -> Path:
        if self.run_dir:
            return Path(self.run_dir)
        if self.out:
            return Path(self.out).with_suffix(".run")
        raise InputError("pass a run directory (run_dir / --run-dir) or a model file (out / --out) to name one after")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"unknown training config fields {sorted(unknown)}; was the checkpoint written "
                                  "by a newer postfx?")
        return cls(**{**d, "generator": UNetConfig(**d["generator"]),
                      "discriminator": DiscriminatorConfig(**d["discriminator"])})


# Fields a resumed run may change: where things go and how the run is watched, not what it computes.
RUNTIME_FIELDS = ("out", "val", "run_dir", "name", "device", "threads", "checkpoint_every", "sample_every",
                  "log_every", "max_nonfinite")


def _problems(cfg: TrainConfig) -> list[str]:
    g, d = cfg.generator, cfg.discriminator
    problems = []

    def whole(name, value, low):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"{name} must be a whole number >= {low}, got {value!r}")

    for name, low in (("crop", 1), ("batch", 1), ("steps", 1), ("seed", 0), ("threads", 0),
                      ("checkpoint_every", 1), ("sample_every", 0), ("log_every", 1), ("max_nonfinite", 1)):
        whole(name, getattr(cfg, name), low)
    for name, low in (("generator.depth", 1), ("generator.ngf", 1), ("discriminator.ndf", 1),
                      ("discriminator.layers", 1), ("discriminator.scales", 1)):
        whole(name, getattr(g if name.startswith("g") else d, name.split(".")[1]), low)
    if g.in_channels not in (3, 4):
        problems.append(f"generator.in_channels must be 4 (RGB + depth) or 3 (RGB only), got {g.in_channels!r}")
    if g.out_channels != 3:
        problems.append(f"generator.out_channels must be 3 (a style outputs RGB), got {g.out_channels!r}")
    if g.norm not in GENERATOR_NORMS:
        problems.append(f"generator.norm must be one of {GENERATOR_NORMS}, got {g.norm!r}")
    if d.norm not in DISCRIMINATOR_NORMS:
        problems.append(f"discriminator.norm must be one of {DISCRIMINATOR_NORMS}, got {d.norm!r}")
    if d.kind not in DISCRIMINATORS:
        problems.append(f"discriminator.kind must be one of {DISCRIMINATORS}, got {d.kind!r}")
    if cfg.gan_loss not in GAN_LOSSES:
        problems.append(f"gan_loss must be one of {GAN_LOSSES}, got {cfg.gan_loss!r}")
    for name in ("lr", "beta1", "beta2", "l1_weight", "feature_matching", "decay_from", "temporal",
                 "generator.dropout"):
        value = g.dropout if name == "generator.dropout" else getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            problems.append(f"{name} must be a finite number >= 0, got {value!r}")
    if not problems:
        if not 0 <= cfg.beta1 < 1 or not 0 <= cfg.beta2 < 1 or cfg.decay_from > 1 or g.dropout >= 1:
            problems.append("beta1, beta2 and generator.dropout must be below 1 and decay_from at most 1, got "
                            f"{cfg.beta1}, {cfg.beta2}, {g.dropout}, {cfg.decay_from}")
        if cfg.crop % 2 ** g.depth:
            problems.append(f"crop {cfg.crop} is not a multiple of 2**depth = {2 ** g.depth}; the U-Net halves "
                            f"it {g.depth} times (try {max(2 ** g.depth, cfg.crop - cfg.crop % 2 ** g.depth)})")
        if cfg.crop < d.min_input():
            problems.append(f"crop {cfg.crop} is below {d.min_input()} px, the smallest input the {d.kind} "
                            f"discriminator ({d.layers} stride-2 layers, {d.scales if d.kind == 'multiscale' else 1} "
                            "scale(s)) turns into a logit map")
    if not cfg.out and not cfg.run_dir:
        problems.append("pass out (the model file) or run_dir")
    return problems


def check_config(cfg: TrainConfig) -> TrainConfig:
    """The config with its paths made absolute, or InputError listing every bad field."""
    problems = _problems(cfg)
    if problems:
        raise InputError("training config: " + "; ".join(problems))

    def absolute(path):
        return None if path is None else str(Path(path).resolve())
    # init: a file's path made absolute; a bundled style's name (no such file here) stays a name
    init = cfg.init if cfg.init is None or not Path(cfg.init).exists() else absolute(cfg.init)
    return replace(cfg, data=[absolute(p) for p in cfg.data], out=absolute(cfg.out), val=absolute(cfg.val),
                   run_dir=str(cfg.resolved_run_dir().resolve()), init=init)


INHERITED = ("l1_weight", "gan_loss", "feature_matching")   # what fine-tuning takes from the model's own run


def check_init(cfg: TrainConfig, init: str, given: set[str]) -> TrainConfig:
    """cfg with the generator config of the model `init` fine-tunes from, and the losses and
    discriminator its own training used (options given on top still apply); InputError when
    the options `given` on the command line (generator field names) would change the generator."""
    from ..model_file import load
    from .init_model import generator_config
    generator = generator_config(init)
    clashes = [name for name in sorted(given) if name != "dropout"]
    if clashes:
        raise InputError(f"--init {init}: the generator is the model's ({generator}); drop "
                         + ", ".join({"in_channels": "--rgb-only"}.get(name, f"--{name}") for name in clashes))
    training = load(init).meta.get("training") or {}
    inherited = {key: training[key] for key in INHERITED if key in training}
    if isinstance(training.get("discriminator"), dict):
        known = DiscriminatorConfig.__dataclass_fields__
        inherited["discriminator"] = DiscriminatorConfig(**{k: v for k, v in training["discriminator"].items()
                                                            if k in known})
    return replace(cfg, generator=generator, init=init, **inherited)
