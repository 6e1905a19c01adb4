"""Several processes (torchrun): the environment contract, agreement between ranks, and the
debug record that lets tests check sharding and replica agreement."""

import hashlib
import json
import os

import torch
import torch.distributed as dist

from voxtrainer.errors import InputError

RANK_DUMP_ENV = "SPEAKERNET_RANK_DUMP"


class Distributed:
    """torchrun's environment contract: RANK, WORLD_SIZE, LOCAL_RANK (one process otherwise)."""

    def __init__(self, enabled, use_cuda):
        self.enabled = enabled
        self.rank = int(os.environ.get("RANK", 0)) if enabled else 0
        self.world_size = int(os.environ.get("WORLD_SIZE", 1)) if enabled else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0)) if enabled else 0
        if enabled:
            if "RANK" not in os.environ:
                raise InputError("--distributed: launch with torchrun --nproc_per_node=N trainSpeakerNet.py ...")
            if use_cuda:
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def is_main(self):
        return self.rank == 0

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def world():
    """(rank, world size) of the process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_sharded(compute, items):
    """compute(items) in one process; under torch.distributed each rank computes every
    world-th item and every rank gets the whole result, in item order (a tensor per item)."""
    rank, world_size = world()
    if world_size == 1:
        return compute(items)
    shards = [None] * world_size
    dist.all_gather_object(shards, compute(items[rank::world_size]))
    whole = torch.empty(len(items), *max(shards, key=len).shape[1:])
    for index, part in enumerate(shards):
        if len(part):  # a rank gets no items when there are fewer items than ranks
            whole[index::world_size] = part
    return whole


def data_parallel(net, device, static_graph=True):
    """`net` under DistributedDataParallel with its fast paths: gradients as views of the
    all-reduce buckets (no copy into and out of the buckets, less memory) and, with `static_graph`,
    DDP told that every step uses the same parameters in the same order (true of every network and
    loss here: --freeze_epochs, which changes the set, is refused with --distributed), so that it
    skips the per-step search for unused parameters and can overlap the all-reduce better. The
    gradients are the same as without either (tests/test_ddp_fast_paths.py)."""
    return torch.nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True,
        static_graph=static_graph)


def finite_on_all_ranks(loss):
    """Whether the loss is finite, agreed by every rank: a rank that stopped alone would leave the
    others waiting in the gradient all-reduce."""
    finite = torch.isfinite(loss.detach()).float().reshape(1)
    if world()[1] > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def broadcast_buffers(net):
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them at the
    start of each forward, so after an epoch's last step every rank holds its own last update;
    evaluation must use the values the checkpoint (written by rank 0) holds."""
    for buffer in net.buffers():
        dist.broadcast(buffer, src=0)


def tensor_digest(named_tensors):
    """sha256 of (name, tensor) pairs: names and contiguous CPU bytes, in the order given."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def dump_rank_state(net, sampler, epoch, rank, world_size, result_dir):
    """Debug hook (SPEAKERNET_RANK_DUMP=1): each rank records in result/rank<RANK>.json, per epoch,
    the groups of its sampler shard (train-list line indices, 0-based), its step count, and
    digests of its parameters and of its whole state_dict (tests/test_distributed.py)."""
    path = os.path.join(result_dir, "rank%d.json" % rank)
    record = {"rank": rank, "world_size": world_size, "epochs": {}}
    if os.path.isfile(path):
        with open(path) as handle:
            record = json.load(handle)
    batches = sampler.batches()
    record["epochs"][str(epoch)] = {
        "steps": len(batches),
        "groups": [[int(index) for index in group.utterances] for batch in batches for group in batch],
        "param_sha256": tensor_digest(net.named_parameters()),
        "state_sha256": tensor_digest(net.state_dict().items()),
    }
    with open(path, "w") as handle:
        json.dump(record, handle)
