"""Credentials inside URLs: kept out of locks, hashes and messages, put back only to download.

A configured index or channel URL may carry a secret in three places:

* ``https://user:password@host/...`` — the URL's user information (uv, pip,
  conda and rattler all read it);
* ``https://conda.anaconda.org/t/<token>/channel`` — anaconda.org's token
  path segment, which conda and rattler understand;
* ``?token=...`` and similar query parameters — seen in direct package URLs
  and in presigned links quoted by error messages.

:func:`strip_credentials` removes all three, so rotating a secret never makes
a lock stale and never shows up in a committed file. :func:`redact` masks
them in free text (tool output, error messages). :class:`SourceAuth` is the
reverse path, used only by ``sync`` when it downloads a locked artifact from
where it was locked: the lock holds the stripped URL, the configuration holds
the secret, and the two are matched here (by realm for user information, by
prefix for tokens, exactly for direct URLs).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

#: Query parameters whose value is a secret (compared case-insensitively).
SECRET_QUERY_KEYS = frozenset(
    {
        "token",
        "access_token",
        "auth_token",
        "api_key",
        "apikey",
        "password",
        "secret",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)
#: anaconda.org's token segment: ``/t/<token>`` right after the host.
_TOKEN_PATH = re.compile(r"^/t/[^/]+(?=/|$)")
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_TOKEN_IN_TEXT = re.compile(r"(?P<host>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s]+)/t/[^/\s]+(?=/|\s|$)")
_QUERY_SECRET_IN_TEXT = re.compile(
    r"(?P<key>[?&](?:" + "|".join(re.escape(k) for k in sorted(SECRET_QUERY_KEYS)) + r")=)"
    r"[^&#\s]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every URL secret masked as ``****`` (user info, ``/t/`` tokens, query keys)."""
    text = _USERINFO_IN_TEXT.sub(r"\g<scheme>****@", text)
    text = _TOKEN_IN_TEXT.sub(r"\g<host>/t/****", text)
    return _QUERY_SECRET_IN_TEXT.sub(r"\g<key>****", text)


def _strip_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    path = _TOKEN_PATH.sub("", parts.path)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k.lower() not in SECRET_QUERY_KEYS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    if (netloc, path, query) == (parts.netloc, parts.path, parts.query):
        return url  # untouched: not even re-encoded
    return urlunsplit(parts._replace(netloc=netloc, path=path, query=query))


def strip_credentials(url: str) -> str:
    """``url`` without its secrets; other strings unchanged.

    ``https://user:token@host/simple`` -> ``https://host/simple``;
    ``https://conda.anaconda.org/t/TOKEN/chan`` -> ``https://conda.anaconda.org/chan``;
    ``https://h/p.whl?token=x&v=1`` -> ``https://h/p.whl?v=1``. Also for a conda
    ``channel-url::name`` match spec: the URL part is stripped.
    """
    channel, sep, name = url.rpartition("::")
    if sep and "://" in channel:
        return f"{strip_credentials(channel)}::{name}"
    if "://" not in url:
        return url
    return _strip_url(url)


def realm(url: str) -> str:
    """``scheme://host:port`` (default port filled in): where one credential applies."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    return f"{parts.scheme.lower()}://{host}:{port}"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class SourceAuth:
    """How to download a locked (credential-free) URL with the configuration's credentials.

    A plain class rather than an attrs model: :func:`redact` lives in this
    module and is imported by paths that must stay stdlib-only.
    """

    def __init__(
        self, headers: Mapping[str, str] | None = None, prefixes: tuple[tuple[str, str], ...] = ()
    ) -> None:
        #: realm (``scheme://host:port``) -> ``Authorization`` header value.
        self.headers: Mapping[str, str] = dict(headers or {})
        #: (stripped prefix, original prefix), longest first: token paths and secret queries.
        self.prefixes = prefixes

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str],
        named_indexes: Iterable[tuple[str, str]] = (),
        environ: Mapping[str, str] | None = None,
    ) -> SourceAuth:
        """Credentials of configured ``urls`` plus uv's ``UV_INDEX_<NAME>_USERNAME/PASSWORD``."""
        environ = os.environ if environ is None else environ
        headers: dict[str, str] = {}
        prefixes: dict[str, str] = {}
        for url in urls:
            if "://" not in url:
                continue
            parts = urlsplit(url)
            if parts.username is not None:
                user, password = unquote(parts.username), unquote(parts.password or "")
                headers.setdefault(realm(url), _basic(user, password))
            stripped = strip_credentials(url)
            without_userinfo = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
            if stripped != without_userinfo:
                prefixes[stripped.rstrip("/")] = without_userinfo.rstrip("/")
        for name, url in named_indexes:
            variable = re.sub(r"[^A-Z0-9]", "_", name.upper())
            named_user = environ.get(f"UV_INDEX_{variable}_USERNAME")
            named_password = environ.get(f"UV_INDEX_{variable}_PASSWORD")
            if named_user is not None or named_password is not None:
                headers.setdefault(realm(url), _basic(named_user or "", named_password or ""))
        ordered = tuple(sorted(prefixes.items(), key=lambda kv: -len(kv[0])))
        return cls(headers=headers, prefixes=ordered)

    def request_for(self, url: str) -> tuple[str, str | None]:
        """(the URL to download, the ``Authorization`` header or None) for a locked ``url``."""
        for stripped, original in self.prefixes:
            if url == stripped or url.startswith(stripped + "/"):
                url = original + url[len(stripped) :]
                break
        return url, self.headers.get(realm(url))
