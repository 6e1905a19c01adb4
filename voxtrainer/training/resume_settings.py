"""The settings that change training, declared once: each is saved in a checkpoint's .state (its
"run" entry) and compared when the run resumes, with what a resume that changes it gets.

REFUSE: the saved network, loss head, optimizer or scheduler state cannot be the new setting's, so
        the run is not resumed (one line naming every such flag and both values).
KEPT:   a value the optimizer's or scheduler's saved state holds and puts back: the run goes on with
        the saved one, and a warning says so (as for --lr, which resume() checks against the
        scheduler's own state, older runs' too).
NEW:    the new value takes effect from the resumed epoch on, and a warning says so.

Left out on purpose: --max_epoch (a run is extended by resuming it with a larger one), the paths
and lists (a moved data set is the same data), the loader's processes and the device (the same
numbers), and --lr (see KEPT). A .state of before a setting was saved lacks it: it is not compared,
so older runs resume without a false alarm."""

from voxtrainer import log
from voxtrainer.errors import InputError

REFUSE, KEPT, NEW = "refuse", "kept", "new"

RESUME_SETTINGS = {
    # the network and its loss head
    "model": REFUSE, "encoder_type": REFUSE, "nOut": REFUSE, "trainfunc": REFUSE, "n_mels": REFUSE,
    "log_input": REFUSE, "protocol": REFUSE, "nClasses": REFUSE, "subcenters": REFUSE, "intertopk": REFUSE,
    "channels": REFUSE, "variant": REFUSE,
    # the optimizer and the schedule: another one's saved state does not fit
    "optimizer": REFUSE, "scheduler": REFUSE,
    # held by the optimizer's or the scheduler's saved state
    "lr_decay": KEPT, "weight_decay": KEPT, "momentum": KEPT, "nesterov": KEPT, "final_lr": KEPT,
    "warmup_epochs": KEPT, "lr_reference_batch": KEPT,
    # the loss
    "margin": NEW, "scale": NEW, "hard_prob": NEW, "hard_rank": NEW, "intertopk_margin": NEW,
    "margin_start_epoch": NEW, "margin_end_epoch": NEW, "initial_margin": NEW, "margin_rise": NEW,
    # the batches and their audio
    "batch_size": NEW, "nPerSpeaker": NEW, "max_frames": NEW, "max_seg_per_spk": NEW, "seed": NEW,
    "augment": NEW, "speed_perturb": NEW, "dither": NEW, "short_crop_padding": NEW,
    "min_train_seconds": NEW, "max_train_seconds": NEW,
    # the steps and the epochs
    "mixedprec": NEW, "compile": NEW, "test_interval": NEW, "freeze_epochs": NEW, "finetune": NEW,
}


def run_settings(values):
    """The entries of `values` (setting name -> value in force) that RESUME_SETTINGS names: what a
    checkpoint's .state saves. A setting absent from `values` (nClasses of a loss without classes)
    is not saved."""
    return {name: values[name] for name in RESUME_SETTINGS if name in values}


def check_resumed_settings(saved, current):
    """InputError naming every REFUSE setting whose value differs between the `saved` run and the
    `current` one; else one warning per differing KEPT or NEW setting. A setting the saved run did
    not record is not compared; one it recorded that this table does not know is refused when it
    differs."""
    differing = [(name, current.get(name), value) for name, value in sorted(saved.items())
                 if current.get(name) != value]
    refused = [(name, new, old) for name, new, old in differing if RESUME_SETTINGS.get(name, REFUSE) == REFUSE]
    if refused:
        raise InputError("cannot resume: %s; use another --save_path for a new run" % "; ".join(
            "--%s %s (the run has %s)" % change for change in refused))
    for name, new, old in differing:
        effect = ("the run goes on with %s, which its saved optimizer/scheduler state holds" % old
                  if RESUME_SETTINGS[name] == KEPT else "the new value is in force from the resumed epoch on")
        log.warning("resuming with --%s %s (the run had %s): %s" % (name, new, old, effect))
