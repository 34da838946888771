"""Who does what under ``accelerate launch``: every rank trains and evaluates its share, rank 0
does the rest.

Training goes through ``transformers.Trainer``, which runs on every process of the group that
``accelerate launch`` (torchrun) created. Evaluation (generation and gold loss on dev, test and
the AW anchor) is split by batches over all ranks and gathered (``scd.train.evaluate``), and building
the target cache by items (``scd.stages.distill.cache_stage``). The rest (tokenizer training,
downloads, writing results) runs once, on rank 0, while the other ranks wait at a barrier and
then read what rank 0 wrote. In a plain single process every helper here
is a no-op, so the package behaves exactly as before.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta

import torch

# Rank 0 may generate on dev/test or build a stage for hours while the others wait at a barrier.
WAIT_HOURS = float(os.environ.get("SCD_RANK_WAIT_HOURS", "6"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def state():
    """The process group, created once with a long timeout (before any Trainer creates it with
    its 30-minute default). ``cpu`` must match the Trainer's ``use_cpu``: on a CUDA-less host
    ``PartialState(cpu=False)`` reports one process under torchrun."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=WAIT_HOURS))


def init() -> None:
    if world_size() > 1:
        state()


def barrier() -> None:
    if world_size() > 1:
        state().wait_for_everyone()


@contextmanager
def main_first():
    """Rank 0 runs the block first; the others run it after rank 0 is done (then it only loads)."""
    if world_size() == 1:
        yield
        return
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def my_share(batches: list) -> list:
    """This rank's batches of an evaluation pass (every W-th): each batch is the one a single
    process would form, so its padding, and so every number, is the same."""
    return batches[rank()::world_size()]


def gather_dict(part: dict) -> dict:
    """Every rank's part joined, on every rank (a no-op in one process)."""
    if world_size() == 1:
        return part
    from accelerate.utils import gather_object

    state()
    joined: dict = {}
    for piece in gather_object([part]):
        joined.update(piece)
    return joined


def from_main(compute):
    """``compute()`` run on rank 0 alone, its result sent to every rank (in one process: just run)."""
    if world_size() == 1:
        return compute()
    import torch.distributed as dist

    state()
    box = [None]
    if is_main():
        try:
            box = [(True, compute())]
        except BaseException as exc:  # tell the waiting ranks, or they block until the barrier timeout
            dist.broadcast_object_list([(False, f"{type(exc).__name__}: {exc}")], src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise RuntimeError(f"rank 0 failed while the other ranks waited for its result: {value}")
    return value


def check_global_batch(global_batch: int) -> None:
    """Config batch sizes are global (samples per optimiser step over all ranks), so a run's
    numbers do not depend on how many processes ran it; every rank takes an equal share."""
    w = world_size()
    if global_batch % w:
        raise ValueError(f"config batch_size={global_batch} is not divisible by the world size {w}: choose a "
                         "batch that every process gets an equal share of")
