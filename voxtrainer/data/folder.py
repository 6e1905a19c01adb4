"""Train and test lists from a researcher's own recordings (dataprep.py --make_lists --from_folder DIR):
DIR/<speaker>/**/<file> in wav, flac, mp3 or m4a, at any rate and channel count.

Layout written under OUT (--save_path)::

    OUT/wav/<speaker>/**/<name>.wav   every recording as 16 kHz mono 16-bit wav
    OUT/train_list.txt                `speaker speaker/.../name.wav` (the seed's format)
    OUT/test_list.txt                 `label enrol test`, speakers held out of training

Decisions, and why:

- One root for every path (OUT/wav, the --train_path and --test_path of the printed commands): a
  list has one root. A wav that is already 16 kHz mono 16-bit is not copied but symlinked there
  (copied where the file system has no symlinks); everything else is converted by ffmpeg
  (voxtrainer.data.convert: parallel, written under a temporary name, so an interrupted run is
  resumed by running it again). DIR is only ever read.
- Speakers with a single recording are left out of both lists, and one warning names them all: they
  cannot give a target trial, and the trainer's pair-based losses (angleproto, the printed
  commands' loss, and every loss with nPerSpeaker 2) refuse a speaker with fewer recordings than
  that. Failing instead would stop a whole folder for one short speaker; they are not converted.
- A held-out fraction (--test_speakers 0.2) is rounded and raised to 2 speakers: a test list needs
  two speakers for its non-target trials. At least one speaker is left for training.
- The trials are half target, half non-target (the larger half is non-target for an odd count),
  drawn with random.Random(--seed): the same folder and flags give the same lists. No trial
  compares a file with itself and no pair of files occurs twice (in either order). Asking for more
  trials than the held-out speakers allow writes as many as they allow, balanced, with a warning.

Every problem with the input (no audio, one speaker, paths with spaces, unreadable files, OUT
inside DIR) is a BadInput: one line, exit status 2, naming the files."""

import os
import random
import shlex
from pathlib import Path

from tqdm import tqdm

from voxtrainer.atomic import write_text
from voxtrainer.data.convert import convert_files
from voxtrainer.data.report import BadInput, note
from voxtrainer.reading.lists import UNDECODABLE  # os.walk keeps bytes that are not UTF-8 the same way

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a")
AUDIO_FOLDER = "wav"   # under --save_path: the root of both lists' paths
TARGET_RATE, TARGET_CHANNELS, TARGET_SUBTYPE = 16000, 1, "PCM_16"
PRETRAINED_URL = "http://www.robots.ox.ac.uk/~vgg/data/voxceleb/models/baseline_lite_ap.model"
PARTIAL = ".partial"   # convert.Converter's temporary outputs


def lists_from_folder(folder, save_path, test_speakers, n_trials, seed, workers):
    """Convert or link DIR's recordings into OUT/wav, write OUT/train_list.txt and OUT/test_list.txt
    and print the trainer commands that use them. `test_speakers`: a count (int) or a fraction
    (float below 1) of the speakers to hold out."""
    folder, save_path = Path(folder), Path(save_path)
    root = save_path / AUDIO_FOLDER
    check_folders(folder, save_path, root)
    recordings = find_recordings(folder)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot create {root}: {error.strerror or error} (check --save_path)") from None
    by_speaker = group_by_speaker(recordings)
    single = [speaker for speaker, paths in by_speaker.items() if len(paths) < 2]
    if single:
        note(f"warning: {len(single)} speaker(s) with a single recording left out of both lists (a speaker "
             f"needs two for a target trial and for the pair-based losses): {', '.join(single)}")
        by_speaker = {speaker: paths for speaker, paths in by_speaker.items() if speaker not in single}
        recordings = [path for paths in by_speaker.values() for path in paths]
    if len(by_speaker) < 2:
        raise BadInput(f"{folder}: recordings of only {len(by_speaker)} speaker(s) with two or more recordings "
                       f"({', '.join(by_speaker) or 'none'}); a verifier is trained and tested on several "
                       f"speakers, one folder each")
    # The split is checked before any conversion: a wrong --test_speakers costs no time.
    train, test = split_speakers(by_speaker, test_speakers, seed, folder)
    names = prepare_audio(folder, root, recordings, workers)
    wav_by_speaker = {speaker: [names[path] for path in paths] for speaker, paths in by_speaker.items()}
    trials = make_trials({speaker: wav_by_speaker[speaker] for speaker in test}, n_trials, random.Random(seed))
    train_list, test_list = save_path / "train_list.txt", save_path / "test_list.txt"
    write_text(str(train_list), "".join(f"{speaker} {name}\n" for speaker in train
                                        for name in wav_by_speaker[speaker]))
    write_text(str(test_list), "".join(f"{label} {enrol} {test_file}\n" for label, enrol, test_file in trials))
    n_train_files = sum(len(wav_by_speaker[speaker]) for speaker in train)
    targets = sum(label for label, _, _ in trials)
    print(f"wrote {train_list}: {n_train_files} files of {len(train)} speakers")
    print(f"wrote {test_list}: {len(trials)} trials ({targets} target, {len(trials) - targets} non-target) "
          f"of {len(test)} held-out speakers ({', '.join(test)})")
    print(trainer_commands(train_list, test_list, root, save_path, len(train)))


def check_folders(folder, save_path, root):
    if not folder.is_dir():
        raise BadInput(f"--from_folder {folder}: no such folder")
    source, out, audio = folder.resolve(), save_path.resolve(), root.resolve()
    # OUT inside DIR would be scanned as recordings on the next run; DIR inside OUT/wav would be written into.
    if out == source or source in out.parents or audio in source.parents or audio == source:
        raise BadInput(f"--save_path {save_path} and --from_folder {folder} overlap: choose a --save_path "
                       f"outside the recordings (the recordings are only ever read)")


def find_recordings(folder):
    """Audio files under DIR/<speaker>/ (any depth; hidden files and folders and other files skipped),
    as sorted POSIX paths relative to DIR. Symbolic links are followed, each folder read once (a link
    loop or a second link to a folder already read is skipped with a warning). Files directly in DIR
    (no speaker) and speaker folders without recordings are named in a warning; links to nothing,
    names that are not UTF-8 and paths with spaces (which the lists cannot hold) are a BadInput."""
    found = []
    odd = {"loose": [], "repeated": [], "dangling": [], "not_utf8": [], "spaced": []}
    visited = {os.path.realpath(folder)}
    for current, folders, files in os.walk(folder, followlinks=True):
        relative = Path(current).relative_to(folder)
        folders[:] = folders_to_read(Path(current), relative, folders, visited, odd)
        for name in sorted(files):
            if name.startswith(".") or not (name.lower().endswith(AUDIO_SUFFIXES) or
                                            is_dangling_folder_link(Path(current) / name)):
                continue
            path = (relative / name).as_posix()
            kind = odd_recording(Path(current) / name, relative, path)
            (odd[kind] if kind else found).append(path)
    report_odd_paths(folder, odd)
    if not found:
        raise BadInput(f"{folder}: no recordings ({', '.join(AUDIO_SUFFIXES)}) in speaker folders "
                       f"{folder}/<speaker>/...")
    speakers = {path.split("/", 1)[0] for path in found}
    empty = sorted(name for name in os.listdir(folder) if not name.startswith(".") and name not in speakers
                   and (folder / name).is_dir() and name not in odd["repeated"])
    if empty:
        note(f"warning: {len(empty)} speaker folder(s) without recordings ignored: {shown(empty)}")
    return sorted(found)


def folders_to_read(current, relative, folders, visited, odd):
    """The sorted, non-hidden subfolders of `current` not read before (by their real path); links to
    nothing and folders already read are noted in `odd`."""
    kept = []
    for name in sorted(name for name in folders if not name.startswith(".")):
        path = (relative / name).as_posix()
        real = os.path.realpath(current / name)
        if not os.path.isdir(real):
            odd["dangling"].append(path)
        elif real in visited:
            odd["repeated"].append(path)
        else:
            visited.add(real)
            kept.append(name)
    return kept


def is_dangling_folder_link(path):
    """A link to nothing without a file suffix: os.walk lists it as a file, but it was most likely a
    folder (a speaker moved or unmounted)."""
    return path.is_symlink() and not path.exists() and not path.suffix


def odd_recording(full_path, relative, path):
    """Why the recording at `path` cannot be listed ("loose", "dangling", "not_utf8", "spaced"), or None."""
    if not full_path.exists():
        return "dangling"
    if relative == Path("."):
        return "loose"
    if UNDECODABLE.search(path):
        return "not_utf8"
    if any(char.isspace() for char in path):
        return "spaced"
    return None


def shown(paths):
    """Paths for a message: bytes that are not UTF-8 as \\x escapes."""
    return ", ".join(os.fsencode(path).decode("utf-8", "backslashreplace") for path in paths)


def report_odd_paths(folder, odd):
    """The warnings and the BadInput of find_recordings, from the paths it set aside."""
    if odd["loose"]:
        note(f"warning: {len(odd['loose'])} recording(s) directly in {folder} ignored (no speaker folder): "
             f"{shown(odd['loose'])}")
    if odd["repeated"]:
        note(f"warning: {len(odd['repeated'])} folder(s) skipped, being links to folders already read (or a link "
             f"loop): {shown(odd['repeated'])}")
    if odd["dangling"]:
        raise BadInput(f"{folder}: {len(odd['dangling'])} symbolic link(s) to nothing; fix or remove them: "
                       f"{shown(odd['dangling'])}")
    if odd["not_utf8"]:
        # The lists are UTF-8 text, which the trainer reads (voxtrainer.reading.lists): such a name cannot be written.
        raise BadInput(f"{folder}: {len(odd['not_utf8'])} path(s) are not UTF-8, which the lists are; rename "
                       f"them: {shown(odd['not_utf8'])}")
    if odd["spaced"]:
        # The lists are whitespace-separated: such a path would be read as two fields.
        raise BadInput(f"{folder}: {len(odd['spaced'])} path(s) contain spaces, which the lists cannot hold; rename "
                       f"them: {shown(odd['spaced'])}")


def group_by_speaker(recordings):
    """{speaker: [paths]} in sorted order; the speaker is the first path component (VoxCeleb's convention,
    which the trainer's leakage check relies on too)."""
    by_speaker = {}
    for path in recordings:
        by_speaker.setdefault(path.split("/", 1)[0], []).append(path)
    return dict(sorted(by_speaker.items()))


def output_name(path):
    return str(Path(path).with_suffix(".wav").as_posix())


def prepare_audio(folder, root, recordings, workers):
    """Make OUT/wav/<path>.wav for every recording: a link to a wav that is already right, else an ffmpeg
    conversion; what is there from an earlier run is kept. Returns {recording: name under OUT/wav}."""
    names = {path: output_name(path) for path in recordings}
    clashes = {}
    for path, name in names.items():
        clashes.setdefault(name, []).append(path)
    clashes = [" and ".join(paths) for paths in clashes.values() if len(paths) > 1]
    if clashes:
        raise BadInput(f"{folder}: recordings that would become the same wav: {'; '.join(clashes)}; rename "
                       f"one of each")
    remove_partials(root)
    todo = []
    for path in recordings:
        output = root / names[path]
        if output.is_symlink() and not output.exists():
            output.unlink()   # a link to a recording that moved: made again below
        if not output.exists():
            todo.append(path)
    to_link, to_convert = [], []
    for path in tqdm(todo, desc="check", unit="file", leave=False, disable=len(todo) < 100):
        (to_link if is_ready_wav(folder / path) else to_convert).append(path)
    for path in to_link:
        link_or_copy(folder / path, root / names[path])
    print(f"{len(recordings)} recordings in {folder}: {len(recordings) - len(todo)} already in {root}, "
          f"{len(to_link)} linked (already 16 kHz mono 16-bit wav), {len(to_convert)} to convert")
    for path in to_convert:
        (root / names[path]).parent.mkdir(parents=True, exist_ok=True)
    jobs = [((folder / path).absolute(), root / names[path]) for path in to_convert]
    failures = convert_files(jobs, workers) if jobs else []
    if failures:
        listed = "; ".join(f"{source} ({reason})" for source, reason in failures)
        raise BadInput(f"{len(failures)} of {len(to_convert)} recording(s) could not be read: {listed}; fix or "
                       f"remove them and re-run")
    return names


def remove_partials(root):
    """Temporary outputs of a conversion that was killed: never complete, never listed."""
    for current, _, files in os.walk(root):
        for name in files:
            if name.endswith(PARTIAL):
                (Path(current) / name).unlink(missing_ok=True)


def is_ready_wav(path):
    """Whether the trainer can read `path` as it is: a 16 kHz mono 16-bit wav with samples."""
    if path.suffix.lower() != ".wav":
        return False
    import soundfile
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError, ValueError):   # ffmpeg may still read it; if not, it is listed then
        return False
    return (info.format == "WAV" and info.samplerate == TARGET_RATE and info.channels == TARGET_CHANNELS
            and info.subtype == TARGET_SUBTYPE and info.frames > 0)


def link_or_copy(source, output):
    """A symlink to the (absolute) recording, so OUT/wav costs no space; a copy where links are refused."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f"{output.name}.{os.getpid()}{PARTIAL}")
    try:
        os.symlink(source.absolute(), temporary)
    except OSError:
        import shutil
        shutil.copyfile(source, temporary)
    os.replace(temporary, output)


# ---------------------------------------------------------------------------
# Split and trials


def split_speakers(files_by_speaker, test_speakers, seed, folder):
    """(training speakers, held-out speakers), both sorted; the held-out ones drawn with `seed`."""
    speakers = list(files_by_speaker)
    if isinstance(test_speakers, float):
        count = max(2, round(test_speakers * len(speakers)))
        asked = f"--test_speakers {test_speakers:g} ({count} of {len(speakers)} speakers)"
    else:
        count = test_speakers
        asked = f"--test_speakers {count}"
    if count < 2:
        raise BadInput(f"{asked}: a test list needs at least 2 speakers (non-target trials compare two)")
    if count >= len(speakers):
        raise BadInput(f"{asked}: no speaker of the {len(speakers)} in {folder} (with two or more recordings) "
                       f"would be left for training")
    test = sorted(random.Random(seed).sample(speakers, count))
    return [speaker for speaker in speakers if speaker not in test], test


def make_trials(files_by_speaker, n_trials, rng):
    """[(label, enrol, test)] in a random order: n_trials // 2 target trials (label 1, two recordings of
    one speaker) and the rest non-target (label 0), all pairs distinct."""
    sizes = [len(files) for files in files_by_speaker.values()]
    possible_target = sum(size * (size - 1) // 2 for size in sizes)
    possible_non_target = (sum(sizes) ** 2 - sum(size * size for size in sizes)) // 2
    n_target, n_non_target = n_trials // 2, n_trials - n_trials // 2
    if n_non_target > min(possible_target, possible_non_target):
        n_target = n_non_target = min(possible_target, possible_non_target, n_target)
        note(f"warning: --trials {n_trials}: the held-out speakers give only {possible_target} distinct target "
             f"pairs and {possible_non_target} non-target pairs; writing {2 * n_target} trials, half of each "
             f"(hold out more speakers for more)")
    target = sample_pairs(n_target, possible_target, target_drawer(files_by_speaker, rng),
                          lambda: all_target_pairs(files_by_speaker), rng)
    non_target = sample_pairs(n_non_target, possible_non_target, non_target_drawer(files_by_speaker, rng),
                              lambda: all_non_target_pairs(files_by_speaker), rng)
    trials = [(1, *pair) for pair in target] + [(0, *pair) for pair in non_target]
    rng.shuffle(trials)
    return trials


def sample_pairs(count, possible, draw, enumerate_all, rng):
    """`count` distinct pairs: drawn until enough are new when they are a small part of the `possible`
    ones (no list of every pair, which grows with the square of the files), else sampled from all."""
    if 2 * count >= possible:
        return rng.sample(enumerate_all(), count)
    chosen, order = set(), []
    while len(order) < count:
        pair = draw()
        if pair is not None and pair not in chosen:
            chosen.add(pair)
            order.append(pair)
    return order


def ordered(first, second):
    return (first, second) if first < second else (second, first)


def target_drawer(files_by_speaker, rng):
    """A function drawing one target pair: a speaker as likely as its share of the target pairs, so
    that every pair is equally likely."""
    speakers = list(files_by_speaker)
    weights = [len(files) * (len(files) - 1) for files in files_by_speaker.values()]

    def draw():
        speaker = rng.choices(speakers, weights=weights)[0]
        return ordered(*rng.sample(files_by_speaker[speaker], 2))
    return draw


def non_target_drawer(files_by_speaker, rng):
    """A function drawing one non-target pair, or None when both files are one speaker's (drawn again)."""
    everyone = [(speaker, name) for speaker, files in files_by_speaker.items() for name in files]

    def draw():
        (first_speaker, first), (second_speaker, second) = rng.choice(everyone), rng.choice(everyone)
        return None if first_speaker == second_speaker else ordered(first, second)
    return draw


def all_target_pairs(files_by_speaker):
    return [ordered(files[i], files[j]) for files in files_by_speaker.values()
            for i in range(len(files)) for j in range(i + 1, len(files))]


def all_non_target_pairs(files_by_speaker):
    groups = list(files_by_speaker.values())
    return [ordered(first, second) for i, group in enumerate(groups) for other in groups[i + 1:]
            for first in group for second in other]


# ---------------------------------------------------------------------------
# What to run next


def trainer_commands(train_list, test_list, root, save_path, n_train_speakers):
    """The trainSpeakerNet.py command lines for the new lists, with absolute paths to paste anywhere."""
    def quoted(path):
        return shlex.quote(os.path.abspath(path))
    data = (f"--test_list {quoted(test_list)} --test_path {quoted(root)}")
    experiments = Path(save_path) / "exps"
    return "\n".join([
        "score the pretrained VoxCeleb model on your trials:",
        f"  python ./trainSpeakerNet.py --eval --model ResNetSE34L --trainfunc angleproto --max_frames 300 "
        f"--initial_model {PRETRAINED_URL} {data} --save_path {quoted(experiments / 'pretrained')}",
        "train on your speakers, starting from it (the EER on your trials is printed every --test_interval epochs):",
        f"  python ./trainSpeakerNet.py --model ResNetSE34L --trainfunc angleproto --initial_model {PRETRAINED_URL} "
        f"--batch_size {min(200, n_train_speakers)} --train_list {quoted(train_list)} "
        f"--train_path {quoted(root)} {data} --save_path {quoted(experiments / 'own')}",
    ])
