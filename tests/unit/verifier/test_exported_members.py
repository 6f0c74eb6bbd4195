from __future__ import annotations

import subprocess
import sys

import tessera.verifier as verifier


def test_all_names_resolve_and_nothing_else_is_public() -> None:
    assert sorted(verifier.__all__) == sorted(set(verifier.__all__))
    for name in verifier.__all__:
        assert getattr(verifier, name) is not None
    helpers = {"annotations", "TYPE_CHECKING", "Any"}
    public = {n for n in vars(verifier) if not n.startswith("_")} - helpers
    assert public <= set(verifier.__all__)


def test_pure_core_does_not_import_httpx_or_the_store() -> None:
    code = (
        "import sys, tessera.verifier as v; v.verify_access_token; v.RevocationState; "
        "bad = [m for m in sys.modules if m.split('.')[0] in {'httpx', 'sqlalchemy', 'starlette'}"
        " or m.startswith('tessera.store')]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
