from __future__ import annotations

import tessera.gateway as gateway


def test_all_names_resolve_and_nothing_else_is_public() -> None:
    assert sorted(gateway.__all__) == sorted(set(gateway.__all__))
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None
    modules = {"app", "authorizer", "correlation", "decision", "denials", "exchange",
               "forward_auth", "metrics", "patterns", "policy", "request", "settings"}
    public = {n for n in vars(gateway) if not n.startswith("_")} - modules
    assert public <= set(gateway.__all__)


def test_the_sdk_exports_the_decision_record_the_gateway_uses() -> None:
    from tessera.verifier import decisions

    assert "Decision" in decisions.__all__
    assert decisions.Decision._fields[:4] == ("allowed", "reason", "status", "latency")
