"""dataprep.py --augment: fetch MUSAN (OpenSLR 17) and the simulated room impulse responses
(OpenSLR 28), extract them and cut MUSAN into 5 s pieces for fast random access, with the same
resumable, md5-checked download and safe extraction as the VoxCeleb steps.

Resulting layout::

    DIR/musan/{music,noise,speech}/<source>/<file>.wav        (as in the archive)
    DIR/musan_split/<kind>/<source>/<file>/00000.wav ...      (--musan_path for trainSpeakerNet.py)
    DIR/RIRS_NOISES/simulated_rirs/<room size>/<room>/*.wav   (--rir_path)
"""

import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile
from tqdm import tqdm

from voxtrainer.data.archives import STATE_DIR, extract_tar, extract_zip, extraction_marker, staging_folder
from voxtrainer.data.download import fetch_verified
from voxtrainer.data.urls import redact_url
from voxtrainer.data.lists import read_fileparts
from voxtrainer.data.report import DataprepError

# voxceleb_trainer's split: 5 s pieces starting every 3 s.
PIECE_SECONDS, HOP_SECONDS = 5, 3


def prepare_augmentation(save_path, augment_list, downloader, workers):
    for url, md5 in read_fileparts(augment_list):
        name = Path(urllib.parse.urlsplit(url).path).name
        if not name.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
            raise DataprepError(f"{redact_url(url)} in {augment_list}: expected a .zip or .tar.gz archive")
        # Extraction leaves a marker: a finished archive is neither fetched nor checked again, even
        # when it has been deleted to save space.
        if extraction_marker(save_path, name).exists():
            print(f"{name}: already extracted, skipping")
            continue
        archive = save_path / name
        fetch_verified(archive, url, md5, downloader)
        if name.endswith(".zip"):
            extract_zip(save_path, archive)
        else:
            extract_tar(save_path, archive)
    split_musan(save_path, workers)
    print(f"augmentation data ready: --musan_path {save_path / 'musan_split'} "
          f"--rir_path {save_path / 'RIRS_NOISES' / 'simulated_rirs'}")


def split_musan(save_path, workers):
    """DIR/musan/<kind>/<source>/<file>.wav -> DIR/musan_split/<kind>/<source>/<file>/<start s>.wav."""
    sources = sorted((save_path / "musan").glob("*/*/*.wav"))
    if not sources:
        raise DataprepError(f"no {save_path / 'musan'}/<kind>/<source>/*.wav files: the MUSAN archive did not "
                            f"extract as expected; delete {save_path / STATE_DIR} and re-run --augment")
    todo = [source for source in sources if not split_folder(save_path, source).is_dir()]
    print(f"splitting {len(todo)} of {len(sources)} MUSAN files into {PIECE_SECONDS} s pieces "
          f"({len(sources) - len(todo)} already done)")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(tqdm(pool.map(lambda source: split_file(save_path, source), todo), total=len(todo),
                  unit="file", desc="split MUSAN"))


def split_folder(save_path, source):
    relative = source.relative_to(save_path / "musan")
    return save_path / "musan_split" / relative.parent / relative.stem


def split_file(save_path, source):
    """Pieces of PIECE_SECONDS every HOP_SECONDS (a shorter file is one piece), written to a
    staging folder (outside --musan_path) that is renamed when complete, so a folder in
    musan_split is always whole."""
    target = split_folder(save_path, source)
    temporary = staging_folder(save_path, target.relative_to(save_path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        audio, rate = soundfile.read(source, dtype="int16")
    except Exception as err:  # soundfile raises several types for unreadable files
        raise DataprepError(f"{source}: cannot read audio ({err}); delete {save_path / STATE_DIR} and "
                            f"re-run --augment") from None
    piece, hop = PIECE_SECONDS * rate, HOP_SECONDS * rate
    for start in range(0, max(len(audio) - piece, 0) + 1, hop):
        soundfile.write(temporary / f"{start // rate:05d}.wav", audio[start:start + piece], rate, subtype="PCM_16")
    os.replace(temporary, target)
