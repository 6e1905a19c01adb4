"""Resumable, md5-checked HTTP downloads with basic auth: the VoxCeleb parts, the VoxCeleb meta
lists and the --augment archives all come through Downloader.

A file only ever carries its final name once its checksum has been verified; until then it is
`<name>.download`, which a re-run resumes with a Range request. The password is only ever turned
into a header, and URLs are redacted before they appear in a message.

Every failure the user can do something about is a DataprepError (one line, no traceback): a bad URL,
an HTTP error, a redirect loop, a web page instead of the file, a full disk. Network trouble and
server overload are retried."""

import errno
import fnmatch
import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from voxtrainer.data.report import DataprepError, byte_bar, format_bytes, note
from voxtrainer.data.urls import PASSWORD_ENV, USER_ENV, check_url, redact_url, same_site

# (name on the server, name in DIR, pattern its first line must match)
META_LISTS = (
    ("train_list.txt", "train_list.txt", re.compile(r"^id\d+ \S+\.wav$")),
    ("veri_test.txt", "test_list.txt", re.compile(r"^[01] \S+\.wav \S+\.wav$")),
)
MIRROR_HINT = "if the files have moved, point --fileparts/--files (and --lists_url) at a mirror's lists"
DOWNLOAD_SUFFIX = ".download"   # unfinished downloads; never matched by the part globs of files.txt
CHUNK = 1 << 20
# A write that fails with one of these means a full disk (or quota): retrying cannot help.
DISK_FULL_ERRNOS = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())


def file_md5(path):
    return file_digest(path, "md5")


def file_digest(path, algorithm):
    """The hex digest (hashlib's `algorithm`) of a file, read in blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# URLs


class _AuthKeepingRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib drops unredirected headers on redirects (e.g. http -> https); keep
    the Authorization header where that is safe."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # urllib would follow a redirect to ftp:// too; the same words as its own refusals (see
        # _redirect_error).
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"{msg} - Redirection to url '{newurl}' is not allowed",
                                         headers, fp)
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
    """`hint` ends the messages about a missing file or a web page (what the user can do about it);
    with `refuse_web_pages`, an answer of Content-Type text/html is refused before its body is
    fetched (for files with no checksum to catch a login or error page with)."""

    def __init__(self, credentials, retries, retry_wait, timeout, hint=MIRROR_HINT, refuse_web_pages=False):
        self.credentials = credentials
        self.retries = retries
        self.retry_wait = retry_wait
        self.timeout = timeout
        self.hint = hint
        self.refuse_web_pages = refuse_web_pages
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
                self._check(url, partial, md5, validate)
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

    def _check(self, url, partial, md5, validate):
        if md5 is not None:
            actual = file_md5(partial)
            if actual != md5:
                web_page = _is_web_page(partial)
                partial.unlink()
                if web_page:    # a login or error page: fetching it again gives the same page
                    raise DataprepError(f"{redact_url(url)} sent a web page instead of the file (a login or "
                                        f"error page?); {self.hint}")
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
            if 300 <= err.code < 400:
                raise _redirect_error(url, err, self.hint) from None
            if err.code == 401 and self.credentials is not None and not same_site(url, err.url):
                raise DataprepError(f"{redact_url(url)} redirects to {redact_url(err.url)}, which asks for a "
                                    f"password; credentials are only sent to the host of the list") from None
            raise self._http_error(url, err.code, err.reason) from None
        except (http.client.InvalidURL, ValueError) as err:
            # A URL urllib or http.client cannot send (one a redirect led to: check_url vetted the
            # lists): the same every time, so not worth retrying.
            raise DataprepError(f"{redact_url(url)} cannot be fetched: it (or a URL it redirects to) is not "
                                f"a valid URL ({_one_line(err)})") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise TransientError(_describe_network_error(err)) from None
        with response:
            content_type = response.headers.get("Content-Type", "")
            if self.refuse_web_pages and content_type.split(";")[0].strip().lower() == "text/html":
                raise DataprepError(f"{redact_url(url)} sent a web page ({content_type}) instead of the file (a "
                                    f"login or error page?); {self.hint}")
            mode = self._resume_mode(response, partial, offset)
            if mode == "wb":
                offset = 0
                # The server sends the whole file again: what is there cannot be resumed from it, and
                # its space counts as free for the check below.
                partial.unlink(missing_ok=True)
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if length is not None:
                free = _free_space(partial)
                if free < length:
                    raise _no_space(partial, length, free)
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
        try:
            with open(partial, mode) as out, byte_bar(partial.name[:-len(DOWNLOAD_SUFFIX)], total, offset) as bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as err:
                        raise TransientError(_describe_network_error(err)) from None
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        except OSError as err:
            # Opening, writing or closing the file: the network's errors became TransientError above.
            if err.errno in DISK_FULL_ERRNOS:
                raise _no_space(partial, None if total is None else total - _size(partial),
                                _free_space(partial)) from None
            raise DataprepError(f"cannot write {partial}: {err.strerror or err}") from None
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
                                 f"download this file; {self.hint}")
        if code in (404, 410):
            return DataprepError(f"{url} not found (HTTP {code}); {self.hint}")
        if code in (408, 429) or code >= 500:
            return TransientError(f"server error HTTP {code} {_one_line(reason)}")
        return DataprepError(f"{url}: HTTP {code} {_one_line(reason)}")


def _redirect_error(url, err, hint):
    """The one-line error for a redirect urllib did not follow."""
    reason = str(err.reason)
    if reason.startswith(urllib.request.HTTPRedirectHandler.inf_msg):
        return DataprepError(f"{redact_url(url)} redirects in a loop (or more than "
                             f"{urllib.request.HTTPRedirectHandler.max_redirections} times), so it cannot be "
                             f"downloaded; {hint}")
    if "Redirection to url" in reason:
        return DataprepError(f"{redact_url(url)} redirects to {redact_url(err.url)}: only http:// and https:// "
                             f"URLs are supported")
    return DataprepError(f"{redact_url(url)}: HTTP {err.code} {_one_line(reason)} (a redirect without a target)")


def _one_line(text):
    return " ".join(str(text).split())


def _no_space(partial, needed, free):
    """The one-line error for a download that does not fit on the disk (checked from Content-Length
    before it starts, or met as ENOSPC/EDQUOT while writing).

    What was downloaded stays in `partial`: a re-run after freeing space resumes from it, so the
    bytes are not fetched twice, and the space needed (`needed`, the rest of the download) is the
    same either way. Deleting it would free space that the re-run needs again; the message says
    where it is and how big, for a user who would rather give up on the download."""
    dest = partial.with_name(partial.name[:-len(DOWNLOAD_SUFFIX)])
    need = (f"{format_bytes(needed)} more needed" if needed is not None
            else "more space needed (the server did not say how much)")
    kept = _size(partial)
    resume = (f"; the {format_bytes(kept)} already downloaded stay in {partial} and a re-run resumes from there"
              if kept else "")
    return DataprepError(f"not enough disk space for {dest}: {need}, {format_bytes(free)} free{resume}; free "
                         f"some space (or choose another --save_path) and re-run the same command")


def _free_space(path):
    return shutil.disk_usage(path.parent).free


def _is_web_page(path):
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


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
        if not name or name == "..":
            raise DataprepError(f"{redact_url(url)}: the URL does not end in a file name")
        dest = save_path / name
        joined = None if dest.exists() else joined_zip_of(name)
        if joined:
            print(f"{name}: already joined into {joined}, skipping")
            continue
        fetch_verified(dest, url, md5, downloader)


def fetch_verified(dest, url, md5, downloader):
    """Download `url` to `dest` unless a file with the right md5 is already there."""
    if dest.is_dir():
        raise DataprepError(f"{dest} is a folder, but {redact_url(url)} is to be downloaded there: rename "
                            f"the folder or fetch from a URL with another file name")
    if dest.exists():
        try:
            actual = file_md5(dest)
        except OSError as err:
            raise DataprepError(f"cannot read {dest} to check it: {err.strerror or err}") from None
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
