"""Synthetic speaker-verification demo set in VoxCeleb layout.

    python dataprep.py --demo --save_path data        (the defaults below)
    python -m voxtrainer.data.demo --save_path data --n_train_speakers 100 ...

Real VoxCeleb is hundreds of GB; by default this writes ~50 minutes of
synthetic speech (~100 MB) so the whole pipeline (data loading, training,
EER scoring) can be exercised on a laptop CPU.

Each speaker is a set of voice parameters for a source-filter synthesiser
(glottal pulse train with jitter/shimmer and aspiration noise, shaped by a
time-varying formant envelope). Speaker identity lives only in those
parameters: pitch level, range and contour shape, vocal-tract length
(formant scaling plus personal formant offsets), formant bandwidths,
spectral tilt, breathiness and speaking rate. Everything else varies per
utterance: the random phone sequence ("sentence"), level, additive noise at
a random SNR and colour, a random recording channel (per clip, like a
YouTube video in VoxCeleb) and small day-to-day drift of the speaker's own
parameters. A network therefore has to learn voice characteristics rather
than content or channel.

Layout written under ``<save_path>/demo``::

    train/id00001/clip01/00001.wav   train_list.txt  ("id00001 id00001/clip01/00001.wav")
    test/id10001/clip01/00001.wav    test_list.txt   ("1 id10001/clip01/00001.wav id10001/clip02/00005.wav")

Everything is drawn from numpy Generators seeded by (seed, split, speaker,
role, index), so the same arguments give byte-identical files.
"""

import argparse
import inspect
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import soundfile

from voxtrainer import SAMPLE_RATE
from voxtrainer.data.voices import (draw_channel, draw_speaker_voice, perturb_voice, record, speaker_rng,
                                   synthesize_speech)

TRAIN_SPLIT, TEST_SPLIT = 0, 1
# Stream identifiers so speaker, clip and utterance draws never share a seed.
VOICE_STREAM, CHANNEL_STREAM, UTTERANCE_STREAM, TRIAL_STREAM = 0, 1, 2, 3

# VoxCeleb2 (train) and VoxCeleb1 (test) ids live in different ranges too.
TRAIN_ID_OFFSET, TEST_ID_OFFSET = 1, 10001


@dataclass(frozen=True)
class DemoSet:
    train_list: str
    test_list: str
    train_path: str
    test_path: str


def utterance_relpath(speaker_id, clip, utterance):
    return f"{speaker_id}/clip{clip + 1:02d}/{utterance + 1:05d}.wav"


@dataclass(frozen=True)
class Recipe:
    """Settings shared by every speaker of a set."""
    utts_per_clip: int
    duration_range: tuple
    snr_range_db: tuple
    seed: int


def write_speaker(recipe, root, split, speaker, n_utterances):
    """Synthesise and write one speaker's utterances; returns (speaker_id, relpaths)."""
    id_offset = TRAIN_ID_OFFSET if split == TRAIN_SPLIT else TEST_ID_OFFSET
    speaker_id = f"id{id_offset + speaker:05d}"
    voice = draw_speaker_voice(speaker_rng(recipe.seed, split, speaker, VOICE_STREAM))
    relpaths = []
    for utterance in range(n_utterances):
        clip = utterance // recipe.utts_per_clip
        channel = draw_channel(speaker_rng(recipe.seed, split, speaker, CHANNEL_STREAM, clip))
        rng = speaker_rng(recipe.seed, split, speaker, UTTERANCE_STREAM, utterance)
        n_samples = int(round(rng.uniform(*recipe.duration_range) * SAMPLE_RATE))
        speech = synthesize_speech(rng, perturb_voice(voice, rng), n_samples)
        pcm = record(rng, speech, channel, recipe.snr_range_db)
        relpath = utterance_relpath(speaker_id, clip, utterance)
        os.makedirs(os.path.join(root, os.path.dirname(relpath)), exist_ok=True)
        soundfile.write(os.path.join(root, relpath), pcm, SAMPLE_RATE, subtype="PCM_16")
        relpaths.append(relpath)
    return speaker_id, relpaths


def write_speakers(jobs, workers):
    """Run write_speaker over (recipe, root, split, speaker, n_utterances) jobs, in order."""
    if workers <= 1:
        return [write_speaker(*job) for job in jobs]
    # Every utterance has its own seed, so the process split cannot change the output.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(write_speaker, *zip(*jobs)))


def build_trials(files_by_speaker, rng):
    """All same-speaker pairs, plus as many different-speaker pairs.

    Non-target enrolment files cycle through every test file so each file is
    scored against other speakers too.
    """
    targets = [(1, enrol, test) for files in files_by_speaker.values()
               for enrol, test in itertools.combinations(files, 2)]
    speaker_of = {f: spk for spk, files in files_by_speaker.items() for f in files}
    all_files = list(speaker_of)
    non_targets, seen = [], set()
    attempts = 0
    while len(non_targets) < len(targets) and attempts < 100 * len(targets):
        enrol = all_files[attempts % len(all_files)]
        test = all_files[rng.integers(len(all_files))]
        attempts += 1
        if speaker_of[enrol] == speaker_of[test] or (enrol, test) in seen or (test, enrol) in seen:
            continue
        seen.add((enrol, test))
        non_targets.append((0, enrol, test))
    trials = targets + non_targets
    return [trials[i] for i in rng.permutation(len(trials))]


def make_demo_set(save_path, n_train_speakers=480, n_test_speakers=40, utts_per_speaker=2,
                  utts_per_test_speaker=6, utts_per_clip=4, min_duration=2.0, max_duration=4.0,
                  snr_range_db=(35.0, 45.0), seed=1234, workers=None, verbose=True):
    """Write the demo set under ``<save_path>/demo`` and return its paths.

    The defaults (480 x 2 train utterances, 40 x 6 test utterances of 2-4 s,
    1200 balanced trials) keep an epoch short enough for CPU training while
    giving the embedding many speakers to generalise to unseen ones.
    Utterances are grouped into clips of ``utts_per_clip`` sharing a channel.
    workers: processes to synthesise with (default: up to 2 CPU cores).
    """
    if n_test_speakers < 2 or utts_per_test_speaker < 2:
        raise ValueError("trials need at least 2 test speakers with 2 utterances each")
    started = time.time()
    demo_root = os.path.join(save_path, "demo")
    paths = DemoSet(train_list=os.path.join(demo_root, "train_list.txt"),
                    test_list=os.path.join(demo_root, "test_list.txt"),
                    train_path=os.path.join(demo_root, "train"),
                    test_path=os.path.join(demo_root, "test"))
    recipe = Recipe(utts_per_clip=utts_per_clip, duration_range=(min_duration, max_duration),
                    snr_range_db=tuple(snr_range_db), seed=seed)
    jobs = ([(recipe, paths.train_path, TRAIN_SPLIT, s, utts_per_speaker) for s in range(n_train_speakers)]
            + [(recipe, paths.test_path, TEST_SPLIT, s, utts_per_test_speaker) for s in range(n_test_speakers)])
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    speakers = write_speakers(jobs, workers)

    train_lines = [f"{speaker_id} {relpath}" for speaker_id, relpaths in speakers[:n_train_speakers]
                   for relpath in relpaths]
    test_files = dict(speakers[n_train_speakers:])
    trials = build_trials(test_files, speaker_rng(seed, TEST_SPLIT, 0, TRIAL_STREAM))
    write_lines(paths.train_list, train_lines)
    write_lines(paths.test_list, [f"{label} {enrol} {test}" for label, enrol, test in trials])
    if verbose:
        n_targets = sum(label for label, _, _ in trials)
        print(f"demo set: {len(train_lines)} train files ({n_train_speakers} speakers), "
              f"{sum(map(len, test_files.values()))} test files ({n_test_speakers} speakers), "
              f"{len(trials)} trials ({n_targets} target) in {demo_root} [{time.time() - started:.1f} s]")
    return paths


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))


def main():
    # make_demo_set's signature holds the defaults, so dataprep.py --demo and this agree.
    defaults = {name: p.default for name, p in inspect.signature(make_demo_set).parameters.items()}
    parser = argparse.ArgumentParser(description="Write a synthetic VoxCeleb-style demo set")
    parser.add_argument("--save_path", default="data", help="the set goes to <save_path>/demo")
    for name in ("n_train_speakers", "n_test_speakers", "utts_per_speaker", "utts_per_test_speaker", "seed"):
        parser.add_argument("--" + name, type=int, default=defaults[name])
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    args = parser.parse_args()
    make_demo_set(args.save_path, n_train_speakers=args.n_train_speakers,
                  n_test_speakers=args.n_test_speakers, utts_per_speaker=args.utts_per_speaker,
                  utts_per_test_speaker=args.utts_per_test_speaker, seed=args.seed,
                  workers=args.workers)


if __name__ == "__main__":
    main()
