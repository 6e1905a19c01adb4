"""--distributed: two gloo processes under torchrun on CPU train one short epoch on a tiny demo set.

Checked: the ranks train on disjoint groups and the same number of steps, their parameters and
buffers are identical after the epoch, only rank 0 writes (one checkpoint, original key format,
one scores.txt), and the distributed evaluation's EER equals a single-process --eval of that
checkpoint. The ranks report what they trained on through the SPEAKERNET_RANK_DUMP debug hook
(voxtrainer.training.distributed.dump_rank_state)."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from conftest import ROOT
from SpeakerNet import SpeakerNet
from voxtrainer.training.distributed import tensor_digest

WORLD = 2
FLAGS = ["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--max_frames", "50",
         "--batch_size", "4", "--nPerSpeaker", "2", "--max_epoch", "1", "--test_interval", "1",
         "--nDataLoaderThread", "0", "--device", "cpu"]


# One intra-op thread here too; the ranks get OMP_NUM_THREADS=1.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demo(demo_set):
    # 8 speakers x 4 utterances = 16 groups of 2: 2-4 batches of 4 speakers, so each rank gets >= 1.
    return demo_set(n_train_speakers=8, n_test_speakers=4, utts_per_speaker=4, utts_per_test_speaker=3,
                    utts_per_clip=2, max_duration=1.5)


def data_flags(demo, save_path):
    return ["--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path,
            "--test_path", demo.test_path, "--save_path", str(save_path)]


def single_process_env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def ddp_run(demo, tmp_path_factory):
    save_path = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
               os.path.join(ROOT, "trainSpeakerNet.py"), "--distributed", *FLAGS, *data_flags(demo, save_path)]
    env = dict(single_process_env(), SPEAKERNET_RANK_DUMP="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    dumps = [json.load(open(save_path / "result" / ("rank%d.json" % rank))) for rank in range(WORLD)]
    return save_path, result, [dump["epochs"]["1"] for dump in dumps]


def test_ranks_train_disjoint_groups_for_the_same_number_of_steps(ddp_run, demo):
    _, _, epochs = ddp_run
    assert epochs[0]["steps"] == epochs[1]["steps"] >= 1
    utterances = [{index for group in epoch["groups"] for index in group} for epoch in epochs]
    assert utterances[0] and utterances[1]
    assert not utterances[0] & utterances[1]
    # Each rank's groups are full batches of 4 speakers x 2 utterances of one speaker each.
    labels = [line.split()[0] for line in open(demo.train_list)]
    for epoch in epochs:
        assert len(epoch["groups"]) == 4 * epoch["steps"]
        assert all(len(group) == 2 and labels[group[0]] == labels[group[1]] for group in epoch["groups"])


def test_parameters_and_buffers_are_identical_across_ranks_after_the_epoch(ddp_run):
    _, _, epochs = ddp_run
    assert epochs[0]["param_sha256"] == epochs[1]["param_sha256"]
    # BatchNorm running statistics too: rank 0's are broadcast before evaluation and saving.
    assert epochs[0]["state_sha256"] == epochs[1]["state_sha256"]


def test_only_rank_0_writes_one_checkpoint_in_the_original_format(ddp_run):
    save_path, result, epochs = ddp_run
    models = sorted(os.listdir(save_path / "model"))
    assert [name for name in models if name.endswith(".model")] == ["model000000001.model"]
    assert "model000000001.state" in models and "model000000001.eer" in models
    state = torch.load(save_path / "model" / "model000000001.model", weights_only=True)
    reference = SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).state_dict()
    assert list(state) == list(reference)  # no "module." prefix, the original key order
    assert all(tensor.is_contiguous() for tensor in state.values())
    # The checkpoint is exactly the state both ranks hold.
    assert tensor_digest(state.items()) == epochs[0]["state_sha256"]
    scores = open(save_path / "result" / "scores.txt").read()
    assert scores.count("IT 1,") == 1 and scores.count("model ResNetSE34L") == 1
    assert result.stdout.count("Evaluating...") == 1  # rank 0 logs, rank 1 is silent


def test_distributed_eer_equals_single_process_eval_of_the_checkpoint(ddp_run, demo, tmp_path):
    save_path, _, _ = ddp_run
    distributed_eer = open(save_path / "model" / "model000000001.eer").read().strip()
    command = [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), "--eval", *FLAGS,
               *data_flags(demo, tmp_path), "--initial_model", str(save_path / "model" / "model000000001.model")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env=single_process_env())
    assert result.returncode == 0, result.stderr[-3000:]
    eer = re.search(r"^EER (\S+)$", result.stdout, re.M).group(1)
    assert float(eer) == pytest.approx(float(distributed_eer), abs=1e-4)


# -- SpeakerNet.evaluateFromList under torch.distributed, directly --------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sharded_scores(rank, world, port, checkpoint, demo, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    try:
        net = SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32)
        net.loadParameters(checkpoint)
        scores, labels, trials = net.evaluateFromList(demo.test_list, test_path=demo.test_path, eval_frames=50,
                                                      progress=False)
        torch.save({"scores": scores, "labels": labels, "trials": trials}, "%s.rank%d" % (out, rank))
    finally:
        torch.distributed.destroy_process_group()


def test_sharded_evaluation_scores_equal_single_process_scores(demo, tmp_path, world=2):
    torch.manual_seed(3)
    net = SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32)
    checkpoint = str(tmp_path / "net.model")
    net.saveParameters(checkpoint)
    expected = net.evaluateFromList(demo.test_list, test_path=demo.test_path, eval_frames=50, progress=False)
    out = str(tmp_path / "scores")
    mp.start_processes(sharded_scores, args=(world, free_port(), checkpoint, demo, out), nprocs=world,
                       start_method="spawn")
    for rank in range(world):
        got = torch.load("%s.rank%d" % (out, rank))
        assert got["labels"] == expected[1] and got["trials"] == expected[2]
        assert got["scores"] == pytest.approx(expected[0], abs=1e-5)
