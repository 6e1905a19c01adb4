"""DDP's fast paths (voxtrainer.training.distributed.data_parallel: gradients as bucket views, static graph)
give the same training as plain DistributedDataParallel: two gloo processes on the CPU train the
same steps both ways, and the weights agree."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from voxtrainer.training.distributed import data_parallel
from voxtrainer.network import SpeakerNet
from voxtrainer.plugins import load_plugin
from voxtrainer.training.step import train_step

WORLD = 2
STEPS = 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_both_ways(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    try:
        weights = {}
        for fast in (False, True):
            torch.manual_seed(0)
            net = SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32)
            model = data_parallel(net, torch.device("cpu")) if fast else torch.nn.parallel.DistributedDataParallel(net)
            optimizer = load_plugin("optimizer", "adam")(net.parameters(), lr=0.001)
            scaler = torch.amp.GradScaler("cpu", enabled=False)
            generator = torch.Generator().manual_seed(10 + rank)  # each rank its own batches
            for _ in range(STEPS):
                data = torch.randn(3, 2, 8240, generator=generator) * 3000
                train_step(model, data, torch.arange(3), optimizer, scaler, False)
            weights[fast] = {name: value.detach().clone() for name, value in net.state_dict().items()}
        torch.save(weights, "%s.rank%d" % (out, rank))
    finally:
        torch.distributed.destroy_process_group()


def test_bucket_views_and_static_graph_train_as_plain_ddp(tmp_path):
    out = str(tmp_path / "weights")
    mp.start_processes(train_both_ways, args=(WORLD, free_port(), out), nprocs=WORLD, start_method="spawn")
    ranks = [torch.load("%s.rank%d" % (out, rank), weights_only=True) for rank in range(WORLD)]
    for weights in ranks:
        plain, fast = weights[False], weights[True]
        assert plain.keys() == fast.keys()
        for name in plain:
            torch.testing.assert_close(fast[name], plain[name], rtol=1e-6, atol=1e-7, msg=name)
    # the ranks agree with each other too (the same averaged gradients)
    for name, value in ranks[0][True].items():
        if "num_batches_tracked" not in name and "running" not in name:
            torch.testing.assert_close(ranks[1][True][name], value, rtol=0, atol=0, msg=name)
