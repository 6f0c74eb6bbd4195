"""One name per idea (docs/architecture.md, naming vocabulary): audit events are written
with ``user_id``, ``tenant_id``, ``client_id`` and ``grant_type``, never the older
``subject``, ``tenant``, ``client`` or ``grant``. Read from the source, so a call added
(or merged) with an old name fails here with its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

from tessera.store.ports import LEGACY_AUDIT_FIELDS

SRC = Path(__file__).resolve().parents[2] / "src" / "tessera"
OLD_NAMES = frozenset(LEGACY_AUDIT_FIELDS.values()) | {"grant"}
_AUDIT_METHODS = frozenset({"audit", "record", "make"})


def _is_event(node: ast.expr) -> bool:
    """``events.X`` or a literal ``"noun.verb"``: the first argument of an audit call."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id == "events"
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value


def audit_calls_with_old_names(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (isinstance(node, ast.Call) and node.args and _is_event(node.args[0])):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in _AUDIT_METHODS and name != "_event":
            continue
        old = sorted(k.arg for k in node.keywords if k.arg in OLD_NAMES)
        if old:
            found.append(f"{filename}:{node.lineno}: {', '.join(old)}")
    return found


def test_the_checker_finds_old_names() -> None:
    source = ('tx.audit(events.TOKEN_ISSUED, grant="x", subject=u, tenant=t)\n'
              'await audit.record("session.revoked", client=c)\n'
              'tx.audit(events.TOKEN_ISSUED, grant_type="x", user_id=u, tenant_id=t)\n'
              'link(subject=s)\n')
    assert audit_calls_with_old_names(source, "x.py") == [
        "x.py:1: grant, subject, tenant", "x.py:2: client"]


def test_audit_events_use_the_vocabulary() -> None:
    offenders = [line for path in sorted(SRC.rglob("*.py"))
                 for line in audit_calls_with_old_names(path.read_text(),
                                                        str(path.relative_to(SRC)))]
    assert offenders == [], "audit fields by their old names:\n" + "\n".join(offenders)
