"""``tessera clients create`` for clients without shared secrets and with reference
tokens, through the CLI (in process) against a real SQLite file: the JSON keys and flags
the issue spells out, and clear refusals for bad key material."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tessera.cli.main import cli
from tests.conftest import KEK


def tessera(data: Path, *args: str) -> Result:
    env = {"TESSERA_DATA_DIR": str(data), "TESSERA_ISSUER": "https://id.test",
           "TESSERA_KEYS__ENCRYPTION_KEY": KEK}
    return CliRunner().invoke(cli, list(args), env=env)


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_clients_create_without_secrets_and_with_reference_tokens(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "client.jwks"
    jwks.write_text(json.dumps({"keys": [json.loads(ECAlgorithm.to_jwk(key.public_key()))
                                         | {"kid": "k1"}]}))
    data = tmp_path / "data"
    base = ("clients", "create", "--name", "orders", "--grant", "client_credentials")
    pkjwt = ok(tessera(data, *base, "--auth-method", "private_key_jwt",
                       "--jwks-file", str(jwks)))
    assert pkjwt["client_secret"] is None
    assert pkjwt["token_endpoint_auth_method"] == "private_key_jwt"
    by_uri = ok(tessera(data, *base, "--auth-method", "private_key_jwt",
                        "--jwks-uri", "https://orders.example/jwks"))
    assert by_uri["token_endpoint_auth_method"] == "private_key_jwt"
    reference = ok(tessera(data, *base, "--access-token-format", "reference"))
    assert reference["access_token_format"] == "reference" and reference["client_secret"]
    mtls = ok(tessera(data, *base, "--auth-method", "tls_client_auth",
                      "--tls-subject-dn", "CN=orders,O=Example"))
    assert mtls["token_endpoint_auth_method"] == "tls_client_auth"
    workload = ok(tessera(data, *base, "--auth-method", "workload_identity",
                          "--workload-issuer", "https://kubernetes.default.svc",
                          "--workload-subject", "system:serviceaccount:prod:orders",
                          "--workload-jwks-uri", "https://kubernetes.default.svc/openid/v1/jwks"))
    assert workload["token_endpoint_auth_method"] == "workload_identity"
    listed = {c["client_id"]: c for c in ok(tessera(data, "clients", "ls"))}
    assert listed[pkjwt["client_id"]]["token_endpoint_auth_method"] == "private_key_jwt"
    assert listed[reference["client_id"]]["access_token_format"] == "reference"

    private = tmp_path / "private.jwks"
    private.write_text(json.dumps({"keys": [json.loads(ECAlgorithm.to_jwk(key))]}))
    for bad in (("--auth-method", "private_key_jwt"),
                ("--auth-method", "private_key_jwt", "--jwks-file", str(private)),
                ("--auth-method", "private_key_jwt", "--jwks-uri", "http://orders.example/j"),
                ("--auth-method", "tls_client_auth"),
                ("--jwks-file", str(jwks))):
        result = tessera(data, *base, *bad)
        assert result.exit_code == 2 and result.stderr.startswith("error: "), bad
        assert result.exception is None or isinstance(result.exception, SystemExit)
    wrong_format = tessera(data, *base, "--access-token-format", "opaque")
    assert wrong_format.exit_code == 2 and "Invalid value" in wrong_format.stderr
