"""Resumable, md5-checked HTTP downloads with basic auth: the VoxCeleb parts, the VoxCeleb meta
lists and the --augment archives all come through Downloader.

A file only ever carries its final name once its checksum has been verified; until then it is
`<name>.download`, which a re-run resumes with a Range request. The password is only ever turned
into a header, and URLs are redacted before they appear in a message."""

import base64
import fnmatch
import getpass
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from voxtrainer.data.report import DataprepError, byte_bar, note

# (name on the server, name in DIR, pattern its first line must match)
META_LISTS = (
    ("train_list.txt", "train_list.txt", re.compile(r"^id\d+ \S+\.wav$")),
    ("veri_test.txt", "test_list.txt", re.compile(r"^[01] \S+\.wav \S+\.wav$")),
)
USER_ENV, PASSWORD_ENV = "VOXCELEB_USER", "VOXCELEB_PASSWORD"
MIRROR_HINT = "if the files have moved, point --fileparts/--files (and --lists_url) at a mirror's lists"
DOWNLOAD_SUFFIX = ".download"   # unfinished downloads; never matched by the part globs of files.txt
CHUNK = 1 << 20


def file_md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# URLs


def check_url(url, where):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DataprepError(f"{redact_url(url)} {where}: only http:// and https:// URLs are supported")
    if parts.username is not None or parts.password is not None:
        raise DataprepError(f"{redact_url(url)} {where}: remove the user name/password from the URL; "
                            f"use --user and {PASSWORD_ENV} instead")


def redact_url(url):
    """The URL without any user:password@ part, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def same_site(old_url, new_url):
    """A redirect may keep the credentials only to the same host, and never from https to http."""
    old, new = urllib.parse.urlsplit(old_url), urllib.parse.urlsplit(new_url)
    if old.hostname != new.hostname:
        return False
    return not (old.scheme == "https" and new.scheme != "https")


# ---------------------------------------------------------------------------
# Credentials


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


def resolve_credentials(user_flag, password_flag, prompt):
    """The --user/--password flags, then the environment, then (if `prompt` and a terminal) an
    interactive prompt.

    Returns None when no user name is known: the server may not need one.
    """
    user = user_flag or os.environ.get(USER_ENV)
    password = password_flag if password_flag is not None else os.environ.get(PASSWORD_ENV)
    if password_flag is not None:
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


# ---------------------------------------------------------------------------
# HTTP


class _AuthKeepingRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib drops unredirected headers on redirects (e.g. http -> https); keep
    the Authorization header where that is safe."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new_request = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new_request is not None and auth and same_site(req.full_url, newurl):
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
            if err.code == 401 and self.credentials is not None and not same_site(url, err.url):
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
        with open(partial, mode) as out, byte_bar(partial.name[:-len(DOWNLOAD_SUFFIX)], total, offset) as bar:
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
# What to fetch


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
