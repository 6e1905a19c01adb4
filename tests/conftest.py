import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ORIGINAL = os.path.join(ROOT, "tests", "data", "original_resnetse34l_angleproto")


@pytest.fixture
def original():
    """Paths of the reference data computed by the original 2020 trainer."""
    class Paths:
        root = ORIGINAL
        wav = os.path.join(ORIGINAL, "wav")
        checkpoint = os.path.join(ORIGINAL, "checkpoint.model")
        trials = os.path.join(ORIGINAL, "veri_test.txt")

        @staticmethod
        def file(name):
            return os.path.join(ORIGINAL, name)
    return Paths


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory):
    """make_demo_set with tiny, fast defaults: demo_set(n_train_speakers=..., ...) -> DemoSet.
    Each size is generated once per session and shared by the modules that ask for it."""
    from voxtrainer.data.demo import make_demo_set
    made = {}

    def make(**sizes):
        settings = dict(TINY_DEMO, **sizes)
        key = tuple(sorted(settings.items()))
        if key not in made:
            made[key] = make_demo_set(str(tmp_path_factory.mktemp("demo")), **settings)
        return made[key]
    return make


TINY_DEMO = dict(n_train_speakers=4, n_test_speakers=2, utts_per_speaker=2, utts_per_test_speaker=2,
                 min_duration=1.0, max_duration=1.2, workers=1, verbose=False)


@pytest.fixture(scope="module")
def demo(demo_set):
    """The training tests' demo set: 6 training speakers x 4 utterances, 3 test speakers, files of
    at most 1.5 s, so that a one-epoch run takes seconds."""
    return demo_set(n_train_speakers=6, n_test_speakers=3, utts_per_speaker=4, max_duration=1.5)


def training_flags(demo, save_path, *extra, batch_size=3, max_frames=100):
    """trainSpeakerNet.py flags of a one-epoch run on `demo` with tiny embeddings; `extra` last, so
    it may override any of them."""
    return ["--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path,
            "--test_path", demo.test_path, "--save_path", str(save_path), "--nOut", "32",
            "--max_frames", str(max_frames), "--batch_size", str(batch_size), "--max_epoch", "1",
            "--test_interval", "1", "--nDataLoaderThread", "0", *extra]


def epoch_losses(save_path):
    """The training loss (TLOSS) of every epoch that result/scores.txt under `save_path` records, in
    order (a line of the untrained model's evaluation has none)."""
    with open(os.path.join(save_path, "result", "scores.txt")) as scores:
        return [float(line.split("TLOSS ")[1].split(",")[0]) for line in scores
                if line.startswith("IT ") and "TLOSS " in line]


def copy_run(source, destination):
    """A copy of a training run's folder, without the lock of the run that made it."""
    import shutil
    shutil.copytree(source, destination)
    os.remove(destination / ".lock")
    return destination


def train_killed_and_resumed(command, uninterrupted_path, interrupted_path, killed_after_epoch=2, last_epoch=4,
                             kill_delay=0.3, after_kill=None):
    """Runs `command(save_path)` (a trainSpeakerNet.py process) to the end in one folder, and in
    another kills it with SIGKILL `kill_delay` seconds after model<killed_after_epoch> appears (by
    default early in the next epoch), calls `after_kill(interrupted_path)` if given, then runs it
    again there: the resumed run's stdout. The caller compares the two folders."""
    uninterrupted = subprocess.run(command(uninterrupted_path), capture_output=True, text=True, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    first = subprocess.Popen(command(interrupted_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = os.path.join(interrupted_path, "model", "model%09d.model" % killed_after_epoch)
    deadline = time.time() + 300
    while not os.path.exists(marker) and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    time.sleep(kill_delay)
    first.send_signal(signal.SIGKILL)
    first.wait()
    if after_kill is not None:
        after_kill(interrupted_path)
    assert not os.path.exists(os.path.join(interrupted_path, "model", "model%09d.model" % last_epoch))
    resumed = subprocess.run(command(interrupted_path), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resumed from" in resumed.stdout
    return resumed.stdout


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for tests of small train steps: on a shared CPU, two OpenMP threads that
    spin-wait for each other make them many times slower (see voxtrainer/runtime.py); results do not
    depend on it. Modules opt in with pytestmark = pytest.mark.usefixtures("one_torch_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_one_error_line(stderr, *needles):
    """The trainer's promise for bad input: no traceback, one line `error: ...` (after any progress
    bar cleared with a carriage return) holding every needle."""
    assert "Traceback" not in stderr, stderr
    line = stderr.split("\r")[-1].strip()
    assert line.startswith("error: ") and "\n" not in line, stderr
    for needle in needles:
        assert needle in line, line
    return line
