import os
import sys

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
