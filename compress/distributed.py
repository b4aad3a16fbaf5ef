"""Process setup: torchrun/DDP detection, seeds and determinism, and resumable sampling.

Exact resume rests on two things: (1) the sample order of an epoch depends only on (seed, epoch), and a
resumed epoch skips the batches already done (``ResumableSampler``); (2) each sample's augmentation is
drawn from RNGs seeded by (seed, epoch, index) (``SeededDataset``), so it neither depends on nor disturbs
the main process's RNG, whatever the worker count.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda if available else cpu; otherwise as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if world > 1:
        import torch.distributed as dist

        if dev.type == "cuda":
            torch.cuda.set_device(local_rank)
            dev = torch.device("cuda", local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            log.info("joined process group: rank %d of %d on %s", rank, world, dev)
        if rank != 0:  # rank-0-only logging: other ranks report warnings and errors only
            logging.getLogger().setLevel(logging.WARNING)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; with ``deterministic`` also pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (order from seed + epoch, shard per rank) that can start mid-epoch.

    ``set_position(epoch, start_index)`` skips the first ``start_index`` indices of this rank's shard.
    Works without a process group (rank 0 of 1) for single-process runs.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.start_index = 0

    def set_position(self, epoch: int, start_index: int = 0) -> None:
        self.set_epoch(epoch)
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


class SeededDataset:
    """Applies ``ds[i]`` inside RNGs seeded by (seed, epoch, i) (python, numpy, torch).

    Set ``epoch`` before creating each epoch's loader iterator (workers copy the dataset at that point).
    """

    def __init__(self, ds: Any, seed: int) -> None:
        self.ds, self.seed, self.epoch = ds, int(seed), 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        # One 63-bit seed per (seed, epoch, index); MT19937's init_by_array mixes it well for python and
        # numpy, and torch's generator takes all 64 bits.
        s = ((self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + int(i)) % (2**63)
        # In the main process (num_workers=0) python's and torch's RNG states are restored afterwards (cheap).
        # numpy's is left seeded from the last sample: saving it costs ~100 us per sample, and what it then
        # feeds (e.g. timm Mixup's lambda) stays a deterministic, resumable function of (seed, epoch, index).
        main = torch.utils.data.get_worker_info() is None  # workers' RNGs are not used by anything else
        if main:
            py_state, t_state = random.getstate(), torch.get_rng_state()
        random.seed(s)
        np.random.seed([s & 0xFFFFFFFF, s >> 32])
        torch.default_generator.manual_seed(s)
        try:
            return self.ds[i]
        finally:
            if main:
                random.setstate(py_state)
                torch.set_rng_state(t_state)
