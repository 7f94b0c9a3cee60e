"""The py-rattler adapter: every call flowenv makes to rattler goes through here.

rattler is used in-process (no conda, mamba or micromamba executable): the
gateway reads repodata, the solver resolves, the installer links packages
into a prefix. Nothing rattler-specific leaves this module: callers get
:class:`SolvedPackage` values and :class:`~flowenv.errors.FlowenvError`
subclasses. py-rattler's Python API changes between releases, which is one
more reason it stays behind this one door.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from flowenv._subprocess import redact
from flowenv.errors import FlowenvError, ResolutionError, UsageError

PRIORITIES = ("strict", "flexible", "disabled")


@attrs.frozen(kw_only=True)
class SolvedPackage:
    """One conda package of a solution, with what a lock file needs."""

    name: str
    version: str
    build: str
    subdir: str
    url: str
    channel: str
    md5: str
    sha256: str
    depends: tuple[str, ...] = ()
    #: ``"python"``, ``"generic"`` or None (a package built for one platform).
    noarch: str | None = None


@attrs.frozen(kw_only=True)
class SolveRequest:
    """One conda solve: match specs against channels for one platform."""

    specs: tuple[str, ...]
    channels: tuple[str, ...]
    platform: str
    #: (name, version, build string) of each virtual package considered installed.
    virtual_packages: tuple[tuple[str, str, str], ...] = ()
    channel_priority: str = "strict"
    #: URLs of a previous solution: preferred when they still satisfy the specs.
    preferred_urls: tuple[str, ...] = ()
    #: Match specs that bound versions without requiring the package (a solve group's pins).
    constraints: tuple[str, ...] = ()
    #: URLs of another platform's solution (the env's lead): each package's
    #: version there is preferred over :attr:`preferred_urls` where this
    #: platform has that version in the same channel; a preference, never a pin.
    followed_urls: tuple[str, ...] = ()
    #: Names the env and platform in error messages.
    label: str = ""


@attrs.frozen(kw_only=True)
class InstallPackage:
    """A locked conda package to link into a prefix (what a conda-lock entry records)."""

    name: str
    version: str
    url: str
    md5: str
    sha256: str
    depends: tuple[str, ...] = ()


def _noarch(value: Any) -> str | None:
    if value is None:
        return None
    if value.python:
        return "python"
    return "generic" if value.generic else None


def _hex(value: bytes | None) -> str:
    return value.hex() if value else ""


def _channels_of(request: SolveRequest) -> list[str]:
    """The configured channels, then those only named by ``channel::name`` specs.

    rattler only matches a channel-qualified spec against channels it was
    given, and honours the qualification even under strict priority, so
    appending them keeps the configured channels' order for everything else.
    """
    from rattler import MatchSpec

    channels = list(request.channels)
    known = {c.rstrip("/") for c in channels}
    for text in request.specs:
        channel = MatchSpec(text).channel
        if channel is None:
            continue
        for name in (channel.name, channel.base_url.rstrip("/")):
            if name in known:
                break
        else:
            source = text.partition("::")[0]
            channels.append(source)
            known.add(source.rstrip("/"))
    return channels


def _match_specs(request: SolveRequest) -> list[Any]:
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    specs = []
    for text in request.specs:
        try:
            specs.append(MatchSpec(text))
        except InvalidMatchSpecError as exc:
            raise UsageError(f"{request.label}: invalid conda match spec '{text}': {exc}") from None
    return specs


def _virtual(request: SolveRequest) -> list[Any]:
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version
    from rattler.exceptions import InvalidVersionError

    out = []
    for name, version, build in request.virtual_packages:
        try:
            out.append(
                GenericVirtualPackage(PackageName(name), Version(version), BuildString(build))
            )
        except InvalidVersionError as exc:
            raise UsageError(
                f"{request.label}: invalid version '{version}' for virtual package {name}: {exc}"
            ) from None
    return out


def _parts(url: str) -> tuple[str, str, str, str]:
    """A conda package URL -> (channel URL, name, version, build)."""
    base, _, filename = url.rpartition("/")
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    name, version, build = [*stem.rsplit("-", 2), "", ""][:3]
    return base.rpartition("/")[0], name, version, build


def _variant(build: str) -> str:
    # conda-forge build strings carry a hash of the build's variant config that
    # differs per platform ("py311h9f3472d_0" on linux-64, "py311h4a8d9c5_0" on
    # osx-arm64); without it, the same Python variant reads the same.
    return re.sub(r"h[0-9a-f]{7,}", "", build)


def _favored(records: Sequence[Any], request: SolveRequest) -> list[Any]:
    """The one record per package name the solver should try first (rattler's "locked").

    A package of the followed solution is preferred at its version, in its
    channel: this platform's previous record if it is that version, else the
    build whose build string matches best (same string, same variant, then
    rattler's own order: build number, timestamp). Only records of this
    platform's own query are candidates, so another platform's files are never
    offered, and a version this platform lacks is simply not preferred.
    Packages the followed solution lacks keep their previous record.
    """
    own = set(request.preferred_urls)
    followed = {
        name: (channel, version, build)
        for channel, name, version, build in map(_parts, request.followed_urls)
    }
    best: dict[str, tuple[tuple[Any, ...], Any]] = {}
    for record in records:
        name, url = record.name.normalized, record.url
        if name in followed:
            channel, version, build = followed[name]
            if str(record.version) != version or _parts(url)[0] != channel:
                continue
            stamp = record.timestamp.timestamp() if record.timestamp else 0.0
            this = str(record.build)
            rank: tuple[Any, ...] = (
                url in own,
                this == build,
                _variant(this) == _variant(build),
                record.build_number,
                stamp,
                url,
            )
        elif url in own:
            rank = (True, url)
        else:
            continue
        if name not in best or rank > best[name][0]:
            best[name] = (rank, record)
    return [best[name][1] for name in sorted(best)]


def _describe(request: SolveRequest) -> str:
    virtual = ", ".join(f"{n}={v}" for n, v, _ in request.virtual_packages) or "none"
    return redact(
        f"  specs: {', '.join(request.specs)}\n"
        f"  channels: {', '.join(request.channels) or 'none'}\n"
        f"  virtual packages: {virtual}"
    )


def _indent(text: str) -> str:
    # rattler's own messages quote channel URLs, credentials included.
    return redact("\n".join(f"    {line}" if line else "" for line in text.strip().splitlines()))


async def _solve_one(gateway: Any, request: SolveRequest) -> tuple[SolvedPackage, ...]:
    import rattler
    from rattler.exceptions import GatewayError, SolverError

    priority = {
        "strict": rattler.ChannelPriority.Strict,
        "flexible": rattler.ChannelPriority.Flexible,
        "disabled": rattler.ChannelPriority.Disabled,
    }[request.channel_priority]
    specs = _match_specs(request)
    channels = _channels_of(request)
    platforms: list[Any] = [request.platform, "noarch"]
    try:
        preferred: list[Any] = []
        if request.preferred_urls or request.followed_urls:
            names = sorted({s.name.normalized for s in specs if s.name is not None})
            found = await gateway.query(channels, platforms, names, recursive=True)
            preferred = _favored([r for records in found for r in records], request)
        records = await rattler.solve(
            sources=channels,
            specs=specs,
            gateway=gateway,
            platforms=platforms,
            locked_packages=preferred,
            virtual_packages=_virtual(request),
            channel_priority=priority,
            channel_relations="disabled",
            constraints=list(request.constraints) or None,
        )
    except SolverError as exc:
        raise ResolutionError(
            f"cannot resolve {request.label}: the conda specs cannot be satisfied\n"
            f"{_describe(request)}\n{_indent(str(exc))}"
        ) from None
    except GatewayError as exc:
        raise ResolutionError(
            f"cannot resolve {request.label}: cannot read a channel's repodata "
            f"(unknown channel or no network?)\n{_describe(request)}\n{_indent(str(exc))}"
        ) from None
    return tuple(
        sorted(
            (
                SolvedPackage(
                    name=r.name.normalized,
                    version=str(r.version),
                    build=str(r.build),
                    subdir=r.subdir,
                    url=r.url,
                    channel=r.channel or "",
                    md5=_hex(r.md5),
                    sha256=_hex(r.sha256),
                    depends=tuple(r.depends),
                    noarch=_noarch(r.noarch),
                )
                for r in records
            ),
            key=lambda p: p.name,
        )
    )


async def _solve_all(requests: Sequence[SolveRequest]) -> list[tuple[SolvedPackage, ...]]:
    from rattler import Gateway

    # One gateway for every platform: repodata shared between solves is fetched once.
    gateway = Gateway()
    results = await asyncio.gather(
        *(_solve_one(gateway, r) for r in requests), return_exceptions=True
    )
    # Report every platform that failed, not just the first, so one run shows it all.
    failures = [r for r in results if isinstance(r, BaseException)]
    unexpected = [f for f in failures if not isinstance(f, FlowenvError)]
    if unexpected:
        raise unexpected[0]
    if failures:
        first = failures[0]
        assert isinstance(first, FlowenvError)
        raise type(first)("\n\n".join(str(f) for f in failures))
    return [r for r in results if not isinstance(r, BaseException)]


def solve(requests: Sequence[SolveRequest]) -> list[tuple[SolvedPackage, ...]]:
    """Solve every request (concurrently); one solution per request, packages sorted by name.

    Unsatisfiable specs, missing packages and unreadable channels raise
    :class:`ResolutionError` naming the request's label, specs and channels.
    """
    for request in requests:
        if request.channel_priority not in PRIORITIES:
            raise UsageError(
                f"{request.label}: unknown channel priority '{request.channel_priority}'"
            )
    return asyncio.run(_solve_all(requests))


def _repodata_record(package: InstallPackage) -> Any:
    from rattler import BuildString, PackageRecord, RepoDataRecord

    filename = package.url.rsplit("/", 1)[-1]
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    build = stem.rsplit("-", 2)[-1]
    subdir_url = package.url.rsplit("/", 1)[0]
    channel_url, _, subdir = subdir_url.rpartition("/")
    record = PackageRecord(
        name=package.name,
        version=package.version,
        build=BuildString(build),
        build_number=0,
        subdir=subdir,
        depends=list(package.depends),
        md5=bytes.fromhex(package.md5) if package.md5 else None,
        sha256=bytes.fromhex(package.sha256) if package.sha256 else None,
    )
    return RepoDataRecord(record, filename, package.url, channel_url + "/")


def install(
    packages: Sequence[InstallPackage],
    prefix: Path,
    platform: str,
    cache_dir: Path | None = None,
) -> None:
    """Link exactly ``packages`` (fetched from their URLs, hashes checked) into ``prefix``.

    Link scripts are never run: a lock must be installable without executing
    package code.
    """
    import rattler
    from rattler.exceptions import InstallerError, TransactionError

    records = [_repodata_record(p) for p in packages]
    try:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=prefix,
                cache_dir=cache_dir,
                platform=rattler.Subdir(platform),
                execute_link_scripts=False,
                show_progress=False,
            )
        )
    except (InstallerError, TransactionError) as exc:
        raise FlowenvError(f"cannot install into {prefix}: {exc}") from None
