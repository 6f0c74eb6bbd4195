from __future__ import annotations

from typing import Any

import pytest

from tessera.verifier import MAX_LEEWAY, VerificationPolicy

from ._support import AUDIENCE, ISSUER


def test_defaults() -> None:
    policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE)
    assert policy.leeway == 30 and policy.required_scopes == frozenset()
    assert policy.max_staleness is None and MAX_LEEWAY == 60


@pytest.mark.parametrize(
    "overrides",
    [{"leeway": 61}, {"leeway": -1}, {"issuer": ""}, {"audience": ""}, {"max_staleness": 0}],
)
def test_rejects_unsafe_settings(overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **overrides}
    with pytest.raises(ValueError):
        VerificationPolicy(**values)


def test_scopes_are_frozen_and_extendable() -> None:
    policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE,
                                required_scopes=["a", "b"])  # type: ignore[arg-type]
    assert policy.required_scopes == frozenset({"a", "b"})
    assert policy.requiring(["c"]).required_scopes == {"a", "b", "c"}
    assert policy.required_scopes == {"a", "b"}
