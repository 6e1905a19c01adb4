#!/usr/bin/env python
"""Download, extract and convert the VoxCeleb datasets.

    python dataprep.py --save_path DIR --download --user USER --password PASSWORD
    python dataprep.py --save_path DIR --extract
    python dataprep.py --save_path DIR --convert

Resulting layout::

    DIR/voxceleb1/idXXXXX/<clip>/00001.wav   (VoxCeleb1, test data)
    DIR/voxceleb2/idXXXXX/<clip>/00001.wav   (VoxCeleb2, training data; .m4a kept)
    DIR/train_list.txt, DIR/test_list.txt

Every step can be interrupted and re-run: downloads resume, finished files
are skipped, and nothing half-written ever carries its final name.
"""

import argparse
import base64
import fnmatch
import getpass
import hashlib
import http.client
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

HERE = Path(__file__).resolve().parent
DEFAULT_FILEPARTS = HERE / "lists" / "fileparts.txt"
DEFAULT_FILES = HERE / "lists" / "files.txt"
DEFAULT_LISTS_URL = "http://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/"
# (name on the server, name in DIR, pattern its first line must match)
META_LISTS = (
    ("train_list.txt", "train_list.txt", re.compile(r"^id\d+ \S+\.wav$")),
    ("veri_test.txt", "test_list.txt", re.compile(r"^[01] \S+\.wav \S+\.wav$")),
)
USER_ENV, PASSWORD_ENV = "VOXCELEB_USER", "VOXCELEB_PASSWORD"
MIRROR_HINT = "if the files have moved, point --fileparts/--files (and --lists_url) at a mirror's lists"
DOWNLOAD_SUFFIX = ".download"   # unfinished downloads; never matched by the part globs of files.txt
JOIN_SUFFIX = ".joining"
CHUNK = 1 << 20
STATE_DIR = ".dataprep"         # extraction staging and markers, inside DIR
SPEAKER_DIR = re.compile(r"^id\d+$")
FFMPEG_INSTALL_HINT = ("install it, e.g. 'sudo apt-get install ffmpeg' (Debian/Ubuntu), "
                       "'conda install -c conda-forge ffmpeg' or 'brew install ffmpeg' (macOS)")


class DataprepError(Exception):
    """An expected failure: reported as one line, without a traceback."""


# ---------------------------------------------------------------------------
# Lists


def read_fileparts(path):
    """`url md5` per line -> [(url, md5)]."""
    rows = [(fields[0], fields[1]) for fields in _read_list(path, 2)]
    for url, _ in rows:
        check_url(url, f"in {path}")
    return rows


def check_url(url, where):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DataprepError(f"{redact_url(url)} {where}: only http:// and https:// URLs are supported")
    if parts.username is not None or parts.password is not None:
        raise DataprepError(f"{redact_url(url)} {where}: remove the user name/password from the URL; "
                            f"use --user and {PASSWORD_ENV} instead")


def read_files(path):
    """`parts-glob joined.zip md5` per line -> [(glob, joined, md5)]."""
    return [tuple(fields) for fields in _read_list(path, 3)]


def _read_list(path, n_fields):
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataprepError(f"cannot read list {path}: {err.strerror}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != n_fields or not re.fullmatch(r"[0-9a-fA-F]{32}", fields[-1]):
            raise DataprepError(f"{path}:{number}: expected {n_fields} fields ending in an md5 sum, "
                                f"got {line!r}")
        rows.append(fields[:-1] + [fields[-1].lower()])
    return rows


def file_md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def redact_url(url):
    """The URL without any user:password@ part, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def note(message):
    tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------------
# Credentials and HTTP


class Credentials:
    """User name and password; the password is only ever turned into a header."""

    def __init__(self, user, password):
        self.user = user
        self._password = password

    def header(self):
        token = base64.b64encode(f"{self.user}:{self._password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __repr__(self):
        return f"Credentials(user={self.user!r}, password=***)"


def resolve_credentials(args, prompt):
    """Flags, then environment, then (if `prompt` and a terminal) an interactive prompt.

    Returns None when no user name is known: the server may not need one.
    """
    user = args.user or os.environ.get(USER_ENV)
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if args.password is not None:
        note(f"warning: --password is visible to other users in the process list; "
             f"prefer the {PASSWORD_ENV} environment variable or the prompt")
    interactive = prompt and sys.stdin.isatty()
    if not user and interactive:
        user = input("VoxCeleb user name: ").strip()
    if not user:
        return None
    if password is None and interactive:
        password = getpass.getpass(f"VoxCeleb password for {user}: ")
    if password is None:
        raise DataprepError(f"no password for user {user}: set {PASSWORD_ENV} or run in a terminal to be asked")
    return Credentials(user, password)


def _same_site(old_url, new_url):
    """A redirect may keep the credentials only to the same host, and never from https to http."""
    old, new = urllib.parse.urlsplit(old_url), urllib.parse.urlsplit(new_url)
    if old.hostname != new.hostname:
        return False
    return not (old.scheme == "https" and new.scheme != "https")


class _AuthKeepingRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib drops unredirected headers on redirects (e.g. http -> https); keep
    the Authorization header where that is safe."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new_request = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new_request is not None and auth and _same_site(req.full_url, newurl):
            new_request.add_unredirected_header("Authorization", auth)
        return new_request


class TransientError(Exception):
    """A failure worth retrying (network trouble, server overload, bad checksum)."""


class ChecksumMismatch(TransientError):
    pass


class Downloader:
    def __init__(self, credentials, retries, retry_wait, timeout):
        self.credentials = credentials
        self.retries = retries
        self.retry_wait = retry_wait
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_AuthKeepingRedirectHandler())

    def download(self, url, dest, md5=None, validate=None):
        """Fetch `url` into `dest` (resuming an unfinished download) and check it.

        `dest` only ever appears complete: the data goes to `dest.download`
        first and is renamed once its md5 (or `validate`) has been checked.
        """
        partial = dest.with_name(dest.name + DOWNLOAD_SUFFIX)
        failures = 0
        while True:
            size_before = _size(partial)
            try:
                self._fetch(url, partial)
                self._check(partial, md5, validate)
                os.replace(partial, dest)
                return
            except TransientError as err:
                # A connection that keeps dropping but moves the download forward
                # does not use up the retries.
                made_progress = _size(partial) > size_before and not isinstance(err, ChecksumMismatch)
                failures = 1 if made_progress else failures + 1
                if failures > self.retries:
                    raise DataprepError(f"giving up on {redact_url(url)} after {failures} failed "
                                        f"attempts ({err}); re-run the same command to resume") from None
                wait = self.retry_wait * 2 ** (failures - 1)
                note(f"{dest.name}: {err}; retrying in {wait:g} s")
                time.sleep(wait)

    @staticmethod
    def _check(partial, md5, validate):
        if md5 is not None:
            actual = file_md5(partial)
            if actual != md5:
                partial.unlink()
                raise ChecksumMismatch(f"checksum mismatch (expected {md5}, got {actual})")
        if validate is not None:
            validate(partial)

    def _fetch(self, url, partial):
        """Append the rest of `url` to `partial` (or start over if the server ignores the Range)."""
        offset = _size(partial)
        request = urllib.request.Request(url, headers={"User-Agent": "voxceleb-dataprep"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        if self.credentials is not None:
            request.add_unredirected_header("Authorization", self.credentials.header())
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 416 and offset:
                return      # already complete (or too long): the checksum decides
            if err.code == 401 and self.credentials is not None and not _same_site(url, err.url):
                raise DataprepError(f"{redact_url(url)} redirects to {redact_url(err.url)}, which asks for a "
                                    f"password; credentials are only sent to the host of the list") from None
            raise self._http_error(url, err.code, err.reason) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise TransientError(_describe_network_error(err)) from None
        with response:
            mode = self._resume_mode(response, partial, offset)
            if mode == "wb":
                offset = 0
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            self._stream(response, partial, mode, offset, length)

    @staticmethod
    def _resume_mode(response, partial, offset):
        if response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return "ab"
            partial.unlink()
            raise TransientError("server answered with the wrong byte range, starting over")
        return "wb"     # 200: the server sends the whole file, so start over

    @staticmethod
    def _stream(response, partial, mode, offset, length):
        received = 0
        total = offset + length if length is not None else None
        with open(partial, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                               unit_divisor=1024, desc=partial.name[:-len(DOWNLOAD_SUFFIX)],
                                               leave=False) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                raise TransientError(_describe_network_error(err)) from None
        # http.client returns a short body silently when the server hangs up early.
        if length is not None and received < length:
            raise TransientError(f"connection closed after {offset + received} of {total} bytes")

    def _http_error(self, url, code, reason):
        url = redact_url(url)
        if code == 401:
            if self.credentials is None:
                return DataprepError(f"{url} needs a user name and password: pass --user, set "
                                     f"{USER_ENV}/{PASSWORD_ENV} or run in a terminal to be asked")
            return DataprepError(f"wrong user name or password for {url} (HTTP 401): check the "
                                 f"credentials from the VoxCeleb registration e-mail")
        if code == 403:
            return DataprepError(f"access to {url} denied (HTTP 403): check that your account may "
                                 f"download this file; {MIRROR_HINT}")
        if code in (404, 410):
            return DataprepError(f"{url} not found (HTTP {code}); {MIRROR_HINT}")
        if code in (408, 429) or code >= 500:
            return TransientError(f"server error HTTP {code} {reason}")
        return DataprepError(f"{url}: HTTP {code} {reason}")


def _size(path):
    return path.stat().st_size if path.exists() else 0


def _describe_network_error(err):
    reason = getattr(err, "reason", None) or err
    return f"network error: {reason}" if str(reason) else f"network error: {type(reason).__name__}"


# ---------------------------------------------------------------------------
# Download


def download_parts(save_path, fileparts, joined_groups, downloader):
    """Fetch every part of `fileparts` into DIR, skipping verified and already-joined ones."""
    joined_zip_of = _JoinedZips(save_path, joined_groups)
    for url, md5 in fileparts:
        name = Path(urllib.parse.urlsplit(url).path).name
        if not name:
            raise DataprepError(f"{redact_url(url)}: the URL does not end in a file name")
        dest = save_path / name
        joined = None if dest.exists() else joined_zip_of(name)
        if joined:
            print(f"{name}: already joined into {joined}, skipping")
            continue
        fetch_verified(dest, url, md5, downloader)


def fetch_verified(dest, url, md5, downloader):
    """Download `url` to `dest` unless a file with the right md5 is already there."""
    if dest.exists():
        actual = file_md5(dest)
        if actual == md5:
            print(f"{dest.name}: already downloaded, checksum OK")
            return
        note(f"{dest.name}: checksum mismatch (expected {md5}, got {actual}), fetching it again")
        dest.unlink()
    downloader.download(url, dest, md5=md5)
    print(f"{dest.name}: downloaded, checksum OK")


class _JoinedZips:
    """Part name -> the complete joined zip it went into (a re-run after --extract
    must not fetch the deleted parts again), or None."""

    def __init__(self, save_path, groups):
        self._save_path = save_path
        self._groups = groups
        self._complete = {}

    def __call__(self, part_name):
        for pattern, zip_name, md5 in self._groups:
            if fnmatch.fnmatchcase(part_name, pattern):
                if zip_name not in self._complete:
                    joined = self._save_path / zip_name
                    self._complete[zip_name] = joined.exists() and file_md5(joined) == md5
                if self._complete[zip_name]:
                    return zip_name
        return None


def download_meta_lists(save_path, lists_url, downloader):
    """DIR/train_list.txt and DIR/test_list.txt from `lists_url`."""
    base = lists_url if lists_url.endswith("/") else lists_url + "/"
    check_url(base, "(--lists_url)")
    for remote_name, local_name, first_line in META_LISTS:
        dest = save_path / local_name
        if dest.exists():
            print(f"{local_name}: already there, skipping")
            continue
        url = urllib.parse.urljoin(base, remote_name)
        downloader.download(url, dest, validate=_list_validator(url, first_line))
        print(f"{local_name}: downloaded from {redact_url(url)}")


def _list_validator(url, first_line):
    def validate(path):
        with open(path, "rb") as handle:
            head = handle.readline(4096).decode("utf-8", "replace").strip()
        if not first_line.match(head):
            path.unlink()
            raise DataprepError(f"{redact_url(url)} is not a VoxCeleb list (it starts with {head[:60]!r}); "
                                f"use --lists_url for a mirror, or --make_lists to build train_list.txt "
                                f"from the converted files")
    return validate


# ---------------------------------------------------------------------------
# Extract


class UnsafeMember(Exception):
    pass


def safe_member_path(root, info):
    """Where zip member `info` goes under `root`; raises UnsafeMember if it would escape."""
    name = info.filename
    kind = stat.S_IFMT(info.external_attr >> 16)    # 0 when the zip was not made on Unix
    if kind == stat.S_IFLNK:
        raise UnsafeMember("is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeMember("is not a regular file or folder")
    if "\x00" in name:
        raise UnsafeMember("has a NUL byte in its name")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise UnsafeMember("has an absolute path")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember("points outside the folder ('..')")
    if not parts:
        raise UnsafeMember("has an empty name")
    dest = root.joinpath(*parts)
    if not dest.resolve().is_relative_to(root.resolve()):
        raise UnsafeMember("points outside the folder")
    return dest


def join_parts(save_path, groups, keep_parts):
    """Concatenate each files.txt group into its zip; parts are deleted only after the md5 matches."""
    for pattern, zip_name, md5 in groups:
        joined = save_path / zip_name
        parts = sorted(path for path in save_path.glob(pattern) if not path.name.endswith(DOWNLOAD_SUFFIX))
        unfinished = sorted(save_path.glob(pattern + DOWNLOAD_SUFFIX))
        if joined.exists():
            actual = file_md5(joined)
            if actual == md5:
                print(f"{zip_name}: already joined, checksum OK")
                _remove_parts(parts, keep_parts)
                continue
            if not parts:
                raise DataprepError(f"{joined}: checksum mismatch (expected {md5}, got {actual}) and no "
                                    f"parts to rebuild it from: delete it and re-run --download")
        if unfinished:
            raise DataprepError(f"{unfinished[0]} is an unfinished download: re-run --download first")
        if not parts:
            note(f"{zip_name}: no parts {save_path / pattern} found, skipping")
            continue
        _check_free_space(save_path, sum(part.stat().st_size for part in parts), f"join {zip_name}")
        temporary = joined.with_name(joined.name + JOIN_SUFFIX)
        actual = _concatenate(parts, temporary, zip_name)
        if actual != md5:
            temporary.unlink()
            raise DataprepError(f"{zip_name}: checksum of the joined parts {pattern} is wrong (expected {md5}, "
                                f"got {actual}): re-run --download to check and re-fetch the parts")
        os.replace(temporary, joined)
        print(f"{zip_name}: joined {len(parts)} parts, checksum OK")
        _remove_parts(parts, keep_parts)


def _concatenate(parts, dest, label):
    """Write the parts one after the other into `dest`; returns the md5 of the result."""
    digest = hashlib.md5()
    total = sum(part.stat().st_size for part in parts)
    with open(dest, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                       desc=f"join {label}", leave=False) as bar:
        for part in parts:
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    return digest.hexdigest()


def _remove_parts(parts, keep_parts):
    if keep_parts:
        return
    for part in parts:
        part.unlink()


def _check_free_space(path, needed, what):
    free = shutil.disk_usage(path).free
    if free < needed:
        raise DataprepError(f"not enough free space in {path} to {what}: need {needed / 1e9:.1f} GB, "
                            f"have {free / 1e9:.1f} GB")


def extract_all(save_path):
    """Extract every DIR/*.zip not yet extracted and move its speakers into voxceleb1/2."""
    zips = sorted(save_path.glob("*.zip"))
    if not zips:
        note(f"no zip files in {save_path}: nothing to extract")
    for zip_path in zips:
        extract_zip(save_path, zip_path)


def extract_zip(save_path, zip_path):
    marker = save_path / STATE_DIR / f"{zip_path.name}.extracted"
    stamp = _zip_stamp(zip_path)
    if marker.exists() and marker.read_text() == stamp:
        print(f"{zip_path.name}: already extracted, skipping")
        return
    staging = save_path / STATE_DIR / "staging" / zip_path.name
    if staging.exists():
        shutil.rmtree(staging)      # leftovers of an interrupted run: start this zip afresh
    staging.mkdir(parents=True)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = _plan_extraction(archive, staging, zip_path)
            _check_free_space(save_path, sum(info.file_size for info, _ in members), f"extract {zip_path.name}")
            _write_members(archive, members, zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise DataprepError(f"{zip_path} is damaged ({err}): delete it and re-run --download and "
                            f"--extract") from None
    _lay_out(save_path, staging, zip_path.name)
    shutil.rmtree(staging)
    marker.write_text(stamp)
    print(f"{zip_path.name}: extracted")


def _zip_stamp(zip_path):
    info = zip_path.stat()
    return f"{info.st_size} {info.st_mtime_ns}"


def _plan_extraction(archive, staging, zip_path):
    """Every member with its destination; refuses the whole zip before writing anything."""
    planned = []
    for info in archive.infolist():
        try:
            planned.append((info, safe_member_path(staging, info)))
        except UnsafeMember as err:
            raise DataprepError(f"refusing to extract {zip_path}: member {info.filename!r} {err}") from None
    return planned


def _write_members(archive, members, zip_path):
    total = sum(info.file_size for info, _ in members)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"extract {zip_path.name}",
              leave=False) as bar:
        for info, dest in members:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            bar.update(info.file_size)


def _lay_out(save_path, staging, zip_name):
    """Move the speaker folders (under wav/, dev/aac/, aac/, ...) into DIR/voxceleb1 or DIR/voxceleb2;
    anything else keeps its place relative to DIR, as a plain unzip into DIR would."""
    for root in _speaker_roots(staging):
        dataset = _dataset_for(zip_name, root.relative_to(staging))
        target = save_path / dataset
        target.mkdir(exist_ok=True)
        for speaker in sorted(root.iterdir()):
            if speaker.is_dir() and SPEAKER_DIR.match(speaker.name):
                _merge_move(speaker, target / speaker.name)
    _prune_empty_dirs(staging)
    for leftover in sorted(staging.iterdir()):
        _merge_move(leftover, save_path / leftover.name)


def _speaker_roots(staging, max_depth=4):
    """Folders (shallowest first) that directly hold idXXXXX folders."""
    roots, level = [], [staging]
    for _ in range(max_depth):
        next_level = []
        for folder in level:
            children = sorted(child for child in folder.iterdir() if child.is_dir())
            if any(SPEAKER_DIR.match(child.name) for child in children):
                roots.append(folder)
            else:
                next_level.extend(children)
        level = next_level
    return roots


def _dataset_for(zip_name, root):
    if zip_name.startswith("vox1"):
        return "voxceleb1"
    if zip_name.startswith("vox2"):
        return "voxceleb2"
    return "voxceleb2" if "aac" in root.parts else "voxceleb1"


def _merge_move(source, dest):
    """Move `source` to `dest`; files left by an interrupted earlier run are replaced."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(source, dest)
    elif source.is_dir() and dest.is_dir():
        for child in sorted(source.iterdir()):
            _merge_move(child, dest / child.name)
        source.rmdir()
    elif source.is_file() and dest.is_file():
        os.replace(source, dest)
    else:
        raise DataprepError(f"cannot move {source} to {dest}: one is a file, the other a folder; "
                            f"remove {dest} and re-run --extract")


def _prune_empty_dirs(folder):
    """Remove the folders the speaker moves emptied (dev/aac/), so they do not reappear in DIR."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# ---------------------------------------------------------------------------
# Convert


def find_conversion_work(save_path):
    """(all m4a files, those without a wav yet); deletes temporary files of interrupted runs."""
    sources, todo = [], []
    for clip_dir in sorted(path for path in save_path.glob("voxceleb2/*/*") if path.is_dir()):
        names = set(os.listdir(clip_dir))
        for name in sorted(names):
            if name.endswith(".partial"):
                (clip_dir / name).unlink(missing_ok=True)
            elif name.endswith(".m4a"):
                sources.append(clip_dir / name)
                if name[:-len(".m4a")] + ".wav" not in names:
                    todo.append(clip_dir / name)
    return sources, todo


class Converter:
    """Runs ffmpeg per file; each output is written under a temporary name and renamed on success."""

    def __init__(self, ffmpeg):
        self.ffmpeg = ffmpeg
        self._running = set()
        self._lock = threading.Lock()
        self._stopping = False

    def convert(self, source):
        """Returns None on success, else a one-line reason."""
        output = source.with_suffix(".wav")
        # The pid keeps a still-running ffmpeg of a killed earlier run off our file.
        temporary = output.with_name(f"{output.name}.{os.getpid()}.partial")
        command = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
                   "-vn", "-ac", "1", "-ar", "16000", "-acodec", "pcm_s16le", "-f", "wav", str(temporary)]
        with self._lock:
            if self._stopping:
                return "interrupted"
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            self._running.add(process)
        try:
            _, error = process.communicate()
        finally:
            with self._lock:
                self._running.discard(process)
        if process.returncode == 0 and temporary.exists() and temporary.stat().st_size > 44:
            os.replace(temporary, output)
            return None
        temporary.unlink(missing_ok=True)
        if process.returncode == 0:
            return "ffmpeg produced no audio"
        lines = error.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"ffmpeg exited with status {process.returncode}"

    def stop(self):
        with self._lock:
            self._stopping = True
            for process in self._running:
                process.kill()


def convert_all(save_path, workers):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DataprepError(f"ffmpeg not found on PATH; {FFMPEG_INSTALL_HINT}")
    sources, todo = find_conversion_work(save_path)
    if not sources:
        raise DataprepError(f"no {save_path / 'voxceleb2'}/*/*/*.m4a files: run --extract first")
    print(f"converting {len(todo)} of {len(sources)} m4a files to 16 kHz wav with {workers} workers "
          f"({len(sources) - len(todo)} already done)")
    converter = Converter(ffmpeg)
    failures = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(converter.convert, source): source for source in todo}
        with tqdm(total=len(sources), initial=len(sources) - len(todo), unit="file", desc="convert") as bar:
            for future in as_completed(futures):
                reason = future.result()
                if reason is not None:
                    failures.append((futures[future], reason))
                bar.update(1)
    except BaseException:
        converter.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    if failures:
        for source, reason in sorted(failures):
            print(f"failed: {source}: {reason}", file=sys.stderr)
        raise DataprepError(f"{len(failures)} of {len(todo)} files failed to convert (listed above); "
                            f"fix or delete them and re-run --convert")


def default_workers():
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# Train list from files


def make_train_list(save_path):
    """DIR/train_list.txt (`idXXXXX idXXXXX/clip/00001.wav`, sorted) from DIR/voxceleb2/*/*/*.wav."""
    root = save_path / "voxceleb2"
    utterances = sorted(path.relative_to(root).as_posix() for path in root.glob("id*/*/*.wav"))
    if not utterances:
        raise DataprepError(f"no {root}/idXXXXX/*/*.wav files: run --extract and --convert first")
    dest = save_path / "train_list.txt"
    if dest.exists():
        note(f"replacing {dest}")
    temporary = dest.with_name(dest.name + ".partial")
    temporary.write_text("".join(f"{path.split('/', 1)[0]} {path}\n" for path in utterances))
    os.replace(temporary, dest)
    speakers = len({path.split("/", 1)[0] for path in utterances})
    print(f"wrote {dest}: {len(utterances)} utterances of {speakers} speakers")


# ---------------------------------------------------------------------------
# Command line


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
                       help="write DIR/train_list.txt from the converted DIR/voxceleb2 files")
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
    sources.add_argument("--augment_list", type=Path, default=HERE / "lists" / "augment.txt",
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


def run(args):
    if args.demo:
        from demoset import make_demo_set
        make_demo_set(args.save_path)
        return
    save_path = args.save_path
    if args.download or args.lists_only:
        save_path.mkdir(parents=True, exist_ok=True)
        _run_download(args, save_path)
    elif args.augment:
        save_path.mkdir(parents=True, exist_ok=True)
    elif not save_path.is_dir():
        raise DataprepError(f"{save_path} does not exist: check --save_path or run --download first")
    if args.extract:
        join_parts(save_path, read_files(args.files), args.keep_parts)
        extract_all(save_path)
    if args.convert:
        convert_all(save_path, args.workers)
    if args.make_lists:
        make_train_list(save_path)
    if args.augment:
        # augment_data imports this module by name; when it runs as a script, hand it this very
        # module, so that its DataprepError is the one main() catches.
        sys.modules.setdefault("dataprep", sys.modules[__name__])
        from augment_data import prepare_augmentation
        # OpenSLR needs no login: the VoxCeleb credentials are not sent there.
        downloader = Downloader(None, args.retries, args.retry_wait, args.timeout)
        prepare_augmentation(save_path, args.augment_list, downloader, args.workers)


def _run_download(args, save_path):
    if args.lists_only:
        downloader = Downloader(resolve_credentials(args, prompt=False), args.retries, args.retry_wait, args.timeout)
        download_meta_lists(save_path, args.lists_url, downloader)
        return
    fileparts = read_fileparts(args.fileparts)
    groups = read_files(args.files) if args.files.exists() else []
    downloader = Downloader(resolve_credentials(args, prompt=True), args.retries, args.retry_wait, args.timeout)
    download_parts(save_path, fileparts, groups, downloader)
    try:
        download_meta_lists(save_path, args.lists_url, downloader)
    except DataprepError as err:
        # The parts are what matters; a missing list can be rebuilt with --make_lists.
        note(f"warning: {err}")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    actions = (args.download, args.lists_only, args.extract, args.convert, args.make_lists, args.demo, args.augment)
    if not any(actions):
        parser.error("nothing to do: give --download, --lists_only, --extract, --convert, --make_lists, --demo "
                     "or --augment")
    if args.workers < 1 or args.retries < 0 or args.retry_wait < 0:
        parser.error("--workers must be >= 1, --retries and --retry_wait >= 0")
    try:
        run(args)
    except DataprepError as err:
        print(f"dataprep.py: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dataprep.py: interrupted; re-run the same command to continue where it stopped", file=sys.stderr)
        return 130
    return 0


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Let `kill` stop running ffmpeg processes and leave a clean state, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    sys.exit(main())
