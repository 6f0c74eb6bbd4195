"""Client authentication without shared secrets: ``private_key_jwt`` (RFC 7523 §2.2, OIDC
Core §9) and workload identity (SPIFFE JWT-SVID, Kubernetes service-account token)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from tessera.application import admin
from tessera.application.client_keys import ClientKeys
from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tests.conftest import ISSUER
from tests.support import TesseraDriver
from tests.tokens import claims_of

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Signer:
    """A client's (or a workload issuer's) key pair and its JWK."""

    def __init__(self, kid: str = "k1", *, alg: str = "ES256") -> None:
        self.kid, self.alg = kid, alg
        if alg == "EdDSA":
            self.key: Any = ed25519.Ed25519PrivateKey.generate()
            self.jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwk |= {"kid": kid, "use": "sig"}

    def jwks(self, *more: Signer) -> str:
        return json.dumps({"keys": [self.jwk, *(s.jwk for s in more)]})

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.key, algorithm=self.alg,
                          headers={"kid": self.kid} | header)


def assertion_claims(client_id: str, clock: FixedClock, **over: Any) -> dict[str, Any]:
    now = int(clock.now())
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": ISSUER,
                              "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


async def key_client(identity: Identity, **keys: Any) -> str:
    client, secret = await admin.create_client(
        identity.admin, name="service", grants=("client_credentials",), scope="api:read",
        audiences=("https://api.example",), keys=ClientKeys(**keys))
    assert secret is None  # nothing shared to leak
    return client.client_id


async def token_with(tessera: TesseraDriver, assertion: str, client_id: str | None = None,
                     **extra: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion} | extra
    if client_id is not None:
        data["client_id"] = client_id
    return await tessera.http.post("/token", data=data)


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_private_key_jwt_issues_a_token_and_a_replay_is_refused(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    signer = Signer()
    client_id = await key_client(identity, auth_method="private_key_jwt", jwks=signer.jwks())
    assertion = signer.sign(assertion_claims(client_id, clock))
    ok = await token_with(tessera, assertion)
    assert ok.status_code == 200, ok.text
    assert claims_of(ok.json()["access_token"])["client_id"] == client_id
    replayed = await token_with(tessera, assertion)
    assert refused(replayed), replayed.text
    # client_id in the body is optional, and must match when sent
    again = signer.sign(assertion_claims(client_id, clock))
    assert (await token_with(tessera, again, client_id=client_id)).status_code == 200


async def test_audience_may_be_the_issuer_or_the_token_endpoint(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    signer = Signer(alg="EdDSA")
    client_id = await key_client(identity, auth_method="private_key_jwt", jwks=signer.jwks())
    for aud in (ISSUER, f"{ISSUER}/token", [ISSUER]):
        response = await token_with(tessera, signer.sign(assertion_claims(client_id, clock,
                                                                          aud=aud)))
        assert response.status_code == 200, (aud, response.text)
    # also addressed to someone else: that party could replay it here (RFC 7523bis)
    for aud in ([ISSUER, "https://other.example"], [], f"{ISSUER}/authorize"):
        response = await token_with(tessera, signer.sign(assertion_claims(client_id, clock,
                                                                          aud=aud)))
        assert refused(response), (aud, response.text)


async def test_bad_assertions_are_refused(tessera: TesseraDriver, identity: Identity,
                                          clock: FixedClock) -> None:
    signer = Signer()
    client_id = await key_client(identity, auth_method="private_key_jwt", jwks=signer.jwks())
    now = int(clock.now())
    stranger = Signer()  # same kid, another key
    bad = {
        "expired": signer.sign(assertion_claims(client_id, clock, iat=now - 600,
                                                exp=now - 120)),
        "wrong aud": signer.sign(assertion_claims(client_id, clock, aud="https://evil")),
        "no exp": signer.sign(assertion_claims(client_id, clock, exp=None)),
        "exp too far": signer.sign(assertion_claims(client_id, clock, exp=now + 86_400)),
        "no jti": signer.sign(assertion_claims(client_id, clock, jti=None)),
        "iss is not the client": signer.sign(assertion_claims(client_id, clock,
                                                              iss="c_other")),
        "sub is not the client": signer.sign(assertion_claims(client_id, clock,
                                                              sub="someone")),
        "unknown kid": signer.sign(assertion_claims(client_id, clock), kid="nope"),
        "other key": stranger.sign(assertion_claims(client_id, clock)),
        "hmac": jwt.encode(assertion_claims(client_id, clock), "x" * 32, algorithm="HS256"),
        "not a jwt": "garbage",
    }
    for name, assertion in bad.items():
        response = await token_with(tessera, assertion, client_id=client_id)
        assert refused(response), (name, response.text)
        assert "client_assertion" not in response.text or name == "not a jwt"
    wrong_type = await tessera.http.post("/token", data={
        "grant_type": "client_credentials", "client_assertion_type": "urn:x",
        "client_assertion": bad["expired"]})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"] == "invalid_request"


async def test_one_method_only_and_no_crossing_over(tessera: TesseraDriver, identity: Identity,
                                                    clock: FixedClock) -> None:
    signer = Signer()
    client_id = await key_client(identity, auth_method="private_key_jwt", jwks=signer.jwks())
    both = await tessera.http.post("/token", data={
        "grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
        "client_assertion": signer.sign(assertion_claims(client_id, clock)),
        "client_secret": "x"})
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    # a key client has no secret that could work
    as_secret = await tessera.http.post("/token", data={"grant_type": "client_credentials"},
                                        auth=(client_id, "tessera-dummy-secret"))
    assert as_secret.status_code == 401
    # and a secret client cannot switch to assertions with keys it never registered
    secret_client = await tessera.client()
    foreign = await token_with(tessera, signer.sign(assertion_claims(secret_client.client_id,
                                                                     clock)))
    assert refused(foreign)


async def test_jwks_uri_is_fetched_and_refetched_once_on_an_unknown_kid(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    old, new = Signer("old"), Signer("new")
    published = {"doc": old.jwks()}
    fetches: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        fetches.append(str(request.url))
        return httpx.Response(200, text=published["doc"],
                              headers={"content-type": "application/json"})

    assert identity.key_sets is not None
    identity.key_sets.transport = httpx.MockTransport(serve)
    client_id = await key_client(identity, auth_method="private_key_jwt",
                                 jwks_uri="https://client.example/jwks")
    ok = await token_with(tessera, old.sign(assertion_claims(client_id, clock)))
    assert ok.status_code == 200 and len(fetches) == 1
    assert (await token_with(tessera, old.sign(assertion_claims(client_id, clock)))
            ).status_code == 200
    assert len(fetches) == 1  # cached
    published["doc"] = new.jwks()  # the client rotates
    rotated = await token_with(tessera, new.sign(assertion_claims(client_id, clock)))
    assert rotated.status_code == 200, rotated.text
    assert len(fetches) == 2
    # made-up kids do not make Tessera fetch again and again
    for _ in range(3):
        assert refused(await token_with(tessera, new.sign(assertion_claims(client_id, clock),
                                                          kid="made-up")))
    assert len(fetches) == 2


async def test_registration_refuses_bad_key_material(identity: Identity) -> None:
    signer = Signer()
    private = json.dumps({"keys": [json.loads(ECAlgorithm.to_jwk(signer.key)) | {"kid": "x"}]})
    cases = {
        "private key": ClientKeys(auth_method="private_key_jwt", jwks=private),
        "not json": ClientKeys(auth_method="private_key_jwt", jwks="{"),
        "both": ClientKeys(auth_method="private_key_jwt", jwks=signer.jwks(),
                           jwks_uri="https://x.example/jwks"),
        "neither": ClientKeys(auth_method="private_key_jwt"),
        "http uri": ClientKeys(auth_method="private_key_jwt", jwks_uri="http://x.example/j"),
        "keys without method": ClientKeys(jwks=signer.jwks()),
        "workload subject": ClientKeys(auth_method="workload_identity",
                                       workload_issuer="https://k8s", workload_subject="bob",
                                       workload_jwks=signer.jwks()),
    }
    for name, keys in cases.items():
        try:
            await admin.create_client(identity.admin, name="x", grants=("client_credentials",),
                                      keys=keys)
        except admin.AdminError:
            continue
        raise AssertionError(f"{name}: accepted")


async def test_workload_identity_jwt_svid_and_kubernetes_token(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    bundle = Signer("spire-1")
    spiffe_id = "spiffe://example.org/ns/prod/sa/orders"
    client_id = await key_client(identity, auth_method="workload_identity",
                                 workload_issuer="https://spire.example.org",
                                 workload_subject=spiffe_id, workload_jwks=bundle.jwks())
    now = int(clock.now())
    svid = bundle.sign({"iss": "https://spire.example.org", "sub": spiffe_id,
                        "aud": [ISSUER], "iat": now, "exp": now + 300}, typ="JWT")
    ok = await token_with(tessera, svid, client_id=client_id)
    assert ok.status_code == 200, ok.text
    # a workload re-presents its mounted token: reusable within its short life
    assert (await token_with(tessera, svid, client_id=client_id)).status_code == 200
    other_workload = bundle.sign({"iss": "https://spire.example.org",
                                  "sub": "spiffe://example.org/ns/prod/sa/billing",
                                  "aud": [ISSUER], "iat": now, "exp": now + 300})
    assert refused(await token_with(tessera, other_workload, client_id=client_id))
    wrong_aud = bundle.sign({"iss": "https://spire.example.org", "sub": spiffe_id,
                             "aud": ["https://vault.example"], "iat": now, "exp": now + 300})
    assert refused(await token_with(tessera, wrong_aud, client_id=client_id))

    cluster = Signer("k8s-sa")
    sa = "system:serviceaccount:prod:orders"
    k8s_client = await key_client(identity, auth_method="workload_identity",
                                  workload_issuer="https://kubernetes.default.svc",
                                  workload_subject=sa, workload_jwks=cluster.jwks())
    projected = cluster.sign({"iss": "https://kubernetes.default.svc", "sub": sa,
                              "aud": [ISSUER], "iat": now, "nbf": now, "exp": now + 3600,
                              "kubernetes.io": {"namespace": "prod",
                                                "serviceaccount": {"name": "orders"}}})
    assert (await token_with(tessera, projected, client_id=k8s_client)).status_code == 200
    # the SPIFFE client's keys do not vouch for the Kubernetes one
    assert refused(await token_with(tessera, projected, client_id=client_id))


async def test_private_key_jwt_at_introspection_and_discovery(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    signer = Signer()
    client_id = await key_client(identity, auth_method="private_key_jwt", jwks=signer.jwks())
    token = (await token_with(tessera, signer.sign(assertion_claims(client_id, clock)))
             ).json()["access_token"]
    response = await tessera.http.post("/introspect", data={
        "token": token, "client_assertion_type": JWT_BEARER,
        "client_assertion": signer.sign(assertion_claims(client_id, clock))})
    assert response.status_code == 200 and response.json()["active"] is True
    metadata = (await tessera.http.get("/.well-known/openid-configuration")).json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert "ES256" in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert "none" not in metadata["token_endpoint_auth_signing_alg_values_supported"]
