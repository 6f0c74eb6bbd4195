"""The per-process TTL map behind the client directory and tenant standing."""

from __future__ import annotations

from tessera.core.ttl_cache import TtlCache


def test_an_entry_is_fresh_for_ttl_seconds_only() -> None:
    cache: TtlCache[bool] = TtlCache(5.0)
    assert cache.fresh("t", 100.0) == (False, None)
    cache.put("t", False, 100.0)
    assert cache.fresh("t", 104.9) == (True, False), "a cached False is a hit, not a miss"
    assert cache.fresh("t", 105.0) == (False, None)


def test_forget_one_or_every_key() -> None:
    cache: TtlCache[str] = TtlCache(60.0)
    cache.put("a", "1", 0.0)
    cache.put("b", "2", 0.0)
    cache.forget("a")
    assert cache.fresh("a", 1.0) == (False, None) and cache.fresh("b", 1.0) == (True, "2")
    cache.forget()
    assert cache.fresh("b", 1.0) == (False, None)


def test_a_full_cache_is_emptied_before_it_grows_further() -> None:
    cache: TtlCache[int] = TtlCache(60.0, maxsize=3)
    for i in range(4):
        cache.put(str(i), i, 0.0)
    cache.put("new", 9, 0.0)
    assert cache.fresh("0", 1.0) == (False, None) and cache.fresh("new", 1.0) == (True, 9)
