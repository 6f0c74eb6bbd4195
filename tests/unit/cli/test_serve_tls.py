"""``tessera serve --tls-cert --tls-key --tls-client-ca``: the flags go together, and map to
uvicorn's ssl options (a client certificate requested, optional per connection)."""

from __future__ import annotations

import ssl
from pathlib import Path

from click.testing import CliRunner

from tessera.cli.main import cli
from tessera.cli.serve import _tls_options


def test_tls_flags_must_go_together(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    for args in (["--tls-cert", str(pem)], ["--tls-key", str(pem)],
                 ["--tls-client-ca", str(pem)]):
        result = CliRunner().invoke(cli, ["serve", "--port", "0", *args])
        assert result.exit_code == 2 and "--tls-cert and --tls-key go together" in result.output


def test_tls_options_for_uvicorn() -> None:
    assert _tls_options(None, None, None) == {}
    assert _tls_options("c.pem", "k.pem", None) == {"ssl_certfile": "c.pem",
                                                    "ssl_keyfile": "k.pem"}
    assert _tls_options("c.pem", "k.pem", "ca.pem") == {
        "ssl_certfile": "c.pem", "ssl_keyfile": "k.pem", "ssl_ca_certs": "ca.pem",
        "ssl_cert_reqs": int(ssl.CERT_OPTIONAL)}
