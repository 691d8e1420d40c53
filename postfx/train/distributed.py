"""One process or many: under `torchrun` (WORLD_SIZE > 1 in the environment) the trainer
joins the process group torchrun describes (env:// rendezvous; gloo on CPU, nccl on
CUDA) and wraps its modules in DistributedDataParallel. Rank 0 alone writes files."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import InputError


@dataclass
class Session:
    rank: int                   # this process, 0 .. world - 1
    world: int                  # processes training together
    device: torch.device        # where this process's modules live
    owns_group: bool            # whether this session started the process group (and so ends it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, checkpoints, samples and the model."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `tensor` over all processes (in place, also returned)."""
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather(self, obj) -> list:
        """`obj` of every process, in rank order (picklable objects; a collective call)."""
        if self.world == 1:
            return [obj]
        objects = [None] * self.world
        dist.all_gather_object(objects, obj)
        return objects

    def wait_for_all(self) -> None:
        """Every process waits here for the others (a no-op alone)."""
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def start(device: str) -> Session:
    """This process's session: alone, or one rank of the group torchrun set up."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r}: postfx trains on cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: this torch ({torch.__version__}) sees no CUDA device; "
                         "use --device cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        if dev.type == "cuda" and dev.index is not None:
            torch.cuda.set_device(dev)
        return Session(0, 1, dev, False)
    if dev.type == "cuda":
        # one GPU per process, as torchrun numbers them on each node
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
    return Session(dist.get_rank(), dist.get_world_size(), dev, owns)
