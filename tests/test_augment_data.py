"""dataprep.py --augment against a local server with tiny MUSAN and RIR archives: the trainer's
layout, resumable re-runs, checksums, and refusal of archive members outside the folder."""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy
import pytest
import soundfile
from http_server import FakeServer

from voxtrainer.reading.augment import Augmenter

DATAPREP = Path(__file__).resolve().parents[1] / "dataprep.py"
RATE = 16000
# MUSAN file -> seconds: longer than a piece, shorter than one, exactly one.
MUSAN = {"noise/free-sound/noise-free-sound-0000.wav": 12, "noise/free-sound/noise-free-sound-0001.wav": 2,
         "speech/librivox/speech-librivox-0000.wav": 6, "music/fma/music-fma-0000.wav": 5}
RIR = "RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav"


def wav_bytes(seconds, seed=0):
    audio = numpy.random.default_rng(seed).integers(-3000, 3000, int(seconds * RATE)).astype(numpy.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def tar_gz(members, links=None):
    """A .tar.gz of name -> bytes; names in `links` become symbolic links to their value instead."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if (links or {}).get(name):
                info.type, info.linkname = tarfile.SYMTYPE, links[name]
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def server():
    """A server for the archives the test publishes; OpenSLR asks for no password."""
    with FakeServer() as server:
        yield server


def publish(server, tmp_path, archives, md5s=None):
    lines = []
    for name, data in archives.items():
        server.served["/" + name] = data
        lines.append("%s %s\n" % (server.url("/" + name), (md5s or {}).get(name, hashlib.md5(data).hexdigest())))
    listfile = tmp_path / "augment.txt"
    listfile.write_text("".join(lines))
    return listfile


def standard_archives():
    musan = {"musan/" + name: wav_bytes(seconds, index) for index, (name, seconds) in enumerate(MUSAN.items())}
    musan["musan/README"] = b"MUSAN"
    rirs = {RIR: wav_bytes(0.5, 9), "RIRS_NOISES/simulated_rirs/smallroom/rir_list": b"list"}
    return {"rirs_noises.zip": zip_bytes(rirs), "musan.tar.gz": tar_gz(musan)}


def run_dataprep(save, listfile, *extra):
    return subprocess.run([sys.executable, str(DATAPREP), "--augment", "--save_path", str(save), "--augment_list",
                           str(listfile), "--retries", "0", "--retry_wait", "0.01", *extra],
                          capture_output=True, text=True, timeout=120, cwd=listfile.parent)


def test_augment_fetches_extracts_and_cuts_musan_into_5_s_pieces_every_3_s(server, tmp_path):
    listfile = publish(server, tmp_path, standard_archives())
    save = tmp_path / "data"
    result = run_dataprep(save, listfile)
    assert result.returncode == 0, result.stderr

    pieces = {str(path.relative_to(save / "musan_split")): soundfile.read(path, dtype="int16")
              for path in sorted((save / "musan_split").rglob("*.wav"))}
    assert sorted(pieces) == ["music/fma/music-fma-0000/00000.wav",
                              "noise/free-sound/noise-free-sound-0000/00000.wav",
                              "noise/free-sound/noise-free-sound-0000/00003.wav",
                              "noise/free-sound/noise-free-sound-0000/00006.wav",
                              "noise/free-sound/noise-free-sound-0001/00000.wav",  # shorter than 5 s: whole
                              "speech/librivox/speech-librivox-0000/00000.wav"]
    source, _ = soundfile.read(save / "musan" / "noise/free-sound/noise-free-sound-0000.wav", dtype="int16")
    audio, rate = pieces["noise/free-sound/noise-free-sound-0000/00003.wav"]
    assert rate == RATE and numpy.array_equal(audio, source[3 * RATE:8 * RATE])
    assert len(pieces["noise/free-sound/noise-free-sound-0001/00000.wav"][0]) == 2 * RATE
    assert (save / RIR).is_file()
    assert "--musan_path %s" % (save / "musan_split") in result.stdout
    Augmenter(str(save / "musan_split"), str(save / "RIRS_NOISES" / "simulated_rirs"))


def test_a_rerun_fetches_nothing_again(server, tmp_path):
    listfile = publish(server, tmp_path, standard_archives())
    save = tmp_path / "data"
    assert run_dataprep(save, listfile).returncode == 0
    asked = len(server.requests)
    os.remove(save / "musan.tar.gz")  # deleted to save space after extraction
    result = run_dataprep(save, listfile)
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == asked
    assert result.stdout.count("already extracted") == 2 and "splitting 0 of 4" in result.stdout


def test_a_wrong_checksum_is_reported_and_nothing_is_extracted(server, tmp_path):
    listfile = publish(server, tmp_path, standard_archives(), md5s={"rirs_noises.zip": "0" * 32})
    save = tmp_path / "data"
    result = run_dataprep(save, listfile)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "checksum mismatch" in result.stderr and "rirs_noises.zip" in result.stderr
    assert not (save / "RIRS_NOISES").exists() and not (save / "rirs_noises.zip").exists()


@pytest.mark.parametrize("member, link", [("../escaped.wav", None), ("musan/noise/a/link.wav", "../../../../x")])
def test_a_tar_member_outside_the_folder_is_refused(server, tmp_path, member, link):
    archives = standard_archives()
    archives["musan.tar.gz"] = tar_gz({"musan/noise/a/ok.wav": wav_bytes(1), member: b"evil"}, links={member: link})
    listfile = publish(server, tmp_path, archives)
    save = tmp_path / "data"
    result = run_dataprep(save, listfile)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("dataprep.py: error: refusing to extract %s" % (save / "musan.tar.gz")), error
    assert not (tmp_path / "escaped.wav").exists() and not (save / "musan").exists()


def test_absolute_tar_members_stay_inside_the_folder(server, tmp_path):
    outside = tmp_path / "outside.wav"
    archives = standard_archives()
    archives["musan.tar.gz"] = tar_gz({"musan/noise/a/ok.wav": wav_bytes(1), str(outside): b"evil"})
    save = tmp_path / "data"
    assert run_dataprep(save, publish(server, tmp_path, archives)).returncode == 0
    assert not outside.exists() and (save / str(outside).lstrip("/")).is_file()
