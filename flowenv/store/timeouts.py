"""How long a store may take to answer before flowenv gives up on it.

Left to themselves the backends retry in two nested loops (s3fs around
botocore, gcsfs's six attempts with back-off up to 32 s, Azure's ten), so a
frozen endpoint kept ``sync`` busy past five minutes and a dead one printed
one error per artifact. flowenv sets each backend's per-request timeouts and
retries from one budget, ``$FLOWENV_STORE_TIMEOUT`` seconds (default 60):
a request that gets no answer is tried :data:`ATTEMPTS` times, each with a
read timeout of a quarter of the budget, with short back-offs between, so
the whole thing fails within the budget. The first such failure marks the
store unreachable for the rest of the command (see :class:`Store`), so a
sync of a thousand artifacts fails once, not a thousand times.

The budget bounds *waiting for an answer*, not a transfer that is making
progress: a large upload over a slow link is not cut off. Options the user
gives (``[project.store-options]``, ``FSSPEC_S3``...) win over these defaults.
"""

from __future__ import annotations

import os
from typing import Any

from flowenv.errors import UsageError

TIMEOUT_ENV = "FLOWENV_STORE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
#: Tries of one request that gets no answer (the first one included).
ATTEMPTS = 3
#: gcsfs's own, fixed retry loop: attempts and the seconds it sleeps between them.
GCSFS_ATTEMPTS = 6
GCSFS_BACKOFF = 36.0  # 1+2+4+8+16 s, plus up to 1 s of jitter each


def store_timeout() -> float:
    """The budget in seconds: ``$FLOWENV_STORE_TIMEOUT``, else 60; a usage error if malformed."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds between 0 and 86400")
    return value


def request_timeouts(budget: float) -> tuple[float, float]:
    """(connect, read) timeouts of one attempt, so that every attempt fits in ``budget``."""
    read = budget / (ATTEMPTS + 1)
    return min(10.0, read), read


def default_options(protocol: str, budget: float) -> dict[str, Any]:
    """Storage options that bound each backend's waiting by ``budget`` (merged under the user's)."""
    connect, read = request_timeouts(budget)
    if protocol == "s3":
        # botocore retries (standard mode: connection errors, timeouts, 5xx, throttling);
        # s3fs's own loop around it would multiply the attempts: see tune().
        return {
            "config_kwargs": {
                "connect_timeout": connect,
                "read_timeout": read,
                "retries": {"mode": "standard", "total_max_attempts": ATTEMPTS},
            },
        }
    if protocol in ("gs", "gcs"):
        import aiohttp

        # gcsfs tries 6 times whatever it is told, sleeping 1+2+4+8+16 s (plus jitter) between:
        # what is left of the budget is shared by the attempts. Per socket
        # operation, not per request: a download that keeps receiving is never cut off.
        per_attempt = max(1.0, (budget - GCSFS_BACKOFF) / GCSFS_ATTEMPTS)
        return {
            "requests_timeout": aiohttp.ClientTimeout(
                total=None, sock_connect=min(connect, per_attempt), sock_read=per_attempt
            )
        }
    if protocol in ("az", "abfs", "abfss"):
        return {"connection_timeout": connect, "read_timeout": read}
    return {}


def tune(fs: Any, protocol: str) -> None:
    """Settings that are not options: s3fs's retry loop (botocore's does the work), and
    gcsfs's log, which prints a traceback when its retries run out (flowenv says it once)."""
    if protocol == "s3":
        fs.retries = 1
    if protocol in ("gs", "gcs"):
        import logging

        logging.getLogger("gcsfs").addHandler(logging.NullHandler())
    if protocol in ("az", "abfs", "abfss"):
        _bound_azure_retries(fs)


#: Azure's storage retry waits ``initial_backoff + increment_base ** n`` seconds (n > 0)
#: before retry n; its defaults (15 s, base 3) alone waited 57 s before the third retry.
AZURE_INITIAL_BACKOFF = 1.0
AZURE_INCREMENT_BASE = 2.0


def _bound_azure_retries(fs: Any) -> None:
    """The Azure SDK's retry policy, set to :data:`ATTEMPTS` tries with short back-offs.

    adlfs passes no retry settings to the SDK (only the timeouts above), so the
    policy object of the client's pipeline is set where it is: every container
    and blob client adlfs makes shares that pipeline's policies. Measured against
    a frozen endpoint with an 8 s budget: 93 s before, about the budget after.
    """
    client = getattr(fs, "service_client", None)
    pipeline = getattr(client, "_pipeline", None)
    for policy in getattr(pipeline, "_impl_policies", ()):
        if hasattr(policy, "total_retries") and hasattr(policy, "initial_backoff"):
            retries = ATTEMPTS - 1
            policy.total_retries = policy.connect_retries = retries
            policy.read_retries = policy.status_retries = retries
            policy.initial_backoff = AZURE_INITIAL_BACKOFF
            if hasattr(policy, "increment_base"):
                policy.increment_base = AZURE_INCREMENT_BASE


def merge_defaults(defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over ``defaults``, one level deep for nested tables (``config_kwargs``)."""
    merged = dict(defaults)
    for key, value in options.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
