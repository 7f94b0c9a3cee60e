"""PyPI requirements as conda constraints, and the identity packages meet by (pure functions).

The records are real conda-forge ones (tests/data/real, see its NOTICE).
"""

from __future__ import annotations

import pytest

from flowenv.resolution.conda_pypi import (
    CondaRecord,
    PypiBound,
    conda_constraints,
    conda_version_spec,
    identity,
    same_version,
)
from tests.support.real_data import osx_arm64_records


def _meta_records() -> dict[str, CondaRecord]:
    return {
        r.name: CondaRecord(name=r.name, version=r.version, depends=r.depends, noarch=r.noarch)
        for r in osx_arm64_records()
    }


@pytest.mark.parametrize(
    ("specifier", "expected"),
    [
        ("", ""),
        ("<2", "<2"),
        (">=1.21,<2", "<2,>=1.21"),
        ("==1.26.4", "==1.26.4"),
        ("==1.26.*", "1.26.*"),
        ("!=1.5.7", "!=1.5.7"),
        ("!=1.5.*", "!=1.5.*"),
        ("~=1.4.2", ">=1.4.2,1.4.*"),
        ("~=2.1", ">=2.1,2.*"),
        # PEP 440 and conda order these differently: they do not translate.
        ("<2.0rc1", None),
        (">=1.0.post1", None),
        ("==1!2.0", None),
        ("===1.0", None),
        ("not a specifier", None),
    ],
)
def test_conda_version_spec(specifier: str, expected: str | None) -> None:
    assert conda_version_spec(specifier) == expected


def test_only_violated_bounds_on_real_distributions_become_constraints() -> None:
    records = _meta_records()
    solution = [records[n] for n in ("numpy", "scipy", "tzdata", "urllib3", "python")]
    bounds = [
        PypiBound(name="numpy", specifier="<1.26"),  # violated by conda's 1.26.4
        PypiBound(name="NumPy", specifier=">=1.20"),  # satisfied: adds nothing
        PypiBound(name="scipy", specifier=">=1.11"),  # satisfied
        PypiBound(name="urllib3", specifier="<2.0rc1"),  # satisfied (1.26.14)
        PypiBound(name="urllib3", specifier="<1.26.14"),  # violated
        PypiBound(name="tzdata", specifier=">=2025"),  # conda's tzdata is no PyPI tzdata
        PypiBound(name="pandas", specifier="<2"),  # not in the solution
    ]
    assert conda_constraints(solution, bounds, ()) == ["numpy <1.26", "urllib3 <1.26.14"]
    # A pypi-map false: conda's numpy is no PyPI numpy, so nothing bounds it.
    assert conda_constraints(solution, bounds, (("numpy", ""),)) == ["urllib3 <1.26.14"]


def test_a_bound_that_does_not_translate_adds_nothing() -> None:
    record = CondaRecord(name="alpha", version="2.0", depends=("python >=3.9",))
    assert conda_constraints([record], [PypiBound(name="alpha", specifier="<2.0rc1")], ()) == []


def test_identity_by_pypi_name_for_distributions_only() -> None:
    records = _meta_records()

    def of(name: str) -> str:
        r = records[name]
        return identity("conda", r.name, r.version, r.depends, {})

    assert (of("numpy"), of("scipy"), of("requests")) == ("numpy", "scipy", "requests")
    assert (of("tzdata"), of("libcxx"), of("python")) == (
        "tzdata (conda)",
        "libcxx (conda)",
        "python (conda)",
    )
    torch = ("conda", "pytorch", "2.1.2", ("python >=3.9",), {})
    assert identity(*torch) == "torch"
    assert identity("pip", "Typing_Extensions", "4.12.2", (), {}) == "typing-extensions"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("1.26.4", "1.26.4", True),
        ("1.26", "1.26.0", True),
        ("2.0", "2", True),
        ("1.26.4", "1.26.5", False),
        # conda's IANA tzdata is no PEP 440 version as written: only itself.
        ("2024a", "2024a0", False),
        ("2024a", "2024a", True),
    ],
)
def test_same_version_is_pep440_equality(a: str, b: str, same: bool) -> None:
    assert (same_version(a) == same_version(b)) is same
