"""JOSE for all of Tessera: the one module that calls a JOSE library (RFC 7515 JWS, RFC 7517
JWK, RFC 7519 JWT, RFC 7638 thumbprints). Identity service, SDK, gateway, BFF and
federation all sign, verify and read headers through it.

PyJWT does the JOSE work: signing and verifying (its ``Algorithm`` objects: RSASSA-PKCS1-v1_5,
ECDSA with the raw r‖s form of RFC 7518 §3.4, Ed25519), JWK import and export, and the
registered-claim checks of ``decode``. joserfc is used only where PyJWT has no equivalent:
the RFC 7638 thumbprint of a JWK and the import of an arbitrary client JWK (``import_jwk``),
the verification of third-party JWTs against a whole JWKS with its claims registry
(``JwkSet``, ``check_registered_claims``: federation, BFF, demo receivers), and the DPoP
client key (``ProofKey``).

The hot path (``verify``) is the signature check of a compact JWS with a ``VerificationKey``
prepared once per key (algorithm object looked up, key parsed), a header read once per
distinct encoded header (``read_header``, memoised), and nothing redone per token. Every
RFC 8725 check stays: the algorithm comes from the key, never from the token (§3.1), the
header must be a JSON object naming exactly that algorithm, ``crit`` is refused (RFC 7515
§4.1.11), and ``none``/HS* are not in ``ALGORITHMS``.

Errors are ``JoseError`` with a reason (``malformed``, ``bad_algorithm``,
``bad_signature``, ``bad_key``); callers map them to their own vocabulary.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, cast

import jwt
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt as joserfc_jwt
from joserfc.errors import BadSignatureError, ClaimError, InvalidKeyIdError
from joserfc.errors import JoseError as _JoserfcError
from joserfc.jwk import JWKRegistry
from joserfc.jwk import KeySet as _JoserfcKeySet
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tessera.core.json_text import compact_json

__all__ = [
    "ALGORITHMS",
    "Header",
    "JoseError",
    "JwkSet",
    "PrivateKey",
    "ProofKey",
    "PublicKey",
    "Signer",
    "VerificationKey",
    "b64url",
    "b64url_decode",
    "check_alg",
    "check_registered_claims",
    "check_times",
    "decode",
    "generate",
    "import_jwk",
    "jwk_thumbprint",
    "key_fits",
    "load_jwk",
    "load_private_pem",
    "load_public_jwk",
    "private_pem",
    "public_jwk",
    "read_header",
    "sign",
    "unverified_claims",
    "unverified_header",
    "verify",
    "verify_jws",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})
"""The asymmetric algorithms Tessera signs and verifies with (never ``none`` or HS*)."""
KTY: Final = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
MIN_RSA_BITS: Final = 2048
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_HEADER_MEMO: Final = 1024


class JoseError(Exception):
    """A JOSE object that cannot be used; ``reason`` is one of ``malformed``,
    ``bad_algorithm``, ``bad_signature``, ``bad_key``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


def b64url_decode(segment: str) -> bytes:
    """base64url without padding (RFC 7515 §2), as PyJWT reads it; ``JoseError(malformed)``
    when it is not ASCII or cannot be base64 (what a signature covers is the encoded
    text, so a lenient decode of a signed segment cannot be abused)."""
    try:
        return binascii.a2b_base64(segment.encode("ascii").translate(_URLSAFE) + b"==")
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise JoseError("malformed", "invalid base64url") from None


# --- keys -----------------------------------------------------------------------------

def generate(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise JoseError("bad_algorithm", f"unsupported algorithm {alg[:20]!r}")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_pem(pem: bytes) -> PrivateKey:
    try:
        # Our own keys, sealed with AES-GCM at rest: skip OpenSSL's slow (~35 ms) RSA
        # consistency check on every load, the integrity is the AEAD's.
        key = serialization.load_pem_private_key(pem, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise JoseError("bad_key", "the private key is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey):
        raise JoseError("bad_key", "unsupported private key type")
    return key


def key_fits(alg: str, key: object) -> bool:
    """Whether ``key`` (public or private) is of the kind ``alg`` needs: RSA of at least
    2048 bits, EC P-256, Ed25519."""
    if alg == "RS256":
        return isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) \
            and key.key_size >= MIN_RSA_BITS
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) \
            and isinstance(key.curve, ec.SECP256R1)
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey)
    return False


def check_alg(key: PrivateKey, alg: str) -> None:
    """Refuse a key whose algorithm does not fit it (a tampered or mistyped ``alg`` would
    otherwise reach the library with a key of the wrong kind)."""
    if not key_fits(alg, key):
        raise JoseError("bad_key", f"algorithm {alg[:20]!r} does not fit this key")


def public_jwk(key: PrivateKey | PublicKey, *, kid: str | None = None,
               alg: str | None = None) -> dict[str, Any]:
    """The public JWK of ``key`` (RFC 7517), with ``kid``/``alg``/``use`` when given."""
    pub = key.public_key() if isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) else key
    if isinstance(pub, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(pub, as_dict=True)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(pub, as_dict=True)
    jwk = dict(jwk)
    jwk.pop("key_ops", None)
    if kid is not None:
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def load_public_jwk(alg: str, jwk: Mapping[str, Any]) -> PublicKey:
    """The public key of a JWK for ``alg``; ``JoseError(bad_key)`` when the JWK is not a
    public key of the kind ``alg`` needs (private members, wrong kty/curve, short RSA)."""
    if alg not in ALGORITHMS:
        raise JoseError("bad_algorithm", f"alg {alg[:20]!r}")
    if jwk.get("kty") != KTY[alg]:
        raise JoseError("bad_key", f"kty {str(jwk.get('kty'))[:20]!r} does not fit {alg}")
    if PRIVATE_MEMBERS & jwk.keys():
        raise JoseError("bad_key", "private key material published")
    if alg == "ES256" and jwk.get("crv") != "P-256":
        raise JoseError("bad_key", "ES256 needs curve P-256")
    if alg == "EdDSA" and jwk.get("crv") != "Ed25519":
        raise JoseError("bad_key", "EdDSA needs curve Ed25519")
    try:
        document = dict(jwk)
        key: object = (RSAAlgorithm.from_jwk(document) if alg == "RS256"
                       else ECAlgorithm.from_jwk(document) if alg == "ES256"
                       else OKPAlgorithm.from_jwk(document))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise JoseError("bad_key", f"invalid key: {exc}") from None
    if not key_fits(alg, key) or isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise JoseError("bad_key", f"not a {alg} public key"
                        + (f" of at least {MIN_RSA_BITS} bits" if alg == "RS256" else ""))
    return cast(PublicKey, key)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url (joserfc). ``ValueError`` if the JWK
    cannot be imported."""
    return import_jwk(jwk)[1]


def import_jwk(jwk: Mapping[str, Any]) -> tuple[Any, str]:
    """A client's public JWK (a DPoP proof's, RFC 9449 §4.3): its key object and RFC 7638
    thumbprint (joserfc). ``ValueError`` if it cannot be imported."""
    try:
        imported = JWKRegistry.import_key(dict(jwk))
        return imported.public_key, imported.thumbprint()
    except Exception as exc:  # joserfc raises a variety of types for bad members
        raise ValueError(f"unusable JWK: {type(exc).__name__}") from None


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A public key usable for exactly one algorithm, prepared once: the library's
    algorithm object is looked up here, not per token."""

    kid: str
    alg: str
    public_key: PublicKey
    material: tuple[str, ...] = ()
    """The JWK members that define the key (kty, alg and the public parameters)."""
    check: Callable[[bytes, bytes], bool] = field(init=False, repr=False)
    """``check(signing_input, signature)``: True when the signature is this key's."""

    def __post_init__(self) -> None:
        if not key_fits(self.alg, self.public_key):
            raise JoseError("bad_key", f"the key does not fit {self.alg}")
        object.__setattr__(self, "check", _verifier(self.alg, self.public_key))


def _verifier(alg: str, key: PublicKey) -> Callable[[bytes, bytes], bool]:
    algorithm = jwt.get_algorithm_by_name(alg)
    verify = algorithm.verify

    def check(signing_input: bytes, signature: bytes) -> bool:
        return verify(signing_input, key, signature)
    return check


# --- compact JWS ----------------------------------------------------------------------

class Header(NamedTuple):
    """A JOSE header that is a JSON object without ``crit``; members as found (the caller
    checks their values: an ``alg`` may still be a list, a ``kid`` a number)."""

    alg: object
    kid: object
    typ: object
    members: Mapping[str, Any]


_headers: dict[str, Header] = {}
"""Parsed headers by encoded header segment: a handful of distinct values (one per key)."""


def read_header(token: str) -> Header:
    """The protected header of a compact JWS; memoised per encoded header segment.
    ``JoseError(malformed)`` when it is not three segments, not base64url JSON, not an
    object, or carries ``crit`` (RFC 7515 §4.1.11: no extension is understood here)."""
    segment = token.partition(".")[0]
    header = _headers.get(segment)
    if header is None:
        header = _parse_header(token, segment)
        if len(_headers) >= _HEADER_MEMO:
            _headers.clear()
        _headers[segment] = header
    return header


def _parse_header(token: str, segment: str) -> Header:
    if token.count(".") != 2:
        raise JoseError("malformed", "not a compact JWS")
    try:
        members = orjson.loads(b64url_decode(segment))
    except orjson.JSONDecodeError:
        raise JoseError("malformed", "header is not JSON") from None
    if type(members) is not dict:
        raise JoseError("malformed", "header is not a JSON object")
    if "crit" in members:
        raise JoseError("malformed", "critical header extensions are not understood")
    return Header(members.get("alg"), members.get("kid"), members.get("typ"), members)


def verify(token: str, key: VerificationKey) -> bytes:
    """The payload of ``token`` if its signature is ``key``'s; ``JoseError`` otherwise.

    The header must already have been read (``read_header``) and its ``alg`` found to be
    ``key.alg`` by the caller; here the signing input and signature are split off and the
    library checks the signature with the key's own algorithm."""
    signing_input, _, signature = token.rpartition(".")
    if not signature:
        raise JoseError("bad_signature", "no signature")
    if not key.check(signing_input.encode("ascii", "replace"), b64url_decode(signature)):
        raise JoseError("bad_signature")
    return b64url_decode(signing_input.partition(".")[2])


def unverified_header(token: str) -> dict[str, Any]:
    """The header of a compact JWS, unverified (to pick a key or a token kind)."""
    return dict(read_header(token).members)


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, unverified: for tokens whose signature is checked
    elsewhere (or never matters, as in diagnostics)."""
    if token.count(".") != 2:
        raise JoseError("malformed", "not a compact JWS")
    try:
        claims = orjson.loads(b64url_decode(token.split(".")[1]))
    except orjson.JSONDecodeError:
        raise JoseError("malformed", "payload is not JSON") from None
    if type(claims) is not dict:
        raise JoseError("malformed", "payload is not a JSON object")
    return claims


class Signer:
    """One key's JWS signer (RFC 7515 §7.1 compact form), the hot path of issuance.

    What ``jwt.encode`` redoes per token is done once here: the algorithm object is
    looked up, and the protected header, which only depends on ``typ`` for a given key,
    is serialised and base64url-encoded once per ``typ``. The signature is PyJWT's
    (ES256: ``_ecdsa_signer``, the same steps), and the output is what ``jwt.encode``
    produces (byte for byte where the algorithm is deterministic)."""

    __slots__ = ("_alg", "_headers", "_key", "_kid", "_sign")

    def __init__(self, key: PrivateKey, *, alg: str, kid: str) -> None:
        self._key, self._alg, self._kid = key, alg, kid
        self._sign: Callable[[bytes, Any], bytes] = (
            _ecdsa_signer(key) if alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey)
            else jwt.get_algorithm_by_name(alg).sign)
        self._headers: dict[str, bytes] = {}

    def _header(self, typ: str) -> bytes:
        encoded = self._headers.get(typ)
        if encoded is None:
            header = {"alg": self._alg, "kid": self._kid, "typ": typ}
            if not typ:
                del header["typ"]  # as jwt.encode does
            encoded = b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
            if len(self._headers) < 16:
                self._headers[typ] = encoded
        return encoded

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        payload = b64url(compact_json(claims))
        signing_input = self._header(typ) + b"." + payload
        signature = self._sign(signing_input, self._key)
        return (signing_input + b"." + b64url(signature)).decode("ascii")


def _ecdsa_signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes, Any], bytes]:
    """PyJWT's ES256 ``sign`` without its per-call objects: the one ``ECDSA(SHA-256)``
    instance, and the JWS form of the signature (RFC 7518 §3.4: R and S as fixed-size
    big-endian integers) by ``int.to_bytes`` rather than through hex text."""
    algorithm = ec.ECDSA(hashes.SHA256())
    size = (key.curve.key_size + 7) // 8

    def sign(message: bytes, _key: Any) -> bytes:
        r, s = decode_dss_signature(key.sign(message, algorithm))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return sign


def sign(claims: Mapping[str, Any], key: PrivateKey | bytes | str, *, alg: str,
         kid: str | None = None, typ: str | None = None,
         headers: Mapping[str, Any] | None = None) -> str:
    """A compact JWS of ``claims`` (``jwt.encode``): for one-off tokens (client
    assertions, DPoP proofs, logout tokens); issuance uses a ``Signer``."""
    extra: dict[str, Any] = dict(headers or {})
    if kid is not None:
        extra["kid"] = kid
    if typ is not None:
        extra["typ"] = typ
    return jwt.encode(dict(claims), key, algorithm=alg, headers=extra or None)


def decode(
    token: str,
    key: PublicKey | bytes | str,
    *,
    algorithms: Sequence[str],
    issuer: str | Sequence[str] | None = None,
    audience: str | Iterable[str] | None = None,
    leeway: float = 0.0,
    now: float | None = None,
    required: Sequence[str] = ("iss", "exp", "iat"),
    verify_exp: bool = True,
) -> dict[str, Any]:
    """Signature and registered claims of a JWT (PyJWT ``decode``); times against ``now``
    (an injected clock) when given, PyJWT's clock otherwise. Raises ``JoseError`` with
    reason ``wrong_audience``, ``wrong_issuer``, ``bad_signature``, ``missing_claim``,
    ``bad_algorithm``, ``expired``, ``not_yet_valid``, ``issued_in_future`` or
    ``malformed``."""
    clock_injected = now is not None
    try:
        claims = jwt.decode(
            token, key, algorithms=list(algorithms),
            options={"require": list(required), "verify_aud": audience is not None,
                     "verify_iss": issuer is not None,
                     "verify_exp": verify_exp and not clock_injected,
                     "verify_nbf": not clock_injected, "verify_iat": not clock_injected},
            audience=audience, issuer=issuer, leeway=leeway)
    except jwt.PyJWTError as exc:
        raise _refusal(exc) from None
    if now is not None:
        check_times(claims, now=now, leeway=leeway, verify_exp=verify_exp)
    return claims


_PYJWT_REASONS: Final = (
    (jwt.InvalidAudienceError, "wrong_audience"), (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidSignatureError, "bad_signature"), (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "bad_algorithm"), (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
)


def _refusal(exc: jwt.PyJWTError) -> JoseError:
    """PyJWT's exception as a ``JoseError`` with this module's reason."""
    reason = next((r for kind, r in _PYJWT_REASONS if isinstance(exc, kind)), "malformed")
    return JoseError(reason, str(exc))


def check_times(claims: Mapping[str, Any], *, now: float, leeway: float,
                verify_exp: bool = True) -> None:
    """RFC 7519 §4.1.4–§4.1.6 against an injected clock: ``exp``, ``nbf``, ``iat``."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise JoseError("malformed", f"{name} is not a number")
    exp = claims.get("exp")
    if verify_exp and exp is not None and now >= exp + leeway:
        raise JoseError("expired")
    nbf = claims.get("nbf")
    if nbf is not None and now + leeway < nbf:
        raise JoseError("not_yet_valid")
    iat = claims.get("iat")
    if iat is not None and now + leeway < iat:
        raise JoseError("issued_in_future")


class JwkSet:
    """A third party's published keys (an upstream provider's, the identity service's as
    a relying party sees them), imported once (joserfc, which picks the key by ``kid``
    and type). ``JoseError(bad_key)`` when the document is not a usable JWK Set."""

    __slots__ = ("_keys",)

    def __init__(self, document: Mapping[str, Any]) -> None:
        try:
            self._keys = _JoserfcKeySet.import_key_set(dict(document))  # type: ignore[arg-type]
        except (_JoserfcError, ValueError, TypeError, KeyError) as exc:
            raise JoseError("bad_key", f"not a usable JWK Set: {type(exc).__name__}") from None

    def decode(self, token: str, *, algorithms: Iterable[str]) -> tuple[dict[str, Any],
                                                                        dict[str, Any]]:
        """Header and claims of a JWT signed by one of these keys with one of
        ``algorithms`` (pinned). The claims' values are the caller's to check
        (``check_registered_claims``). ``JoseError`` with reason ``unknown_kid`` (no key
        of that ``kid``: the caller may refetch), ``bad_signature`` or ``malformed``."""
        try:
            decoded = joserfc_jwt.decode(token, self._keys, algorithms=list(algorithms))
        except InvalidKeyIdError:
            raise JoseError("unknown_kid") from None
        except BadSignatureError as exc:
            raise JoseError("bad_signature", exc.error) from None
        except _JoserfcError as exc:
            raise JoseError("malformed", exc.error) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise JoseError("malformed", type(exc).__name__) from None
        return dict(decoded.header), dict(decoded.claims)


def check_registered_claims(claims: Mapping[str, Any], *, now: float, leeway: float,
                            **requirements: Mapping[str, Any]) -> None:
    """RFC 7519 registered claims (and any other named): ``exp``/``nbf``/``iat`` against
    ``now`` with ``leeway``, and per claim ``{"essential": True, "value": …}`` (joserfc's
    claims registry). ``JoseError("claims", "<claim>: <why>")`` when one fails."""
    registry = joserfc_jwt.JWTClaimsRegistry(now=int(now), leeway=int(leeway),
                                             **requirements)  # type: ignore[arg-type]
    try:
        registry.validate(dict(claims))
    except ClaimError as exc:
        raise JoseError("claims", f"{exc.claim}: {exc.description or exc.error}") from None
    except _JoserfcError as exc:
        raise JoseError("claims", exc.description or exc.error) from None


def load_jwk(jwk: Mapping[str, Any], *, alg: str | None = None) -> Any:
    """The key object of any JWK PyJWT supports (a client's registered keys: RS256,
    PS256, ES256, EdDSA …), for ``alg`` when given. ``JoseError(bad_key)`` otherwise."""
    try:
        return jwt.PyJWK(dict(jwk), algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise JoseError("bad_key", str(exc)) from None


def verify_jws(token: str, key: Any, *, alg: str) -> dict[str, Any]:
    """The claims of a JWT whose signature ``key`` makes with ``alg`` (pinned); the
    claims' values are the caller's to check. ``JoseError(bad_signature | malformed)``."""
    try:
        return jwt.decode(token, key=key, algorithms=[alg], options={
            "verify_aud": False, "verify_iss": False, "verify_exp": False,
            "verify_nbf": False, "verify_iat": False, "verify_sub": False,
            "verify_jti": False})
    except jwt.PyJWTError as exc:
        raise _refusal(exc) from None


class ProofKey:
    """A client-held EC P-256 key that signs DPoP proofs (RFC 9449 §4.2), with its public
    JWK and RFC 7638 thumbprint (joserfc: key generation, export, thumbprint)."""

    __slots__ = ("_key",)

    def __init__(self, key: Any) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> ProofKey:
        from joserfc.jwk import ECKey

        return cls(ECKey.generate_key("P-256"))

    @classmethod
    def import_jwk(cls, jwk: Mapping[str, Any]) -> ProofKey:
        from joserfc.jwk import ECKey

        return cls(ECKey.import_key(dict(jwk)))

    @property
    def public_jwk(self) -> dict[str, Any]:
        return dict(self._key.as_dict(private=False))

    def private_jwk(self) -> dict[str, Any]:
        return dict(self._key.as_dict(private=True))

    @property
    def thumbprint(self) -> str:
        return str(self._key.thumbprint())

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        header = {"alg": "ES256", "typ": typ, "jwk": self.public_jwk}
        return str(joserfc_jwt.encode(header, dict(claims), self._key, algorithms=["ES256"]))
