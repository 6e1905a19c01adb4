"""dataprep.py against a local fake VoxCeleb server.

A standard-library HTTP server (tests/http_server.py: basic auth, Range requests, injectable faults)
serves tiny "VoxCeleb" zips of real wav files and of real m4a files made by
ffmpeg, split into parts like the real ones. dataprep.py runs as a subprocess,
exactly as a user would run it.
"""

import hashlib
import importlib.util
import io
import os
import pkgutil
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from http_server import FakeServer

REPO = Path(__file__).resolve().parents[1]
DATAPREP = REPO / "dataprep.py"
DATA_PACKAGE = REPO / "voxtrainer" / "data"
USER, PASSWORD = "alice", "pw-Zq81-not-in-logs"
RATE = 16000
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")
TRAIN_LIST = "id00012 id00012/clipB/00001.wav\nid00015 id00015/clipC/00001.wav\n"
TEST_LIST = "1 id10270/clipT/00001.wav id10270/clipT/00002.wav\n"


# ---------------------------------------------------------------------------
# Fake audio and fake VoxCeleb zips


def tone(index, rate=RATE, seconds=0.4):
    """A deterministic two-tone signal; `index` picks the pitch."""
    t = np.arange(int(rate * seconds)) / rate
    pitch = 180.0 + 60.0 * index
    return 0.3 * np.sin(2 * np.pi * pitch * t) + 0.15 * np.sin(2 * np.pi * 2.7 * pitch * t)


def wav_bytes(signal_, rate=RATE):
    buffer = io.BytesIO()
    soundfile.write(buffer, signal_, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def m4a_bytes(index, workdir, rate=RATE, channels=1):
    source = workdir / f"src{index}.wav"
    signal_ = tone(index, rate)
    soundfile.write(source, np.stack([signal_] * channels, axis=1) if channels > 1 else signal_, rate,
                    subtype="PCM_16")
    target = workdir / f"src{index}.m4a"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-c:a", "aac",
                    "-b:a", "96k", str(target)], check=True)
    return target.read_bytes()


def zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def md5(data):
    return hashlib.md5(data).hexdigest()


class FakeDataset:
    """What the server serves and what dataprep.py should make of it."""

    def __init__(self):
        self.served = {}        # url path -> bytes
        self.fileparts = []     # url path (in list order)
        self.files = []         # (parts glob, joined zip, md5)
        self.vox1 = {}          # path under voxceleb1 -> exact wav bytes
        self.vox2 = {}          # path under voxceleb2 -> reference 16 kHz signal

    def add_split_zip(self, stem, members, n_parts):
        data = zip_bytes(members)
        size = -(-len(data) // n_parts)
        for number in range(n_parts):
            name = f"{stem}_parta{'abcdefgh'[number]}"
            self._serve(f"/vox1a/{name}", data[number * size:(number + 1) * size])
        self.files.append((f"{stem}_parta*", f"{stem}.zip", md5(data)))

    def add_zip(self, stem, members):
        self._serve(f"/vox1a/{stem}.zip", zip_bytes(members))

    def _serve(self, path, data):
        self.served[path] = data
        self.fileparts.append(path)

    def part(self, name):
        return f"/vox1a/{name}"


def build_vox1(dataset):
    dev, test = {}, {}
    for index, rel in enumerate(["id10001/clipA/00001.wav", "id10001/clipA/00002.wav",
                                 "id10002/clipZ/00001.wav"]):
        dev[f"wav/{rel}"] = dataset.vox1[rel] = wav_bytes(tone(index))
    rel = "id10270/clipT/00001.wav"
    test[f"wav/{rel}"] = dataset.vox1[rel] = wav_bytes(tone(5))
    dataset.add_split_zip("vox1_dev_wav", dev, 3)
    dataset.add_zip("vox1_test_wav", test)


def build_vox2(dataset, workdir):
    dev, test = {}, {}
    # One source at 22.05 kHz stereo, so resampling and down-mixing are checked too.
    sources = [("dev/aac", "id00012/clipB/00001", RATE, 1), ("dev/aac", "id00012/clipB/00002", 22050, 2),
               ("dev/aac", "id00015/clipC/00001", RATE, 1), ("aac", "id09000/clipD/00001", RATE, 1)]
    for index, (prefix, rel, rate, channels) in enumerate(sources, start=10):
        target = dev if prefix == "dev/aac" else test
        target[f"{prefix}/{rel}.m4a"] = m4a_bytes(index, workdir, rate, channels)
        dataset.vox2[f"{rel}.wav"] = tone(index)
    dataset.add_split_zip("vox2_dev_aac", dev, 2)
    dataset.add_zip("vox2_test_aac", test)


@pytest.fixture(scope="module")
def vox1_only():
    dataset = FakeDataset()
    build_vox1(dataset)
    return dataset


@pytest.fixture(scope="module")
def vox1_and_vox2(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    dataset = FakeDataset()
    build_vox1(dataset)
    build_vox2(dataset, tmp_path_factory.mktemp("m4a"))
    return dataset


# ---------------------------------------------------------------------------
# The server


def fake_voxceleb_server(dataset):
    """The dataset's parts behind basic auth; the meta lists, like the real ones, without."""
    served = dict(dataset.served)
    served["/meta/train_list.txt"] = TRAIN_LIST.encode()
    served["/meta/veri_test.txt"] = TEST_LIST.encode()
    return FakeServer(served, credentials=(USER, PASSWORD), public_prefix="/meta/")


@pytest.fixture
def vox1_server(vox1_only):
    with fake_voxceleb_server(vox1_only) as server:
        yield server


# ---------------------------------------------------------------------------
# Helpers


def write_lists(folder, server, dataset, paths=None):
    """fileparts.txt / files.txt pointing at `server`; returns the flags that select them."""
    paths = dataset.fileparts if paths is None else paths
    fileparts = folder / "fileparts.txt"
    fileparts.write_text("".join(f"{server.url(path)} {md5(server.served.get(path, b''))}\n" for path in paths))
    files = folder / "files.txt"
    files.write_text("".join(f"{pattern} {joined} {checksum}\n" for pattern, joined, checksum in dataset.files))
    return ["--fileparts", str(fileparts), "--files", str(files), "--lists_url", server.url("/meta/")]


def run_dataprep(*args, password=PASSWORD, env=None, cwd=None, timeout=60, wrapper=None):
    """dataprep.py ARGS as a user runs it (or `python WRAPPER dataprep.py ARGS`)."""
    if "--download" in args or "--lists_only" in args:
        assert "--lists_url" in args, "tests must never reach the real VoxCeleb site"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("VOXCELEB_")}
    if password is not None:
        environment.update(VOXCELEB_USER=USER, VOXCELEB_PASSWORD=password)
    environment.update(env or {})
    program = [str(wrapper), str(DATAPREP)] if wrapper is not None else [str(DATAPREP)]
    return subprocess.run([sys.executable, *program, *map(str, args), "--retry_wait", "0.01"],
                          capture_output=True, text=True, timeout=timeout, env=environment,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def assert_clean_failure(result, *phrases):
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


PROGRESS_BAR = re.compile(r"\d+%\|")


def assert_one_line_error(result, *phrases):
    """Exit status 1, no traceback, and nothing on stderr but progress bars and one last line,
    `dataprep.py: error: ...`, holding `phrases`. Returns that line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    segments = [segment.strip() for segment in re.split(r"[\r\n]", result.stderr) if segment.strip()]
    lines = [segment for segment in segments if not PROGRESS_BAR.search(segment)]
    assert len(lines) == 1 and lines[0] == segments[-1], result.stderr
    line = lines[0]
    assert line.startswith("dataprep.py: error: "), line
    for phrase in phrases:
        assert phrase in line, line
    return line


def assert_password_absent(result, folder=None):
    assert PASSWORD not in result.stdout + result.stderr
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_file():
                assert PASSWORD.encode() not in path.read_bytes(), path


def snr_db(reference, decoded):
    n = min(len(reference), len(decoded))
    error = reference[:n] - decoded[:n]
    return 10 * np.log10(np.sum(reference[:n] ** 2) / np.sum(error ** 2))


# ---------------------------------------------------------------------------
# Full run


@needs_ffmpeg
def test_download_extract_convert_builds_voxceleb_layout(tmp_path, vox1_and_vox2):
    dataset = vox1_and_vox2
    save = tmp_path / "voxceleb"
    with fake_voxceleb_server(dataset) as server:
        flags = write_lists(tmp_path, server, dataset)
        command = ["--save_path", save, "--download", "--extract", "--convert", *flags, "--workers", "2"]
        # From another folder: the default lists and paths must not depend on the cwd.
        result = run_dataprep(*command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert_password_absent(result, save)

        for rel, data in dataset.vox1.items():
            assert (save / "voxceleb1" / rel).read_bytes() == data, rel
        for rel, reference in dataset.vox2.items():
            wav = save / "voxceleb2" / rel
            info = soundfile.info(wav)
            assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16"), rel
            decoded, _ = soundfile.read(wav)
            assert abs(len(decoded) - len(reference)) <= 2048, rel
            assert snr_db(reference, decoded) > 15, rel
            assert wav.with_suffix(".m4a").exists()
        assert (save / "train_list.txt").read_text() == TRAIN_LIST
        assert (save / "test_list.txt").read_text() == TEST_LIST
        leftovers = {path.name for path in save.iterdir()} - {
            "voxceleb1", "voxceleb2", "train_list.txt", "test_list.txt", ".dataprep",
            "vox1_dev_wav.zip", "vox1_test_wav.zip", "vox2_dev_aac.zip", "vox2_test_aac.zip"}
        assert leftovers == set(), "parts, temporary files or wav/ dev/ aac/ folders left behind"
        assert not (save / ".dataprep" / "staging").exists() or not any((save / ".dataprep" / "staging").iterdir())
        assert not list(save.rglob("*.partial"))

        # A second run finds everything done: no part is fetched, no wav rewritten.
        stamps = {path: path.stat().st_mtime_ns for path in save.rglob("*.wav")}
        server.requests.clear()
        again = run_dataprep(*command, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert server.requests == []
        assert {path: path.stat().st_mtime_ns for path in save.rglob("*.wav")} == stamps


# ---------------------------------------------------------------------------
# Download


@pytest.mark.parametrize("how", ["environment", "flags"])
def test_wrong_password_is_a_clear_error(tmp_path, vox1_server, vox1_only, how):
    flags = write_lists(tmp_path, vox1_server, vox1_only)
    wrong = "not-the-" + PASSWORD
    if how == "flags":
        result = run_dataprep("--save_path", tmp_path / "data", "--download", *flags, "--user", USER,
                              "--password", wrong, password=None)
    else:
        result = run_dataprep("--save_path", tmp_path / "data", "--download", *flags, password=wrong)
    assert_clean_failure(result, "wrong user name or password")
    assert wrong not in result.stdout + result.stderr
    assert not list((tmp_path / "data").glob("vox1*"))


def test_missing_credentials_say_how_to_give_them(tmp_path, vox1_server, vox1_only):
    flags = write_lists(tmp_path, vox1_server, vox1_only)
    result = run_dataprep("--save_path", tmp_path / "data", "--download", *flags, password=None)
    assert_clean_failure(result, "VOXCELEB_USER")
    no_password = run_dataprep("--save_path", tmp_path / "data", "--download", *flags, "--user", USER,
                               password=None)
    assert_clean_failure(no_password, "VOXCELEB_PASSWORD")


def test_missing_file_names_the_url_and_the_mirror_flags(tmp_path, vox1_server, vox1_only):
    missing = "/vox1a/vox1_dev_wav_partzz"
    flags = write_lists(tmp_path, vox1_server, vox1_only, [missing])
    result = run_dataprep("--save_path", tmp_path / "data", "--download", *flags)
    assert_clean_failure(result, vox1_server.url(missing), "--fileparts")


def test_dropped_connection_resumes_with_range_on_the_next_run(tmp_path, vox1_server, vox1_only):
    name = "vox1_dev_wav_partab"
    data = vox1_server.served[vox1_only.part(name)]
    half = len(data) // 2
    vox1_server.drop_after[vox1_only.part(name)] = half
    flags = write_lists(tmp_path, vox1_server, vox1_only, [vox1_only.part(name)])
    save = tmp_path / "data"

    cut = run_dataprep("--save_path", save, "--download", *flags, "--retries", "0")
    assert_clean_failure(cut, "connection closed", "re-run")
    assert (save / f"{name}.download").stat().st_size == half
    assert not (save / name).exists()

    resumed = run_dataprep("--save_path", save, "--download", *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert vox1_server.part_requests(name)[-1][1] == f"bytes={half}-"
    assert md5((save / name).read_bytes()) == md5(data)
    assert not (save / f"{name}.download").exists()


def test_dropped_connection_is_retried_within_the_run(tmp_path, vox1_server, vox1_only):
    name = "vox1_dev_wav_partaa"
    data = vox1_server.served[vox1_only.part(name)]
    vox1_server.drop_after[vox1_only.part(name)] = 1000
    flags = write_lists(tmp_path, vox1_server, vox1_only, [vox1_only.part(name)])
    result = run_dataprep("--save_path", tmp_path, "--download", *flags)
    assert result.returncode == 0, result.stderr
    assert "retrying" in result.stderr
    assert [ranges for _, ranges, _ in vox1_server.part_requests(name)] == [None, "bytes=1000-"]
    assert (tmp_path / name).read_bytes() == data


def test_server_errors_are_retried_with_back_off(tmp_path, vox1_server, vox1_only):
    name = "vox1_test_wav.zip"
    vox1_server.fail_once[vox1_only.part(name)] = 503
    flags = write_lists(tmp_path, vox1_server, vox1_only, [vox1_only.part(name)])
    result = run_dataprep("--save_path", tmp_path, "--download", *flags)
    assert result.returncode == 0, result.stderr
    assert "HTTP 503" in result.stderr and "retrying" in result.stderr
    assert (tmp_path / name).read_bytes() == vox1_server.served[vox1_only.part(name)]

    vox1_server.fail_once[vox1_only.part(name)] = 503
    (tmp_path / name).unlink()
    gave_up = run_dataprep("--save_path", tmp_path, "--download", *flags, "--retries", "0")
    assert_clean_failure(gave_up, f"giving up on {vox1_server.url(vox1_only.part(name))}")


def test_corrupted_download_is_reported_and_fetched_again(tmp_path, vox1_server, vox1_only):
    name = "vox1_dev_wav_partab"
    vox1_server.corrupt_once.add(vox1_only.part(name))
    flags = write_lists(tmp_path, vox1_server, vox1_only)
    result = run_dataprep("--save_path", tmp_path, "--download", *flags)
    assert result.returncode == 0, result.stderr
    assert f"{name}: checksum mismatch" in result.stderr
    assert len(vox1_server.part_requests(name)) == 2
    assert (tmp_path / name).read_bytes() == vox1_server.served[vox1_only.part(name)]


def test_corrupted_part_on_disk_is_fetched_again_and_never_joined(tmp_path, vox1_server, vox1_only):
    name = "vox1_dev_wav_partaa"
    flags = write_lists(tmp_path, vox1_server, vox1_only)
    assert run_dataprep("--save_path", tmp_path, "--download", *flags).returncode == 0
    part = tmp_path / name
    part.write_bytes(b"X" + part.read_bytes()[1:])

    refused = run_dataprep("--save_path", tmp_path, "--extract", *flags)
    assert_clean_failure(refused, "vox1_dev_wav.zip", "--download")
    assert part.exists(), "a part was deleted although the joined checksum was wrong"

    vox1_server.requests.clear()
    fixed = run_dataprep("--save_path", tmp_path, "--download", *flags)
    assert fixed.returncode == 0, fixed.stderr
    assert f"{name}: checksum mismatch" in fixed.stderr
    assert [path for path, _, _ in vox1_server.requests] == [vox1_only.part(name)], "intact parts fetched again"
    assert part.read_bytes() == vox1_server.served[vox1_only.part(name)]
    assert run_dataprep("--save_path", tmp_path, "--extract", *flags).returncode == 0


def test_redirect_keeps_credentials_only_on_the_same_host(tmp_path, vox1_server, vox1_only):
    name = "vox1_test_wav.zip"
    vox1_server.redirects["/same/" + name] = vox1_server.url(vox1_only.part(name))
    vox1_server.redirects["/other/" + name] = f"http://localhost:{vox1_server.port}/vox1a/{name}"
    data_md5 = md5(vox1_server.served[vox1_only.part(name)])

    (tmp_path / "same.txt").write_text(f"{vox1_server.url('/same/' + name)} {data_md5}\n")
    same = run_dataprep("--save_path", tmp_path / "a", "--download", "--fileparts", tmp_path / "same.txt",
                        "--lists_url", vox1_server.url("/meta/"))
    assert same.returncode == 0, same.stderr

    (tmp_path / "other.txt").write_text(f"{vox1_server.url('/other/' + name)} {data_md5}\n")
    vox1_server.requests.clear()
    other = run_dataprep("--save_path", tmp_path / "b", "--download", "--fileparts", tmp_path / "other.txt",
                         "--lists_url", vox1_server.url("/meta/"))
    assert_clean_failure(other, "redirects to http://localhost", "asks for a password")
    assert [auth for path, _, auth in vox1_server.requests if path == f"/vox1a/{name}"] == [None]


def test_lists_only_fetches_the_two_lists_without_credentials(tmp_path, vox1_server):
    result = run_dataprep("--save_path", tmp_path, "--lists_only", "--lists_url", vox1_server.url("/meta/"),
                          password=None)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train_list.txt").read_text() == TRAIN_LIST
    assert (tmp_path / "test_list.txt").read_text() == TEST_LIST
    assert sorted(path for path, _, _ in vox1_server.requests) == ["/meta/train_list.txt", "/meta/veri_test.txt"]


def test_a_web_page_instead_of_a_list_is_refused(tmp_path, vox1_server):
    vox1_server.served["/meta/train_list.txt"] = b"<!DOCTYPE html><html>moved</html>"
    result = run_dataprep("--save_path", tmp_path, "--lists_only", "--lists_url", vox1_server.url("/meta/"))
    assert_clean_failure(result, "is not a VoxCeleb list", "--make_lists")
    assert not (tmp_path / "train_list.txt").exists()


# ---------------------------------------------------------------------------
# Hostile inputs and faults: one line each, never a traceback, never a password


@pytest.mark.parametrize("flag", ["--fileparts", "--augment_list"])
@pytest.mark.parametrize("line", [
    f"http://{USER}:{PASSWORD}@127.0.0.1/vox1a/vox1_test_wav.zip 0123 extra",     # short md5, extra field
    f"http://{USER}:{PASSWORD}@127.0.0.1/vox1a/vox1_test_wav.zip",                # no md5
    f"http://{USER}:a/{PASSWORD} #x@y@127.0.0.1/musan.tar.gz {'0' * 32}",          # unencoded / # @ and space
])
def test_malformed_list_line_with_a_password_is_echoed_without_it(tmp_path, flag, line):
    listfile = tmp_path / "list.txt"
    listfile.write_text(f"# a comment\n{line}\n")
    step = ["--download", "--lists_url", "http://127.0.0.1:9/meta/"] if flag == "--fileparts" else ["--augment"]
    result = run_dataprep("--save_path", tmp_path / "data", *step, flag, listfile, password=None)
    assert_one_line_error(result, f"{listfile}:2: expected 2 fields ending in an md5 sum", "127.0.0.1/")
    assert_password_absent(result)


@pytest.mark.parametrize("flag", ["--fileparts", "--augment_list"])
def test_well_formed_list_line_with_a_password_is_refused_without_echoing_it(tmp_path, flag):
    listfile = tmp_path / "list.txt"
    listfile.write_text(f"http://{USER}:{PASSWORD}@127.0.0.1/vox1a/vox1_test_wav.zip {'0' * 32}\n")
    step = ["--download", "--lists_url", "http://127.0.0.1:9/meta/"] if flag == "--fileparts" else ["--augment"]
    result = run_dataprep("--save_path", tmp_path / "data", *step, flag, listfile, password=None)
    assert_one_line_error(result, f"http://127.0.0.1/vox1a/vox1_test_wav.zip in {listfile}",
                          "remove the user name/password")
    assert_password_absent(result)


def test_redirect_loop_is_one_line_naming_the_url(tmp_path, vox1_server):
    vox1_server.redirects["/loop/a.zip"] = vox1_server.url("/loop/b.zip")
    vox1_server.redirects["/loop/b.zip"] = vox1_server.url("/loop/a.zip")
    (tmp_path / "list.txt").write_text(f"{vox1_server.url('/loop/a.zip')} {'0' * 32}\n")
    result = run_dataprep("--save_path", tmp_path / "data", "--download", "--fileparts", tmp_path / "list.txt",
                          "--lists_url", vox1_server.url("/meta/"))
    assert_one_line_error(result, f"{vox1_server.url('/loop/a.zip')} redirects in a loop")
    assert "retrying" not in result.stderr
    assert not list((tmp_path / "data").iterdir())


FAKE_DISK_WRAPPER = """
# python fake_disk.py dataprep.py ARGS: dataprep.py on a pretend disk of $FAKE_DISK_SIZE bytes at
# $FAKE_DISK, for machines where a tmpfs cannot be mounted. Files written there through open() fail
# with ENOSPC once full, and shutil.disk_usage reports its free space.
import builtins, errno, os, runpy, shutil, sys

ROOT, SIZE = os.path.realpath(os.environ["FAKE_DISK"]), int(os.environ["FAKE_DISK_SIZE"])
real_open, real_disk_usage = builtins.open, shutil.disk_usage

def under_root(path):
    return os.path.realpath(os.fspath(path)).startswith(ROOT + os.sep)

def free():
    return SIZE - sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(ROOT)
                      for name in names)

def disk_usage(path):
    if not under_root(os.path.join(path, "x")):
        return real_disk_usage(path)
    return real_disk_usage(path)._replace(total=SIZE, used=SIZE - free(), free=max(free(), 0))

class Limited:
    def __init__(self, handle):
        self._handle = handle
    def write(self, data):
        self._handle.flush()
        room = max(free(), 0)
        if len(data) > room:
            self._handle.write(data[:room])
            self._handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._handle.write(data)
    def __getattr__(self, name):
        return getattr(self._handle, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self._handle.close()

def limited_open(file, mode="r", *args, **kwargs):
    handle = real_open(file, mode, *args, **kwargs)
    writes = any(letter in mode for letter in "wax+")
    return Limited(handle) if writes and isinstance(file, (str, os.PathLike)) and under_root(file) else handle

builtins.open, shutil.disk_usage = limited_open, disk_usage
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))     # as if dataprep.py were run directly
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class SmallDisk:
    """A 1 MiB file system at `path`: a real tmpfs where this process may mount one (root), else
    FAKE_DISK_WRAPPER pretends inside the dataprep.py process."""
    SIZE = 1 << 20

    def __init__(self, tmp_path):
        self.path = tmp_path / "small_disk"
        self.path.mkdir()
        self.mounted = False
        if os.geteuid() == 0 and shutil.which("mount"):
            self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.SIZE}", "tmpfs", str(self.path)],
                                          capture_output=True).returncode == 0
        self.env, self.wrapper = {}, None
        if not self.mounted:
            self.wrapper = tmp_path / "fake_disk.py"
            self.wrapper.write_text(FAKE_DISK_WRAPPER)
            self.env = {"FAKE_DISK": str(self.path), "FAKE_DISK_SIZE": str(self.SIZE)}

    def free(self):
        if self.mounted:
            return shutil.disk_usage(self.path).free
        return self.SIZE - sum(path.stat().st_size for path in self.path.rglob("*") if path.is_file())

    def fill(self, leave):
        """Take up all but `leave` bytes with a file named `filler`."""
        (self.path / "filler").write_bytes(bytes(self.free() - leave))
        assert self.free() == leave

    def run(self, *args):
        return run_dataprep("--save_path", self.path, *args, env=self.env, wrapper=self.wrapper)

    def close(self):
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path)
    yield disk
    disk.close()


def serve_one_file(server, tmp_path, name, data):
    server.served[f"/big/{name}"] = data
    (tmp_path / "list.txt").write_text(f"{server.url('/big/' + name)} {md5(data)}\n")
    return ["--download", "--fileparts", tmp_path / "list.txt", "--lists_url", server.url("/meta/")]


def test_download_larger_than_the_free_space_fails_before_it_starts(tmp_path, vox1_server, small_disk):
    name, data = "vox1_big.zip", bytes(range(256)) * 8192      # 2 MiB, on a 1 MiB disk
    flags = serve_one_file(vox1_server, tmp_path, name, data)
    result = small_disk.run(*flags)
    assert_one_line_error(result, f"not enough disk space for {small_disk.path / name}: 2.1 MB more needed, "
                                  f"1.0 MB free; free some space")
    assert "retrying" not in result.stderr
    assert len(vox1_server.part_requests(name)) == 1
    assert not list(small_disk.path.iterdir()), "a partial file was left behind"


def test_disk_filling_up_during_a_download_stops_and_the_rerun_resumes(tmp_path, vox1_server, small_disk):
    from voxtrainer.data.report import format_bytes
    name, data = "vox1_big.zip", bytes(range(256)) * 3072       # 768 kB: fits the 1 MiB disk when it starts
    partial = small_disk.path / f"{name}.download"
    flags = serve_one_file(vox1_server, tmp_path, name, data)

    def fill_the_disk_once_the_download_has_started():
        deadline = time.monotonic() + 20
        while not partial.exists():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        small_disk.fill(leave=256 * 1024)
    vox1_server.before_body[f"/big/{name}"] = fill_the_disk_once_the_download_has_started

    full = small_disk.run(*flags)
    kept = partial.stat().st_size
    assert 0 < kept < len(data)
    assert_one_line_error(full, f"not enough disk space for {small_disk.path / name}: "
                                f"{format_bytes(len(data) - kept)} more needed, 0 bytes free; "
                                f"the {format_bytes(kept)} already downloaded stay in {partial} and a re-run "
                                f"resumes from there")
    assert "retrying" not in full.stderr
    assert len(vox1_server.part_requests(name)) == 1
    assert not (small_disk.path / name).exists()

    (small_disk.path / "filler").unlink()
    resumed = small_disk.run(*flags)
    assert resumed.returncode == 0, resumed.stderr
    assert vox1_server.part_requests(name)[-1][1] == f"bytes={kept}-"
    assert (small_disk.path / name).read_bytes() == data


@pytest.mark.parametrize("case", ["redirect to ftp", "redirect to a broken URL", "web page", "connection refused"])
def test_hostile_server_answers_are_one_line(tmp_path, vox1_server, case):
    name = "vox1_test_wav.zip"
    url = vox1_server.url(f"/hostile/{name}")
    if case == "redirect to ftp":
        vox1_server.redirects[f"/hostile/{name}"] = f"ftp://{USER}:{PASSWORD}@127.0.0.1/{name}"
        expected = [f"{url} redirects to ftp://127.0.0.1/{name}: only http:// and https://"]
    elif case == "redirect to a broken URL":
        vox1_server.redirects[f"/hostile/{name}"] = "http://[::1/" + name
        expected = [url, "not a valid URL"]
    elif case == "web page":
        vox1_server.served[f"/hostile/{name}"] = b"\n<!DOCTYPE html><html><body>Please log in</body></html>"
        expected = [f"{url} sent a web page instead of the file"]
    else:
        with FakeServer() as closed:
            url = closed.url(f"/hostile/{name}")     # a port nothing listens on any more
        expected = [f"giving up on {url} after 1 failed attempts", "Connection refused"]
    (tmp_path / "list.txt").write_text(f"{url} {'0' * 32}\n")
    result = run_dataprep("--save_path", tmp_path / "data", "--download", "--fileparts", tmp_path / "list.txt",
                          "--lists_url", vox1_server.url("/meta/"), "--retries", "0")
    assert_one_line_error(result, *expected)
    assert_password_absent(result, tmp_path / "data")
    assert not list((tmp_path / "data").iterdir())


@pytest.mark.parametrize("url, expected", [
    ("http://[::1/a.zip", "not a valid URL"),
    ("http://127.0.0.1:port/a.zip", "not a valid URL (the port"),
    ("http:///a.zip", "not a valid URL (no host name)"),
    ("http://127.0.0.1/caf\u00e9.zip", "must be percent-encoded"),
    ("ftp://127.0.0.1/a.zip", "only http:// and https://"),
    ("http://127.0.0.1/vox1a/..", "does not end in a file name"),
])
def test_unusable_urls_in_the_list_are_one_line(tmp_path, url, expected):
    (tmp_path / "list.txt").write_text(f"{url} {'0' * 32}\n", encoding="utf-8")
    result = run_dataprep("--save_path", tmp_path / "data", "--download", "--fileparts", tmp_path / "list.txt",
                          "--lists_url", "http://127.0.0.1:9/meta/")
    assert_one_line_error(result, url, expected)


def test_unusable_list_and_folders_are_one_line(tmp_path, vox1_server, vox1_only):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00 not text")
    not_text = run_dataprep("--save_path", tmp_path / "data", "--download", "--fileparts", tmp_path / "binary.txt",
                            "--lists_url", vox1_server.url("/meta/"))
    assert_one_line_error(not_text, f"{tmp_path / 'binary.txt'}:1: not UTF-8 text (byte 0xff)")

    (tmp_path / "a_file").write_text("")
    flags = write_lists(tmp_path, vox1_server, vox1_only, [vox1_only.part("vox1_test_wav.zip")])
    under_a_file = run_dataprep("--save_path", tmp_path / "a_file" / "data", "--download", *flags)
    assert_one_line_error(under_a_file, f"cannot create --save_path {tmp_path / 'a_file' / 'data'}")

    (tmp_path / "data" / "vox1_test_wav.zip").mkdir(parents=True)
    folder_in_the_way = run_dataprep("--save_path", tmp_path / "data", "--download", *flags)
    assert_one_line_error(folder_in_the_way, f"{tmp_path / 'data' / 'vox1_test_wav.zip'} is a folder")


# ---------------------------------------------------------------------------
# Extract


def evil_zip(kind, outside):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("wav/id10001/clip/00001.wav", b"harmless")
        if kind == "dotdot":
            archive.writestr("wav/../../evil", b"pwned")
        elif kind == "absolute":
            archive.writestr(zipfile.ZipInfo(str(outside / "evil")), b"pwned")
        else:
            link = zipfile.ZipInfo("wav/link")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(link, str(outside))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_zip_members_outside_the_folder_are_refused(tmp_path, kind):
    save, outside = tmp_path / "data", tmp_path / "outside"
    save.mkdir()
    outside.mkdir()
    (save / "vox1_evil.zip").write_bytes(evil_zip(kind, outside))
    (tmp_path / "files.txt").write_text("")
    result = run_dataprep("--save_path", save, "--extract", "--files", tmp_path / "files.txt")
    assert_clean_failure(result, "refusing to extract", "vox1_evil.zip")
    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")
                     if path.is_file() or path.is_symlink())
    assert written == ["data/vox1_evil.zip", "files.txt"]


def test_interrupted_extraction_can_be_rerun(tmp_path, vox1_server, vox1_only):
    flags = write_lists(tmp_path, vox1_server, vox1_only)
    assert run_dataprep("--save_path", tmp_path, "--download", *flags).returncode == 0
    # Interrupted while joining: a half-written temporary zip is left behind.
    (tmp_path / "vox1_dev_wav.zip.joining").write_bytes(b"half")
    first = run_dataprep("--save_path", tmp_path, "--extract", *flags)
    assert first.returncode == 0, first.stderr

    # Interrupted while extracting: no marker, leftovers in staging, a truncated file moved in.
    (tmp_path / ".dataprep" / "vox1_dev_wav.zip.extracted").unlink()
    staging = tmp_path / ".dataprep" / "staging" / "vox1_dev_wav.zip" / "wav" / "id10001"
    staging.mkdir(parents=True)
    (staging / "junk").write_bytes(b"junk")
    truncated = tmp_path / "voxceleb1" / "id10001" / "clipA" / "00001.wav"
    truncated.write_bytes(truncated.read_bytes()[:100])

    second = run_dataprep("--save_path", tmp_path, "--extract", *flags)
    assert second.returncode == 0, second.stderr
    assert "vox1_test_wav.zip: already extracted" in second.stdout
    for rel, data in vox1_only.vox1.items():
        assert (tmp_path / "voxceleb1" / rel).read_bytes() == data
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".dataprep", "fileparts.txt", "files.txt", "test_list.txt", "train_list.txt", "vox1_dev_wav.zip",
        "vox1_test_wav.zip", "voxceleb1"]
    assert not (tmp_path / "voxceleb1" / "id10001" / "junk").exists()


# ---------------------------------------------------------------------------
# Convert


@pytest.fixture(scope="module")
def one_m4a(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    return m4a_bytes(3, tmp_path_factory.mktemp("one_m4a"))


def make_voxceleb2(save, m4a, count):
    clip = save / "voxceleb2" / "id00001" / "clip"
    clip.mkdir(parents=True)
    for number in range(1, count + 1):
        (clip / f"{number:05d}.m4a").write_bytes(m4a)
    return clip


def start_convert(save, workers):
    environment = dict(os.environ)
    return subprocess.Popen([sys.executable, str(DATAPREP), "--save_path", str(save), "--convert",
                             "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=environment, start_new_session=True)


def wait_for_wavs(clip, process, count=1, timeout=30):
    deadline = time.monotonic() + timeout
    while len(list(clip.glob("*.wav"))) < count:
        assert process.poll() is None, "conversion finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)


@needs_ffmpeg
def test_conversion_killed_half_way_leaves_no_truncated_wav_and_resumes(tmp_path, one_m4a):
    count = 12
    clip = make_voxceleb2(tmp_path, one_m4a, count)
    process = start_convert(tmp_path, workers=1)
    wait_for_wavs(clip, process)
    os.killpg(process.pid, signal.SIGKILL)      # dataprep and its ffmpeg, with no chance to clean up
    process.communicate()

    survivors = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in clip.glob("*.wav")}
    assert 0 < len(survivors) < count
    reference = next(iter(survivors)).read_bytes()
    assert all(path.read_bytes() == reference for path in survivors), "a truncated wav survived"

    result = run_dataprep("--save_path", tmp_path, "--convert", "--workers", "2")
    assert result.returncode == 0, result.stderr
    wavs = sorted(clip.glob("*.wav"))
    assert len(wavs) == count
    assert all(path.read_bytes() == reference for path in wavs)
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in survivors} == survivors
    assert not list(clip.glob("*.partial"))


@needs_ffmpeg
def test_conversion_stopped_with_sigterm_cleans_up(tmp_path, one_m4a):
    clip = make_voxceleb2(tmp_path, one_m4a, 12)
    process = start_convert(tmp_path, workers=2)
    wait_for_wavs(clip, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "re-run" in stderr and "Traceback" not in stderr
    assert not list(clip.glob("*.partial"))
    reference = next(clip.glob("*.wav")).read_bytes()
    assert all(path.read_bytes() == reference for path in clip.glob("*.wav"))


@needs_ffmpeg
def test_conversion_failures_are_listed_and_exit_non_zero(tmp_path, one_m4a):
    clip = make_voxceleb2(tmp_path, one_m4a, 2)
    (clip / "00003.m4a").write_bytes(b"this is not audio")
    result = run_dataprep("--save_path", tmp_path, "--convert", "--workers", "2")
    assert_clean_failure(result, str(clip / "00003.m4a"), "1 of 3 files failed")
    assert sorted(path.name for path in clip.iterdir()) == [
        "00001.m4a", "00001.wav", "00002.m4a", "00002.wav", "00003.m4a"]
    assert soundfile.info(clip / "00001.wav").samplerate == RATE


def test_missing_ffmpeg_says_how_to_install_it(tmp_path):
    (tmp_path / "voxceleb2").mkdir()
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = run_dataprep("--save_path", tmp_path, "--convert", env={"PATH": str(empty_path)})
    assert_clean_failure(result, "ffmpeg not found", "apt-get install ffmpeg")


# ---------------------------------------------------------------------------
# Lists from files, demo, command line


def test_make_lists_writes_a_sorted_train_list(tmp_path):
    for rel in ["id00015/zz/00002.wav", "id00012/b/00001.wav", "id00015/zz/00001.wav", "id00012/a/00003.wav",
                "id00012/a/00003.m4a"]:
        path = tmp_path / "voxceleb2" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    result = run_dataprep("--save_path", tmp_path, "--make_lists")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train_list.txt").read_text() == (
        "id00012 id00012/a/00003.wav\n"
        "id00012 id00012/b/00001.wav\n"
        "id00015 id00015/zz/00001.wav\n"
        "id00015 id00015/zz/00002.wav\n")


def load_dataprep():
    spec = importlib.util.spec_from_file_location("dataprep_under_test", DATAPREP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_hands_over_to_the_demo_module_and_does_nothing_else(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "voxtrainer.data.demo", types.SimpleNamespace(make_demo_set=calls.append))
    assert load_dataprep().main(["--demo", "--save_path", str(tmp_path / "demo_root"), "--download"]) == 0
    assert calls == [tmp_path / "demo_root"]
    assert not (tmp_path / "demo_root").exists()


def test_no_step_is_a_usage_error(tmp_path):
    result = run_dataprep("--save_path", tmp_path)
    assert result.returncode == 2
    assert "nothing to do" in result.stderr


def test_no_shell_anywhere():
    for path in [DATAPREP, *sorted(DATA_PACKAGE.glob("*.py"))]:
        assert "shell=True" not in path.read_text(), path


def test_the_data_package_imports_without_torch():
    modules = ["voxtrainer.data"] + ["voxtrainer.data." + module.name
                                     for module in pkgutil.iter_modules([str(DATA_PACKAGE)])]
    assert "voxtrainer.data.download" in modules and "voxtrainer.data.demo" in modules
    code = "import %s; import sys; assert 'torch' not in sys.modules, 'torch imported'" % ", ".join(modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
