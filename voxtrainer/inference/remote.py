"""--initial_model as an http(s) URL: downloaded once into a cache folder and used from there as a
local file, in every mode that takes --initial_model.

The download is voxtrainer.data.download's (resumable, retried, redirects, no half-written file under
the final name); this module only decides where the file lives and what it must hash to. The sha256
is printed every time, so that a run's log says exactly which weights it used; with
--initial_model_sha256 it is checked, and a download that does not match is removed."""

import contextlib
import fcntl
import hashlib
import os
import re
import urllib.parse
from pathlib import Path

from voxtrainer import log
from voxtrainer.data.download import Downloader, file_digest
from voxtrainer.data.urls import check_url, redact_url
from voxtrainer.errors import InputError

SHA256 = re.compile(r"[0-9a-fA-F]{64}")
URL_HINT = "check the --initial_model URL"
RETRIES, RETRY_WAIT, TIMEOUT = 3, 2.0, 60.0


def is_url(text):
    return text.lower().startswith(("http://", "https://"))


def default_cache():
    """$XDG_CACHE_HOME/voxtrainer, else ~/.cache/voxtrainer (where other tools keep downloaded models)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voxtrainer"


def cached_name(url):
    """A file name for `url` in the cache: a hash of the whole URL (two URLs never share a file) and
    the URL's own file name, kept to characters that are safe in any file system."""
    tail = Path(urllib.parse.urlsplit(url).path).name
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", tail).lstrip(".") or "model"
    return "%s-%s" % (hashlib.sha256(url.encode()).hexdigest()[:16], tail)


def local_model(initial_model, cache_dir, sha256, retries=RETRIES, retry_wait=RETRY_WAIT, timeout=TIMEOUT):
    """The local path of --initial_model: itself for a file, the cached download for an http(s) URL
    (fetched when not cached yet). `cache_dir` "" means default_cache(). When `sha256` is given the
    file must hash to it: a mismatching download is removed (InputError), a mismatching cached one
    fetched again (the file behind the URL may have changed), a mismatching local file refused."""
    if sha256 and not SHA256.fullmatch(sha256):
        raise InputError("--initial_model_sha256 %s: not a sha256 (64 hexadecimal digits)" % sha256)
    expected = sha256.lower() if sha256 else None
    if not is_url(initial_model):
        if expected and os.path.isfile(initial_model):
            check_sha256(Path(initial_model), expected, initial_model, remove=False)
        return initial_model
    url = initial_model
    check_url(url, "(--initial_model)")
    folder = Path(cache_dir) if cache_dir else default_cache()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError("cannot create the model cache %s: %s (choose another --model_cache)" % (
            folder, error.strerror or error))
    path = folder / cached_name(url)
    with cache_lock(folder, url):
        return cached_or_downloaded(url, path, expected, Downloader(
            None, retries, retry_wait, timeout, hint=URL_HINT, refuse_web_pages=True))


@contextlib.contextmanager
def cache_lock(folder, url):
    """Hold the cache folder's lock (flock on the folder itself, so that no lock file is left in it)
    for the block: two runs fetching into one cache at once would otherwise append to the same
    partial download. The second waits, saying so, then finds the file cached. The kernel drops the
    lock of a killed process."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as error:
        raise InputError("cannot open the model cache %s: %s (choose another --model_cache)" % (
            folder, error.strerror or error))
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("--initial_model %s: waiting for another run using the model cache %s" % (
                redact_url(url), folder))
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def cached_or_downloaded(url, path, expected, downloader):
    """The cached file at `path` when it is there and hashes to `expected` (None: anything), else
    `url` downloaded there (a partial download resumed); the cache lock held."""
    if path.is_file():
        actual = file_digest(path, "sha256")
        if expected is None or actual == expected:
            log.info("--initial_model %s: cached as %s (sha256 %s)" % (redact_url(url), path, actual))
            return str(path)
        log.warning("%s: sha256 %s, not --initial_model_sha256 %s; fetching it again" % (path, actual, expected))
        path.unlink()
    log.info("Downloading --initial_model %s into %s" % (redact_url(url), path.parent))
    digests = []  # computed once, while the download still has its temporary name
    downloader.download(url, path, validate=lambda partial: digests.append(
        check_sha256(partial, expected, url, remove=True)))
    log.info("--initial_model %s: downloaded as %s (sha256 %s)" % (redact_url(url), path, digests[-1]))
    return str(path)


def check_sha256(path, expected, shown, remove):
    """`path`'s sha256; InputError when it is not `expected` (None: anything goes), after deleting the
    file when `remove`."""
    actual = file_digest(path, "sha256")
    if expected is not None and actual != expected:
        if remove:
            path.unlink()
        raise InputError("--initial_model %s: sha256 %s, not --initial_model_sha256 %s%s" % (
            redact_url(shown), actual, expected, "; the download was removed" if remove else ""))
    return actual
