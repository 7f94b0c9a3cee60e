"""Which S3 client serves an ``s3://`` store, and what the fast one needs to know.

flowenv's own S3 client (:mod:`flowenv.store.s3_fast`) understands the
common configuration: static credentials from the storage options, the
``AWS_*`` variables or the shared credentials/config files, a region, an
endpoint. Anything else (SSO, ``credential_process``, assume-role profiles,
instance metadata, proxies, options it does not know...) is s3fs's job:
:func:`resolve` then says why, and the store is opened with s3fs exactly as
before. ``$FLOWENV_S3_BACKEND`` forces one: ``s3fs``, or ``fast`` (an error
naming what it cannot serve rather than a silent fallback).

Storage options are taken as s3fs takes them, after fsspec's own
configuration (``FSSPEC_S3``, ``FSSPEC_S3_<OPTION>``, ``~/.config/fsspec``)
the way fsspec applies it: given options win, key by key.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from flowenv.errors import UsageError
from flowenv.store.s3_signing import Credentials

BACKEND_ENV = "FLOWENV_S3_BACKEND"
DEFAULT_REGION = "us-east-1"

#: s3fs options the fast client honours, or that only tune s3fs's caches.
_KNOWN = frozenset(
    {
        "key", "secret", "token", "username", "password", "anon", "profile",
        "endpoint_url", "client_kwargs", "config_kwargs", "use_ssl",
        # caches, block sizes, concurrency of s3fs itself: nothing to do here
        "skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths",
        "default_block_size", "default_fill_cache", "default_cache_type", "cache_regions",
        "max_concurrency",
    }
)  # fmt: skip
_CLIENT_KWARGS = frozenset(
    {"endpoint_url", "region_name", "use_ssl", "verify",
     "aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
)  # fmt: skip
_CONFIG_KWARGS = frozenset({"connect_timeout", "read_timeout", "retries", "region_name", "s3"})
#: Keys of a shared config/credentials profile the fast client understands.
_PROFILE_KEYS = frozenset(
    {
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_security_token",
        "region", "endpoint_url", "output", "cli_pager", "cli_timestamp_format",
        "cli_binary_format", "cli_auto_prompt", "cli_history", "retry_mode", "max_attempts",
    }
)  # fmt: skip
#: Variables naming credential sources botocore consults before the shared files.
_OTHER_SOURCES = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
#: Variables that change botocore's endpoints or transport in ways the fast client does not.
_TRANSPORT = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
    "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
    "AWS_S3_USE_ARN_REGION", "AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS",
)  # fmt: skip


@attrs.frozen(kw_only=True)
class S3Settings:
    """Everything the fast client needs: where, as whom, how patiently."""

    #: ``https://s3.eu-west-1.amazonaws.com`` style base, or the configured endpoint.
    endpoint: str | None
    region: str
    #: None: unsigned requests (``anon = true``).
    credentials: Credentials | None = attrs.field(repr=False)
    #: "path" (``endpoint/bucket/key``) or "virtual" (``bucket.endpoint/key``); None: per bucket.
    addressing: str | None = None
    use_ssl: bool = True
    #: ``False`` to skip certificate checks, a CA bundle path, or True (the system's).
    verify: bool | str = True
    connect_timeout: float | None = None
    read_timeout: float | None = None
    attempts: int | None = None


class Fallback(Exception):
    """The configuration needs s3fs; the message says why (never a value, only names)."""


def choice() -> str:
    """``$FLOWENV_S3_BACKEND``: "auto" (unset), "fast" or "s3fs"; a usage error otherwise."""
    raw = os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"
    if raw not in ("auto", "fast", "s3fs"):
        raise UsageError(f"{BACKEND_ENV}={raw!r}: expected 'fast', 's3fs' or unset")
    return raw


def fsspec_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """fsspec's configuration for ``s3`` (and ``s3a``), read as fsspec reads it, without fsspec.

    Files in ``$FSSPEC_CONFIG_DIR`` (default ``~/.config/fsspec``), ``*.ini``
    and ``*.json`` in name order, then ``FSSPEC_S3`` (a JSON table), then
    ``FSSPEC_S3_<OPTION>`` (a value, JSON when it parses).
    """
    env = os.environ if environ is None else environ
    found: dict[str, dict[str, Any]] = {}
    directory = env.get("FSSPEC_CONFIG_DIR") or os.path.join(
        os.path.expanduser("~"), ".config/fsspec"
    )
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            try:
                _read_config_file(path, found)
            except (ValueError, TypeError, configparser.Error) as exc:
                raise UsageError(f"fsspec configuration {path}: {_config_error(exc)}") from None
    per_option: list[tuple[str, str, Any]] = []
    for name, raw in env.items():
        if not name.startswith("FSSPEC_") or len(name) <= 7 or name[7] == "_":
            continue
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if name.count("_") > 1:
            _, protocol, option = name.split("_", 2)
            per_option.append((protocol.lower(), option.lower(), value))
        elif isinstance(value, dict):
            found.setdefault(name[7:].lower(), {}).update(value)
    for protocol, option, value in per_option:
        found.setdefault(protocol, {})[option] = value
    merged: dict[str, Any] = {}
    for protocol in ("s3", "s3a"):
        merged.update(found.get(protocol, {}))
    return merged


def _read_config_file(path: str, found: dict[str, dict[str, Any]]) -> None:
    if path.endswith(".ini"):
        ini = configparser.ConfigParser()
        ini.read(path)
        for section in ini.sections():
            found.setdefault(section, {}).update(dict(ini[section]))
    elif path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            tables = json.load(handle)
        if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
            raise TypeError("expected a table of protocols, each a table of options")
        for section, values in tables.items():
            found.setdefault(section, {}).update(values)


def _config_error(exc: Exception) -> str:
    """What is wrong and on which line, never the line itself (it may hold a secret)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno})"
    if isinstance(exc, configparser.ParsingError) and not isinstance(
        exc, configparser.MissingSectionHeaderError
    ):
        return f"cannot parse line {exc.errors[0][0]}" if exc.errors else "cannot parse"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    line = getattr(exc, "lineno", None)
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"{first} (line {line})"
    return first


def resolve(options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> S3Settings:
    """The fast client's settings for ``options`` (fsspec's configuration under them).

    Raises :class:`Fallback` naming the first thing only s3fs can serve.
    """
    env = os.environ if environ is None else environ
    opts = {**fsspec_config(env), **dict(options)}
    unknown = sorted(set(opts) - _KNOWN)
    if unknown:
        raise Fallback(f"store option {unknown[0]!r}")
    client = _table(opts, "client_kwargs", _CLIENT_KWARGS)
    config = _table(opts, "config_kwargs", _CONFIG_KWARGS)
    addressing = _addressing(config)
    for name in _TRANSPORT:
        if env.get(name) or env.get(name.lower()):
            raise Fallback(f"environment variable {name}")
    profile_name = opts.get("profile")
    profile = _profile(profile_name, env)

    credentials = None if _truthy(opts.get("anon")) else _credentials(opts, client, env, profile)
    region = (
        client.get("region_name")
        or config.get("region_name")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or profile.get("region")
        or DEFAULT_REGION
    )
    endpoint = opts.get("endpoint_url") or client.get("endpoint_url")
    if not endpoint and not _truthy(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
        endpoint = (
            env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or profile.get("endpoint_url")
        )
    use_ssl = _truthy(client.get("use_ssl", opts.get("use_ssl", True)))
    verify = client.get("verify", env.get("AWS_CA_BUNDLE") or True)
    retries = config.get("retries") or {}
    if not isinstance(retries, Mapping) or set(retries) - {
        "mode",
        "total_max_attempts",
        "max_attempts",
    }:
        raise Fallback("config_kwargs.retries")
    attempts = retries.get("total_max_attempts") or (
        retries["max_attempts"] + 1 if retries.get("max_attempts") is not None else None
    )
    return S3Settings(
        endpoint=str(endpoint).rstrip("/") if endpoint else None,
        region=str(region),
        credentials=credentials,
        addressing=addressing,
        use_ssl=use_ssl,
        verify=verify if isinstance(verify, str) else _truthy(verify),
        connect_timeout=_number(config.get("connect_timeout")),
        read_timeout=_number(config.get("read_timeout")),
        attempts=int(attempts) if attempts else None,
    )


def _table(opts: Mapping[str, Any], name: str, known: frozenset[str]) -> dict[str, Any]:
    table = opts.get(name) or {}
    if not isinstance(table, Mapping):
        raise Fallback(f"store option {name!r} (not a table)")
    unknown = sorted(set(table) - known)
    if unknown:
        raise Fallback(f"store option {name}.{unknown[0]}")
    return dict(table)


def _addressing(config: Mapping[str, Any]) -> str | None:
    s3 = config.get("s3") or {}
    if not isinstance(s3, Mapping) or set(s3) - {"addressing_style"}:
        raise Fallback("config_kwargs.s3")
    style = s3.get("addressing_style", "auto")
    if style not in ("auto", "path", "virtual"):
        raise Fallback("config_kwargs.s3.addressing_style")
    return None if style == "auto" else str(style)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _number(value: Any) -> float | None:
    return float(value) if value is not None else None


def _credentials(
    opts: Mapping[str, Any],
    client: Mapping[str, Any],
    env: Mapping[str, str],
    profile: Mapping[str, str],
) -> Credentials:
    """botocore's order: given options, ``AWS_*`` variables, the shared files' static keys."""
    key = opts.get("key") or opts.get("username") or client.get("aws_access_key_id")
    secret = opts.get("secret") or opts.get("password") or client.get("aws_secret_access_key")
    token = opts.get("token") or client.get("aws_session_token")
    if key or secret:
        if not (key and secret):
            raise Fallback("a key without a secret (or a secret without a key)")
        return Credentials(key=str(key), secret=str(secret), token=str(token) if token else None)
    # An explicitly named profile overrides the variables, as in botocore.
    if opts.get("profile") is None:
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if bool(key) != bool(secret):
            raise Fallback("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        if key and secret:
            token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN")
            return Credentials(key=key, secret=secret, token=token or None)
        for name in _OTHER_SOURCES:
            if env.get(name):
                raise Fallback(f"environment variable {name}")
    key, secret = profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")
    if key and secret:
        token = profile.get("aws_session_token") or profile.get("aws_security_token")
        return Credentials(key=key, secret=secret, token=token or None)
    raise Fallback("no static credentials (instance or container credentials are s3fs's)")


def _profile(explicit: Any, env: Mapping[str, str]) -> dict[str, str]:
    """The profile's keys, credentials file over config file; Fallback for what is not static."""
    name = str(explicit or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default")
    home = Path(os.path.expanduser("~"))
    credentials_file = env.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws/credentials")
    config_file = env.get("AWS_CONFIG_FILE") or str(home / ".aws/config")
    sections = [(credentials_file, [name])]
    sections.append(
        (config_file, ["default", "profile default"] if name == "default" else [f"profile {name}"])
    )
    found: dict[str, str] = {}
    exists = False
    for path, names in reversed(sections):  # the credentials file wins
        parser = configparser.RawConfigParser()
        try:
            parser.read(os.path.expanduser(path), encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            raise Fallback(f"unreadable AWS file {Path(path).name}") from None
        for section in names:
            if parser.has_section(section):
                exists = True
                values = dict(parser.items(section))
                unknown = sorted(set(values) - _PROFILE_KEYS)
                if unknown:
                    raise Fallback(f"profile setting {unknown[0]!r}")
                found.update(values)
    if not exists and name != "default":
        raise Fallback(f"profile {name!r} not found")
    return found
