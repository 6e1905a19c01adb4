"""Where the data steps fetch from, and as whom: URLs are checked before use (http or https, a
host, no credentials in them), redacted before they appear in a message, followed across
redirects only within one site, and the user and password come from the flags, the environment
or a prompt, never echoed."""

import base64
import getpass
import os
import re
import sys
import urllib.parse

from voxtrainer.data.report import DataprepError, note

USER_ENV, PASSWORD_ENV = "VOXCELEB_USER", "VOXCELEB_PASSWORD"


def check_url(url, where):
    """Refuse, before anything is fetched, a URL that cannot be fetched as written."""
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:      # e.g. an unclosed [IPv6 address]
        raise DataprepError(f"{shown} {where}: not a valid URL") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise DataprepError(f"{shown} {where}: remove the user name/password from the URL; "
                            f"use --user and {PASSWORD_ENV} instead")
    if parts.scheme not in ("http", "https"):
        raise DataprepError(f"{shown} {where}: only http:// and https:// URLs are supported")
    try:
        parts.port
    except ValueError:
        raise DataprepError(f"{shown} {where}: not a valid URL (the port is not a number from 0 to 65535)") from None
    if not parts.hostname:
        raise DataprepError(f"{shown} {where}: not a valid URL (no host name)")
    odd = next((char for char in url if not "!" <= char <= "~"), None)
    if odd is not None:
        raise DataprepError(f"{shown} {where}: not a valid URL (spaces, control and non-ASCII characters such as "
                            f"{odd!r} must be percent-encoded)")


# From the first "://" to the last "@": the user:password@ part of every URL in the text, even one whose
# password holds unencoded "/", "@", "#" or spaces. A path or query containing "@" loses more than
# the credentials in messages, which is the safe side to err on.
_CREDENTIALS = re.compile(r"://.*@")


def redact_url(text):
    """The URL (or a list line holding URLs) without any user:password@ part, for messages."""
    return _CREDENTIALS.sub("://", text)


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
