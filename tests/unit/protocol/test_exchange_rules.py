"""Pure rules of RFC 8693 exchange: may_act (§4.4) and act chains (§4.1)."""

from __future__ import annotations

import pytest

from tessera.protocol.errors import InvalidGrant
from tessera.protocol.rfc8693 import ExchangePolicy, TokenExchangeGrant


def test_may_act_names_the_only_party_allowed_to_act() -> None:
    TokenExchangeGrant._check_may_act({"may_act": {"sub": "gw"}}, "gw")
    TokenExchangeGrant._check_may_act({}, "anyone")
    with pytest.raises(InvalidGrant):
        TokenExchangeGrant._check_may_act({"may_act": {"sub": "gw"}}, "mallory")


def test_act_chain_nests_outermost_current_and_is_bounded() -> None:
    policy = ExchangePolicy(max_act_depth=2)
    first = TokenExchangeGrant._act_chain({}, "a", policy)
    second = TokenExchangeGrant._act_chain({"act": first}, "b", policy)
    assert second == {"sub": "b", "act": {"sub": "a"}}
    with pytest.raises(InvalidGrant):
        TokenExchangeGrant._act_chain({"act": second}, "c", policy)
