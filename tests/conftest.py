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


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for tests of small train steps: on a shared CPU, two OpenMP threads that
    spin-wait for each other make them many times slower (see runtime_env.py); results do not
    depend on it. Modules opt in with pytestmark = pytest.mark.usefixtures("one_torch_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
