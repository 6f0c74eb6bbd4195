"""Pure rules of outbound signals: receiver URLs, resolved addresses (SSRF), address
truncation for risk signals, backoff and subject keys."""

from __future__ import annotations

import pytest

from tessera.core.signals import (
    ReceiverRefused,
    address_refused,
    backoff,
    check_receiver,
    subject_key,
    truncate_address,
)

PUBLIC_ISSUER = "https://id.example"
LOOPBACK_ISSUER = "http://127.0.0.1:8000"


def test_https_receivers_are_accepted() -> None:
    assert check_receiver("https://rp.example/bcl", issuer=PUBLIC_ISSUER) == (
        "https", "rp.example", 443)
    assert check_receiver("https://rp.example:8443/x?y=1", issuer=PUBLIC_ISSUER)[2] == 8443


@pytest.mark.parametrize("url", ["http://rp.example/x", "http://127.0.0.1:9/x",
                                 "ftp://rp.example/x", "https:///x", "https://rp.example/x#f",
                                 "https://u:p@rp.example/x", "https://rp.example:99999/x",
                                 "javascript:alert(1)", "https://" + "a" * 2000])
def test_unsafe_receiver_urls_are_refused(url: str) -> None:
    with pytest.raises(ReceiverRefused):
        check_receiver(url, issuer=PUBLIC_ISSUER)


def test_loopback_http_only_while_the_issuer_is_loopback_http() -> None:
    assert check_receiver("http://127.0.0.1:9/x", issuer=LOOPBACK_ISSUER)[0] == "http"
    assert check_receiver("http://localhost:9/x", issuer="http://localhost:8000")[0] == "http"
    with pytest.raises(ReceiverRefused):
        check_receiver("http://rp.example/x", issuer=LOOPBACK_ISSUER)
    with pytest.raises(ReceiverRefused):
        check_receiver("http://127.0.0.1/x", issuer="https://127.0.0.1")


@pytest.mark.parametrize(("address", "why"), [
    ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("172.16.5.4", "private"),
    ("169.254.169.254", "special"), ("fe80::1", "special"), ("fd00::1", "private"),
    ("100.64.0.1", "private"), ("0.0.0.0", "special"), ("224.0.0.1", "special"),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("not-an-ip", "not an IP"),
])
def test_private_and_special_addresses_are_refused(address: str, why: str) -> None:
    reason = address_refused(address, issuer=PUBLIC_ISSUER)
    assert reason is not None and why in reason


def test_public_addresses_and_allowed_networks_pass() -> None:
    assert address_refused("93.184.216.34", issuer=PUBLIC_ISSUER) is None
    assert address_refused("2606:2800:220:1::1", issuer=PUBLIC_ISSUER) is None
    assert address_refused("10.1.2.3", issuer=PUBLIC_ISSUER, allowed=("10.1.0.0/16",)) is None
    assert address_refused("127.0.0.1", issuer=LOOPBACK_ISSUER) is None


def test_addresses_are_truncated_for_privacy() -> None:
    assert truncate_address("198.51.100.77", ipv4_bits=24, ipv6_bits=48) == "198.51.100.0/24"
    assert truncate_address("2001:db8:1:2::5", ipv4_bits=24,
                            ipv6_bits=48) == "2001:db8:1::/48"
    assert truncate_address("198.51.100.77", ipv4_bits=32, ipv6_bits=48) == "198.51.100.77"
    assert truncate_address("198.51.100.77", ipv4_bits=0, ipv6_bits=48) is None
    assert truncate_address("garbage", ipv4_bits=24, ipv6_bits=48) is None
    assert truncate_address(None, ipv4_bits=24, ipv6_bits=48) is None


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, base=1.0, cap=5.0) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_subject_keys() -> None:
    assert subject_key({"format": "iss_sub", "iss": "i", "sub": "s"}) == "iss_sub|i|s"
    assert subject_key({"format": "email", "email": "A@B.example"}) == "email|a@b.example"
    with pytest.raises(ValueError):
        subject_key({"format": "phone_number", "phone_number": "+1"})
