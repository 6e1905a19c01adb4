#!/usr/bin/env python
"""Download, extract and convert the VoxCeleb datasets.

    python dataprep.py --save_path DIR --download --user USER --password PASSWORD
    python dataprep.py --save_path DIR --extract
    python dataprep.py --save_path DIR --convert
    python dataprep.py --make_lists --from_folder RECORDINGS --save_path OUT   (your own recordings)

Resulting layout::

    DIR/voxceleb1/idXXXXX/<clip>/00001.wav   (VoxCeleb1, test data)
    DIR/voxceleb2/idXXXXX/<clip>/00001.wav   (VoxCeleb2, training data; .m4a kept)
    DIR/train_list.txt, DIR/test_list.txt

Every step can be interrupted and re-run: downloads resume, finished files
are skipped, and nothing half-written ever carries its final name.

This script is the command line and the order of the steps; the steps live in voxtrainer.data.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

from voxtrainer.data.archives import extract_all, join_parts
from voxtrainer.data.convert import convert_all, default_workers
from voxtrainer.data.download import Downloader, download_meta_lists, download_parts
from voxtrainer.data.urls import resolve_credentials
from voxtrainer.data.lists import make_train_list, read_fileparts, read_files
from voxtrainer.data.report import DataprepError, note
from voxtrainer.errors import run_command

HERE = Path(__file__).resolve().parent
DEFAULT_FILEPARTS = HERE / "lists" / "fileparts.txt"
DEFAULT_FILES = HERE / "lists" / "files.txt"
DEFAULT_AUGMENT_LIST = HERE / "lists" / "augment.txt"
DEFAULT_LISTS_URL = "http://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/"
INTERRUPTED = "interrupted; re-run the same command to continue where it stopped"


def build_parser():
    parser = argparse.ArgumentParser(description="Download, extract and convert VoxCeleb.")
    parser.add_argument("--save_path", type=Path, default=Path("data"), help="target folder (DIR)")
    steps = parser.add_argument_group("steps (any combination, run in this order)")
    steps.add_argument("--download", action="store_true", help="download the parts and the train/test lists")
    steps.add_argument("--lists_only", action="store_true",
                       help="download only DIR/train_list.txt and DIR/test_list.txt")
    steps.add_argument("--extract", action="store_true",
                       help="join the parts, extract the zips into DIR/voxceleb1 and DIR/voxceleb2")
    steps.add_argument("--convert", action="store_true", help="convert DIR/voxceleb2 m4a files to 16 kHz wav")
    steps.add_argument("--make_lists", action="store_true",
                       help="write DIR/train_list.txt from the converted DIR/voxceleb2 files (with --from_folder: "
                            "train and test lists of your own recordings)")
    steps.add_argument("--from_folder", type=Path, default=None, metavar="RECORDINGS",
                       help="with --make_lists: recordings laid out as RECORDINGS/<speaker>/**/<file> (wav, flac, "
                            "mp3, m4a; any rate and channels) become DIR/wav/**.wav (16 kHz mono; right wavs are "
                            "symlinked), DIR/train_list.txt and DIR/test_list.txt of held-out speakers")
    steps.add_argument("--test_speakers", type=speaker_count, default=0.2,
                       help="with --from_folder: speakers held out for the test list, a number (>= 2) or a "
                            "fraction below 1 (default: %(default)s)")
    steps.add_argument("--trials", type=int, default=1000,
                       help="with --from_folder: test-list trials, half target, half non-target (default: "
                            "%(default)s)")
    steps.add_argument("--seed", type=int, default=0,
                       help="with --from_folder: seed of the held-out speakers and the trials (default: %(default)s)")
    steps.add_argument("--demo", action="store_true",
                       help="write a small synthetic demo set under DIR/demo and do nothing else")
    steps.add_argument("--augment", action="store_true",
                       help="download MUSAN and the simulated room impulse responses, extract them and split "
                            "MUSAN into 5 s pieces (DIR/musan_split, DIR/RIRS_NOISES/simulated_rirs)")
    auth = parser.add_argument_group("credentials (else $VOXCELEB_USER/$VOXCELEB_PASSWORD, else a prompt)")
    auth.add_argument("--user", help="VoxCeleb user name")
    auth.add_argument("--password", help="VoxCeleb password (visible in the process list: prefer the "
                                         "environment variable or the prompt)")
    sources = parser.add_argument_group("sources")
    sources.add_argument("--fileparts", type=Path, default=DEFAULT_FILEPARTS,
                         help="list of 'url md5' to download (default: %(default)s)")
    sources.add_argument("--files", type=Path, default=DEFAULT_FILES,
                         help="list of 'parts-glob joined.zip md5' to join (default: %(default)s)")
    sources.add_argument("--lists_url", default=DEFAULT_LISTS_URL,
                         help="where train_list.txt and veri_test.txt are (default: %(default)s)")
    sources.add_argument("--augment_list", type=Path, default=DEFAULT_AUGMENT_LIST,
                         help="list of 'url md5' of the --augment archives (default: %(default)s)")
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument("--retries", type=int, default=5, help="retries per file (default: %(default)s)")
    tuning.add_argument("--retry_wait", type=float, default=float(os.environ.get("DATAPREP_RETRY_WAIT", 5)),
                        help="first back-off in seconds, doubled per retry (default: %(default)s, "
                             "or $DATAPREP_RETRY_WAIT)")
    tuning.add_argument("--timeout", type=float, default=60, help="network timeout in seconds")
    tuning.add_argument("--keep_parts", action="store_true", help="keep the parts after joining them")
    tuning.add_argument("--workers", type=int, default=default_workers(),
                        help="parallel ffmpeg processes (default: all cores, %(default)s)")
    return parser


def speaker_count(text):
    """--test_speakers: a whole number of speakers, or a fraction of them (0 < x < 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of speakers nor a fraction") from None
    if value.is_integer() and value >= 1:
        return int(value)
    if 0 < value < 1:
        return value
    raise argparse.ArgumentTypeError(f"{text!r}: give a number of speakers (>= 2) or a fraction (0 < x < 1)")


# ---------------------------------------------------------------------------
# The steps


def make_downloader(args, credentials):
    return Downloader(credentials, args.retries, args.retry_wait, args.timeout)


def download(args):
    if args.lists_only:
        downloader = make_downloader(args, resolve_credentials(args.user, args.password, prompt=False))
        download_meta_lists(args.save_path, args.lists_url, downloader)
        return
    fileparts = read_fileparts(args.fileparts)
    groups = read_files(args.files) if args.files.exists() else []
    downloader = make_downloader(args, resolve_credentials(args.user, args.password, prompt=True))
    download_parts(args.save_path, fileparts, groups, downloader)
    try:
        download_meta_lists(args.save_path, args.lists_url, downloader)
    except DataprepError as err:
        # The parts are what matters; a missing list can be rebuilt with --make_lists.
        note(f"warning: {err}")


def extract(args):
    join_parts(args.save_path, read_files(args.files), args.keep_parts)
    extract_all(args.save_path)


def convert(args):
    convert_all(args.save_path, args.workers)


def make_lists(args):
    if args.from_folder is not None:
        from voxtrainer.data.folder import lists_from_folder   # soundfile only for this step
        # It creates --save_path itself, once it has checked that the folder is not inside the recordings.
        lists_from_folder(args.from_folder, args.save_path, args.test_speakers, args.trials, args.seed, args.workers)
        return
    make_train_list(args.save_path)


def augment(args):
    # Imported only when asked for, like the demo set: the VoxCeleb steps need neither numpy nor soundfile.
    from voxtrainer.data.musan import prepare_augmentation
    # OpenSLR needs no login: the VoxCeleb credentials are not sent there.
    prepare_augmentation(args.save_path, args.augment_list, make_downloader(args, None), args.workers)


def demo(args):
    from voxtrainer.data.demo import make_demo_set
    make_demo_set(args.save_path)


# (flags that ask for the step, step), in the order the steps run. --demo runs alone.
STEPS = (
    (("download", "lists_only"), download),
    (("extract",), extract),
    (("convert",), convert),
    (("make_lists",), make_lists),
    (("augment",), augment),
)


def make_folder(save_path):
    try:
        save_path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataprepError(f"cannot create --save_path {save_path}: {err.strerror or err}") from None


def asks_for(args, flags):
    return any(getattr(args, flag) for flag in flags)


def run(args):
    if args.demo:
        demo(args)
        return
    if asks_for(args, ("download", "lists_only", "augment")):
        make_folder(args.save_path)
    elif args.from_folder is None and not args.save_path.is_dir():
        raise DataprepError(f"{args.save_path} does not exist: check --save_path or run --download first")
    for flags, step in STEPS:
        if asks_for(args, flags):
            step(args)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.demo or any(asks_for(args, flags) for flags, _ in STEPS)):
        parser.error("nothing to do: give --download, --lists_only, --extract, --convert, --make_lists, --demo "
                     "or --augment")
    if args.workers < 1 or args.retries < 0 or args.retry_wait < 0:
        parser.error("--workers must be >= 1, --retries and --retry_wait >= 0")
    if args.from_folder is not None and not args.make_lists:
        parser.error("--from_folder goes with --make_lists")
    if args.trials < 2:
        parser.error("--trials must be >= 2 (one target and one non-target trial)")
    return run_command(lambda: run(args), "dataprep.py: ", 1, INTERRUPTED)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Let `kill` stop running ffmpeg processes and leave a clean state, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    sys.exit(main())
