import os
import sys

import pytest

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
