"""--compile: training through torch.compile, with a fall-back to eager when compilation fails."""

import random
import sys

import torch
from tqdm import tqdm

from voxtrainer import log
from voxtrainer.errors import first_line
from voxtrainer.training.step import TrainingDiverged, train_step


class CompiledTraining:
    """A model trained through torch.compile (--compile): the same parameters, numerics that differ
    from eager in the last bits (fused kernels). Compilation happens in the first step; if it fails
    there (torch.compile cannot trace the model, a compiler is missing, ...) the model's state and
    the random generators are put back as they were before that step, one warning line says so,
    and training goes on eagerly with the same batch. Checkpoints hold the eager module's state as
    always.

    `mode` is torch.compile's (--compile_mode): "reduce-overhead" records the step in CUDA graphs
    (training crops have a fixed shape, so one graph serves the whole run), a launch per graph
    instead of per kernel; on the CPU there are no CUDA graphs and it compiles as "default"."""

    def __init__(self, model, mode="default", device_type="cpu"):
        self.model = model
        self.cuda_graphs = device_type == "cuda" and mode in ("reduce-overhead", "max-autotune")
        self.compiled = torch.compile(model, mode=None if mode == "default" else mode)
        self.proven = False

    def train(self, mode=True):
        self.model.train(mode)
        return self

    def step(self, data, label, optimizer, scaler, mixedprec, watch=None):
        if self.compiled is None:
            return train_step(self.model, data, label, optimizer, scaler, mixedprec, watch)
        if self.cuda_graphs:  # a new iteration: the graphs' previous outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        if self.proven:
            return train_step(self.compiled, data, label, optimizer, scaler, mixedprec, watch)
        saved = ({name: value.detach().clone() for name, value in self.model.state_dict().items()},
                 random.getstate(), torch.random.get_rng_state(),
                 torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        try:
            result = train_step(self.compiled, data, label, optimizer, scaler, mixedprec, watch)
        except TrainingDiverged:
            raise
        except Exception as error:
            state, python_rng, torch_rng, cuda_rng = saved
            self.model.load_state_dict(state)
            random.setstate(python_rng)
            torch.random.set_rng_state(torch_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
            with tqdm.external_write_mode(file=sys.stderr):  # on a line of its own, not after the progress bar
                log.warning("--compile: torch.compile failed (%s: %s); training without it" % (
                    type(error).__name__, first_line(error)))
            self.compiled = None
            return train_step(self.model, data, label, optimizer, scaler, mixedprec, watch)
        self.proven = True
        return result
