"""pix2pix training of the generator the runtime runs: a U-Net against a conditional
PatchGAN (or pix2pixHD's multi-scale one), L1 + cGAN loss (+ feature matching), Adam,
constant then linearly decaying learning rate; random crops with flips for training,
whole frames for the sample grids and the evaluation; the result exported through
postfx.export_torch with its config and quality figures.

    result = train(TrainConfig(data=["targets/"], out="ink.safetensors", val="held_out/"))

A run directory (default: OUT with the suffix .run) holds

    checkpoint.pt          the latest checkpoint, replaced atomically (checkpoint.py)
    metrics.jsonl          one line per log interval: step, mean losses, lr, seconds, non-finite steps
    samples/step_N.png     rows of input | output | target on whole frames

Reliability (docs/reliability.md): a kill at any point leaves the last checkpoint, and
resume=True continues bitwise as the uninterrupted run would on CPU (D1, D2); a step
whose loss is NaN / Inf on any process is skipped (no weight, optimizer or norm-buffer
change) and counted, and `max_nonfinite` in a row abort with NonFiniteLoss naming the
step and the last good checkpoint (D3); the data pass a pre-flight check before step 1
(D4, data.py); under torchrun only rank 0 writes, and resume works after a worker died (D6).
"""
from __future__ import annotations

import gc
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dataset import png_bytes
from ..errors import CheckpointError, InputError, NonFiniteLoss, TrainingDataError, TrainingError
from ..files import atomic_write
from ..model import Model
from . import distributed
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import RUNTIME_FIELDS, TrainConfig, check_config
from .data import CropSampler, PairSet, describe_problems, load_folders
from .losses import PairCritic, feature_matching, mean_gan_loss, temporal_loss
from .models import UNetGenerator, build_discriminator, per_scale
from .provenance import init_record, other_look_notice, targets_made_by
from .whole_frames import held_out_quality, sample_grid

# g_l1, g_fm, g_temporal unweighted; g and d the totals
LOSS_NAMES = ("d", "d_real", "d_fake", "g", "g_gan", "g_l1", "g_fm", "g_temporal")
SAMPLE_FRAMES = 3                   # rows in a sample grid
METRICS_NAME, SAMPLES_DIR = "metrics.jsonl", "samples"
MEMORY_FORMAT = torch.channels_last


def load_run_config(run_dir) -> TrainConfig:
    """The config a run directory's checkpoint was trained with (to resume it)."""
    return TrainConfig.from_dict(load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)["config"])


def load_generator(run_dir) -> UNetGenerator:
    """The generator of a run directory's checkpoint, on the CPU in eval mode (e.g. to export it
    with postfx.export_torch, or to compare it with an exported file)."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    generator = UNetGenerator(TrainConfig.from_dict(state["config"]).generator)
    generator.load_state_dict(state["generator"])
    return generator.eval()


# --- the run -------------------------------------------------------------------------------

@dataclass
class TrainResult:
    generator: UNetGenerator        # eval mode, on the training device
    step: int                       # steps done
    run_dir: Path
    model: Model | None             # the exported postfx Model (rank 0, when out was given and the run finished)
    final_losses: dict              # the last metrics line's mean losses
    quality: dict                   # what went into the model file's quality figures
    nonfinite_steps: int            # steps skipped for a NaN / Inf loss
    seconds: float                  # training time, summed over resumes
    rank: int                       # this process under torchrun (0 alone)


def lr_factor(cfg: TrainConfig):
    """The learning-rate multiplier after `done` steps (LambdaLR's argument): 1 for the first
    decay_from x steps, then falling linearly, 1 / (steps - start) at the last step."""
    start = int(round(cfg.decay_from * cfg.steps))

    def factor(done: int) -> float:
        return 1.0 if done < start else max(cfg.steps - done, 0) / max(cfg.steps - start, 1)
    return factor


def _seed_process(*key: int) -> None:
    """Seed this process's global generators from `key` (seed, rank, ...). Dropout draws from
    torch's, so each rank gets its own stream; postfx draws from neither numpy's nor python's,
    but they are seeded too (and checkpointed) so that a library drawing from them cannot make
    two runs of one seed differ."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class Trainer:
    """One process's share of a run. Build it, then run(stop_after)."""

    def __init__(self, cfg: TrainConfig, session: distributed.Session, data: PairSet, val: PairSet | None,
                 progress: bool):
        self.cfg, self.session, self.data, self.val, self.progress = cfg, session, data, val, progress
        self.run_dir = Path(cfg.run_dir)
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        device = session.device
        torch.manual_seed(cfg.seed)                      # the same initial weights on every rank
        # channels-last: oneDNN's convolutions run about twice as fast in it on the CPU (and
        # cuDNN's tensor-core ones want it); the values are the same
        self.generator = UNetGenerator(cfg.generator)
        if cfg.init:
            from .init_model import generator_from_model
            self.generator.load_state_dict(generator_from_model(cfg.init).state_dict())
        self.generator.to(device, memory_format=MEMORY_FORMAT)
        in_pair = cfg.generator.in_channels + cfg.generator.out_channels
        self.discriminator = build_discriminator(cfg.discriminator, in_pair).to(device, memory_format=MEMORY_FORMAT)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, lr_factor(cfg))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lr_factor(cfg))
        self.sampler = CropSampler(data.sizes, cfg.crop, cfg.batch, cfg.seed, session.rank, session.world)
        # The temporal loss draws its own crops, from the pairs whose previous frame is loaded.
        self.consecutive_pairs = data.consecutive if cfg.temporal > 0 else []
        self.temporal_sampler = (CropSampler([data.sizes[i] for i in self.consecutive_pairs], cfg.crop, cfg.batch,
                                             cfg.seed + 1, session.rank, session.world)
                                 if self.consecutive_pairs else None)
        _seed_process(cfg.seed, session.rank)
        self.step = 0
        self.nonfinite_total, self.consecutive = 0, 0
        self.interval = self._new_interval()
        self.last_logged: dict = {}
        self.seconds_before = 0.0
        self.last_checkpoint_step: int | None = None
        self.notes: list[str] = []
        self.bar = None                                  # tqdm, rank 0 while run() runs
        self.started = time.perf_counter()

    @staticmethod
    def _new_interval() -> dict:
        return {"finite": 0, "nonfinite": 0, "sums": {name: 0.0 for name in LOSS_NAMES}}

    # -- checkpoints

    def _state(self) -> dict:
        """This run's state; collective under torchrun (every rank's RNG state is gathered)."""
        rngs = self.session.gather(rng_state(self.session.device))
        return {"step": self.step, "config": asdict(self.cfg),
                "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                "optimizer_g": self.opt_g.state_dict(), "optimizer_d": self.opt_d.state_dict(),
                "scheduler_g": self.sched_g.state_dict(), "scheduler_d": self.sched_d.state_dict(),
                "rng": rngs, "sampler": self.sampler.state_dict(self.step),
                "counters": {"nonfinite_total": self.nonfinite_total, "consecutive": self.consecutive,
                             "interval": self.interval, "last_logged": self.last_logged,
                             "seconds": self.seconds_before + time.perf_counter() - self.started}}

    def save(self) -> None:
        state = self._state()
        if self.session.is_main:
            save_checkpoint(self.checkpoint_path, state)
        self.last_checkpoint_step = self.step

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint of the same run (the caller checked the config)."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["optimizer_g"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        self.sched_g.load_state_dict(state["scheduler_g"])
        self.sched_d.load_state_dict(state["scheduler_d"])
        self.step = self.last_checkpoint_step = int(state["step"])
        counters = state["counters"]
        self.nonfinite_total, self.consecutive = counters["nonfinite_total"], counters["consecutive"]
        self.interval, self.last_logged = counters["interval"], counters["last_logged"]
        self.seconds_before = counters["seconds"]
        rngs = state["rng"]
        if len(rngs) == self.session.world:
            set_rng_state(rngs[self.session.rank], self.session.device)
        else:
            # Another process count draws other crops anyway; seed each rank's streams afresh.
            _seed_process(self.cfg.seed, self.session.rank, self.step)
            self.notes.append(f"resumed at step {self.step} with {self.session.world} processes, checkpointed "
                              f"with {len(rngs)}: the data order differs from an uninterrupted run")
        if self.session.is_main:
            self._truncate_log()
            # what atomic_write leaves when the process dies mid-write
            for stale in self.run_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)

    def _truncate_log(self) -> None:
        """Drop the lines a killed run logged after its last checkpoint (they are logged again),
        and a last line the kill cut short."""
        path = self.run_dir / METRICS_NAME
        if not path.exists():
            return
        kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                if line.endswith("\n") and _line_step(line) <= self.step]
        atomic_write(path, "".join(kept).encode("utf-8"))

    # -- one step

    def _step(self, step: int, generator, critic) -> dict | None:
        """Step `step` on this rank's crops; the mean losses over all ranks, or None when a loss
        was not finite on some rank (then nothing changed: no weights, no optimizer state, no
        norm statistics)."""
        cfg, device = self.cfg, self.session.device
        x, y = self.data.crops(self.sampler.draw(step), cfg.crop, cfg.generator.in_channels)
        x = torch.from_numpy(x).to(device, memory_format=MEMORY_FORMAT)         # (B, C, c, c)
        y = torch.from_numpy(y).to(device, memory_format=MEMORY_FORMAT)         # (B, 3, c, c)
        buffers = [b.detach().clone() for b in self._buffers()]

        if self.temporal_sampler is None:
            fake = generator(x)                                                   # (B, 3, c, c) in [-1, 1]
            g_temporal = torch.zeros((), device=device)
        else:
            draws = [(self.consecutive_pairs[pair], top, left, flip)
                     for pair, top, left, flip in self.temporal_sampler.draw(step)]
            now, before, grid, valid = (torch.from_numpy(a).to(device)
                                        for a in self.data.consecutive_crops(draws, cfg.crop,
                                                                             cfg.generator.in_channels))
            # One forward over all three batches: a module wrapped in DistributedDataParallel
            # takes one forward per backward.
            outputs = generator(torch.cat([x, now.contiguous(memory_format=MEMORY_FORMAT),
                                           before.contiguous(memory_format=MEMORY_FORMAT)]))
            fake, out_now, out_before = outputs.split(len(x))
            g_temporal = temporal_loss(out_now, out_before, now[:, :3], before[:, :3], grid, valid)
        fake_scales, real_scales = critic(x, fake.detach(), y)
        d_fake = mean_gan_loss(fake_scales, False, cfg.gan_loss)
        d_real = mean_gan_loss(real_scales, True, cfg.gan_loss)
        loss_d = 0.5 * (d_fake + d_real)
        # Both losses are formed before either network moves, so a non-finite step can be
        # dropped whole. The generator is judged by the discriminator of the start of the step
        # (simultaneous updates; pix2pix uses the just-updated one).
        self.discriminator.requires_grad_(False)
        try:
            judged = per_scale(self.discriminator(torch.cat([x, fake], 1)))
        finally:
            self.discriminator.requires_grad_(True)
        g_gan = mean_gan_loss(judged, True, cfg.gan_loss)
        g_l1 = F.l1_loss(fake, y)
        g_fm = feature_matching(judged, real_scales) if cfg.feature_matching > 0 else torch.zeros((), device=device)
        loss_g = g_gan + cfg.l1_weight * g_l1 + cfg.feature_matching * g_fm + cfg.temporal * g_temporal

        values = torch.stack([loss_d, d_real, d_fake, loss_g, g_gan, g_l1, g_fm, g_temporal]).detach().float()
        finite = torch.isfinite(values).all()
        # (on the device: nccl reduces CUDA tensors only)
        report = self.session.sum(torch.cat([finite.float()[None], torch.where(finite, values, 0.0)])).cpu()
        if report[0].item() < self.session.world:
            for saved, live in zip(buffers, self._buffers(), strict=True):
                live.copy_(saved)
            return None
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        loss_d.backward()
        loss_g.backward()           # both before either step: the optimizers change weights in place
        self.opt_d.step()
        self.opt_g.step()
        return dict(zip(LOSS_NAMES, (report[1:] / self.session.world).tolist(), strict=True))

    def _buffers(self) -> list[torch.Tensor]:
        return list(self.generator.buffers()) + list(self.discriminator.buffers())

    # -- logging

    def _account(self, step: int, losses: dict | None, lr: float, last: int) -> None:
        interval = self.interval
        if losses is None:
            interval["nonfinite"] += 1
            self.nonfinite_total += 1
            self.consecutive += 1
        else:
            interval["finite"] += 1
            self.consecutive = 0
            for name, value in losses.items():
                interval["sums"][name] += value
        aborting = self.consecutive >= self.cfg.max_nonfinite
        if step % self.cfg.log_every and step != last and not aborting:
            return
        n = interval["finite"]
        self.last_logged = {name: (total / n if n else None) for name, total in interval["sums"].items()}
        line = {"step": step, **self.last_logged, "lr": lr,
                "seconds": round(self.seconds_before + time.perf_counter() - self.started, 3),
                "nonfinite": interval["nonfinite"], "nonfinite_total": self.nonfinite_total,
                "world_size": self.session.world}
        self.interval = self._new_interval()
        if self.session.is_main:
            with open(self.run_dir / METRICS_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            if self.bar is not None:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.last_logged.items()
                                      if v is not None and k in ("d", "g", "g_l1")}, refresh=False)

    def _write_sample(self, step: int) -> None:
        pairs = self.val if self.val is not None else self.data
        grid = sample_grid(self.generator, pairs, range(min(SAMPLE_FRAMES, len(pairs))))
        (self.run_dir / SAMPLES_DIR).mkdir(exist_ok=True)
        atomic_write(self.run_dir / SAMPLES_DIR / f"step_{step:06d}.png", png_bytes(grid))

    # -- the loop

    def run(self, stop_after: int | None) -> None:
        cfg, session = self.cfg, self.session
        last = cfg.steps if stop_after is None else min(stop_after, cfg.steps)
        if session.world > 1:
            ddp = torch.nn.parallel.DistributedDataParallel
            ids = [session.device] if session.device.type == "cuda" else None
            generator, critic = ddp(self.generator, device_ids=ids), ddp(PairCritic(self.discriminator), device_ids=ids)
        else:
            generator, critic = self.generator, PairCritic(self.discriminator)
        self.generator.train()
        self.discriminator.train()
        if self.progress and session.is_main:
            from tqdm import tqdm
            self.bar = tqdm(total=cfg.steps, initial=self.step, unit="step", desc="training", dynamic_ncols=True)
        try:
            while self.step < last:
                step = self.step + 1
                lr = self.opt_g.param_groups[0]["lr"]
                losses = self._step(step, generator, critic)
                self.sched_g.step()
                self.sched_d.step()
                self.step = step
                self._account(step, losses, lr, last)
                if self.bar is not None:
                    self.bar.update(1)
                if self.consecutive >= cfg.max_nonfinite:
                    raise self._nonfinite_error(step)
                # Mid-run checkpoints only follow a finite step: the one an abort names is a good one.
                if step == last or (self.consecutive == 0 and step % cfg.checkpoint_every == 0):
                    self.save()
                if session.is_main and cfg.sample_every and step % cfg.sample_every == 0:
                    self._write_sample(step)
        finally:
            if self.bar is not None:
                self.bar.close()
            if session.world > 1:
                # The DDP wrappers sit in reference cycles: freed by a later garbage collection,
                # possibly at interpreter exit after the process group is gone, where their
                # reducers' gloo work aborts the process. Free them now, while the group lives.
                del generator, critic
                gc.collect()
        self.generator.eval()
        self.generator.to(memory_format=torch.contiguous_format)    # as a module handed to users / the exporter

    def _nonfinite_error(self, step: int) -> NonFiniteLoss:
        if self.last_checkpoint_step is None:
            where, path = "no checkpoint was written yet", None
        else:
            path = str(self.checkpoint_path)
            where = f"the last good checkpoint is {path} (step {self.last_checkpoint_step})"
        return NonFiniteLoss(
            f"step {step}: {self.consecutive} consecutive steps with a NaN / Inf loss ({self.nonfinite_total} in "
            f"all); training stopped and nothing was exported; {where}. Check the data for NaN / Inf, or resume "
            "with a lower learning rate (the log is in metrics.jsonl)", step, path)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


def _line_step(line: str) -> float:
    """The step of a metrics.jsonl line; inf for a line that is not one (it is dropped)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


def _check_resumable(cfg: TrainConfig, state: dict, path: Path) -> None:
    saved = TrainConfig.from_dict(state["config"])
    differences = [f"{f.name}: checkpoint {getattr(saved, f.name)!r}, now {getattr(cfg, f.name)!r}"
                   for f in fields(TrainConfig)
                   if f.name not in RUNTIME_FIELDS and getattr(saved, f.name) != getattr(cfg, f.name)]
    if differences:
        raise CheckpointError(f"{path}: the checkpoint is of another run configuration; resuming needs the same "
                              "values (or start a new run directory):\n  " + "\n  ".join(differences))


def _finite_weights(generator: nn.Module) -> None:
    bad = [name for name, t in generator.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise TrainingError(f"the generator holds NaN / Inf values in {', '.join(bad)}; nothing was exported. "
                            "Resume from an earlier checkpoint with a lower learning rate")


def _preflight(cfg: TrainConfig, data: PairSet | None, val: PairSet | None) -> tuple[PairSet, PairSet | None]:
    """D4: every pair of the training and the held-out data is read before step 1, and all the
    problems of both go into one TrainingDataError."""
    problems = []
    if data is None:
        try:
            data = load_folders(cfg.data, crop=cfg.crop, motion=cfg.temporal > 0)
        except TrainingDataError as e:
            problems += e.problems
    elif cfg.temporal > 0 and not data.consecutive:
        problems.append("the temporal loss needs consecutive frames: load sequence targets with "
                        "load_folders(..., motion=True)")
    elif min(min(size) for size in data.sizes) < cfg.crop:
        problems.append(f"{', '.join(s['name'] for s in data.sources)}: the {cfg.crop} px crop is larger than the "
                        "smallest frame "
                        f"{min(data.sizes, key=min)} (H, W)")
    if val is None and cfg.val:
        try:
            val = load_folders([cfg.val], role="held-out")
        except TrainingDataError as e:
            problems += e.problems
    if problems:
        raise TrainingDataError(describe_problems(problems, "the training and held-out data"), problems)
    return data, val


def train(cfg: TrainConfig, *, data: PairSet | None = None, val: PairSet | None = None, resume: bool = False,
          stop_after: int | None = None, progress: bool = True) -> TrainResult:
    """Train (or, with resume=True, continue from the run directory's checkpoint) and export.

    data / val: pairs already in memory (PairSet.from_arrays); by default cfg.data / cfg.val
    are loaded after the pre-flight check. stop_after: stop after that step, checkpointed,
    to be resumed later (the schedule still runs to cfg.steps). Under torchrun every process
    calls this; rank 0 alone writes, and its result holds the exported model."""
    cfg = check_config(cfg)
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 1):
        raise InputError(f"stop_after must be a whole number >= 1, got {stop_after!r}")
    session = distributed.start(cfg.device)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        result = _train(cfg, session, data, val, resume, stop_after, progress)
        # Rank 0 exports while the others are done: a rank that ended the process group and
        # exited then tore gloo down under its peer (SIGABRT, "terminate called without an
        # active exception"), failing the whole torchrun. All leave together.
        session.wait_for_all()
        return result
    finally:
        torch.set_num_threads(threads)          # process-wide: leave it as the caller had it
        session.close()


def _train(cfg, session, data, val, resume, stop_after, progress) -> TrainResult:
    run_dir = Path(cfg.run_dir)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    state = None
    if resume:
        state = load_checkpoint(checkpoint_path)
        _check_resumable(cfg, state, checkpoint_path)
    elif checkpoint_path.exists():
        raise CheckpointError(f"{checkpoint_path}: this run directory already holds a checkpoint; resume it "
                              "(resume=True, --resume) or pass another run directory")
    data, val = _preflight(cfg, data, val)
    if session.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if notice := other_look_notice(cfg.init, data.sources):
            print(notice, file=sys.stderr)
    trainer = Trainer(cfg, session, data, val, progress)
    if state is not None:
        trainer.restore(state)
    trainer.run(stop_after)

    finished = trainer.step >= cfg.steps
    quality, model = {"final_losses": trainer.last_logged, "nonfinite_steps": trainer.nonfinite_total}, None
    if session.is_main and finished and cfg.out:
        _finite_weights(trainer.generator)
        if val is not None:
            quality.update(held_out_quality(trainer.generator, val))
        model = _export(trainer, quality)
    return TrainResult(trainer.generator, trainer.step, run_dir, model, trainer.last_logged, quality,
                       trainer.nonfinite_total, trainer.seconds(), session.rank)


def _export(trainer: Trainer, quality: dict):
    from postfx.exporters.torch_export import export_torch
    cfg = trainer.cfg
    # Names, counts and content ids, never a path of this machine (the config's paths are
    # replaced by what they named).
    training = {**asdict(cfg), "data": trainer.data.sources, "val": trainer.val.sources if trainer.val else None,
                "out": Path(cfg.out).name, "run_dir": cfg.resolved_run_dir().name,
                "targets": targets_made_by(trainer.data.sources),
                "steps_done": trainer.step, "world_size": trainer.session.world,
                "train_seconds": round(trainer.seconds(), 1), "pairs": len(trainer.data), "torch": torch.__version__,
                "init": init_record(cfg.init),
                "losses": f"{cfg.gan_loss} cGAN + {cfg.l1_weight} x L1"
                          + (f" + {cfg.feature_matching} x feature matching" if cfg.feature_matching else "")
                          + (f" + {cfg.temporal} x temporal" if cfg.temporal else ""),
                "optimizer": f"adam({cfg.beta1}, {cfg.beta2}), lr {cfg.lr} constant for {cfg.decay_from:.0%} "
                             "of the steps, then linear decay", "notes": trainer.notes}
    name = cfg.name or Path(cfg.out).stem
    return export_torch(trainer.generator, cfg.out, name=name, raw=False, training=training, quality=quality)
