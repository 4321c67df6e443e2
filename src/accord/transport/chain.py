"""Certificate path validation for accord's three kinds of certificate, by the library.

``cryptography.x509.verification`` builds and checks the path (signature, validity
dates of the certificate and of its CA at the check's time, CA basic constraints)
for every certificate accord checks: a caller's TLS certificate
(:func:`accord.transport.trust.verify_peer`), a coordinator's certificate a site
pins (:mod:`accord.transport.coordinator_pin`) and an Ed25519 identity certificate
(:mod:`accord.transport.identity`). accord keeps only what the library cannot know:
the roster, the CRL and the role in the subject.

Why the extension policies are accord's own and not the library's WebPKI defaults:
the defaults demand a subjectAltName on every end-entity certificate (participants'
have none: a site is named by its CN and dials out) and, for a client verifier, the
``clientAuth`` EKU, which an identity certificate must not carry (it holds
:data:`~accord.transport.profile.IDENTITY_USAGE` so that no TLS stack accepts it).
So each purpose gets an explicit end-entity policy (library validators, run during
path validation): not a CA, ``digitalSignature`` allowed, and the EKU of the
purpose (an external CA may omit the EKU of a TLS certificate; an identity
certificate must carry its own and allow signing only). The CA policy asks for
``cA=TRUE`` and, where key usage is present, ``keyCertSign``; the WebPKI CA
defaults would refuse an organization's own CA that omits key usage. Ed25519 end
entities pass the library's checks (it verifies the CA's ECDSA signature; the
leaf's own key type is accord's check). Every trusted CA issues end-entity
certificates directly (``max_chain_depth(0)``): put intermediates in the bundle.

When the library refuses, :func:`chain_problem` says why in words an operator can
act on (no CA of this federation, expired, not yet valid, a CA that expired, the
validator's own reason); the library's message is the last resort.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from accord.errors import MissingExtraError
from accord.transport.profile import IDENTITY_USAGE

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = ["Purpose", "chain_problem", "verified_issuer"]

#: What a certificate is checked for: a TLS client (participant, admin), a TLS
#: server (the coordinator, as a site sees it) or a secure-aggregation identity.
Purpose = Literal["client", "server", "identity"]

_EKU = {
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "identity": IDENTITY_USAGE,
}
_ANY = v.Criticality.AGNOSTIC
_VALIDATOR = re.compile(r"Python extension validator failed: \w+: (.*) \(encountered")


class _Violation(ValueError):
    """A validator's reason, in words; the library wraps it in VerificationError."""


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ca_constraints(
    _p: v.Policy, _c: x509.Certificate, ext: x509.BasicConstraints
) -> None:
    if not ext.ca:
        raise _Violation("was issued by a certificate that is not a CA's")


def _ca_usage(_p: v.Policy, _c: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is not None and not ext.key_cert_sign:
        raise _Violation("was issued by a CA whose key usage forbids signing them")


def _not_ca(
    _p: v.Policy, _c: x509.Certificate, ext: x509.BasicConstraints | None
) -> None:
    if ext is not None and ext.ca:
        raise _Violation("is a CA certificate, not a site's")


def _tls_usage(_p: v.Policy, _c: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is not None and not ext.digital_signature:
        raise _Violation(
            "does not allow digital signatures (key usage), which TLS needs"
        )


def _identity_usage(
    _p: v.Policy, _c: x509.Certificate, ext: x509.KeyUsage | None
) -> None:
    signing_only = ext is not None and (
        ext.digital_signature
        and not (
            ext.content_commitment
            or ext.key_encipherment
            or ext.data_encipherment
            or ext.key_agreement
            or ext.key_cert_sign
            or ext.crl_sign
        )
    )
    if not signing_only:
        raise _Violation("must allow digital signatures and nothing else (key usage)")


def _eku(
    purpose: Purpose,
) -> Callable[[v.Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]:
    def check(
        _p: v.Policy, _c: x509.Certificate, ext: x509.ExtendedKeyUsage | None
    ) -> None:
        if purpose == "identity" and (ext is None or IDENTITY_USAGE not in ext):
            raise _Violation("is not an identity certificate (extended key usage)")
        if ext is not None and _EKU[purpose] not in ext:
            raise _Violation(
                f"is not for TLS {purpose} authentication (extended key usage)"
            )

    return check


def _policies(purpose: Purpose) -> tuple[v.ExtensionPolicy, v.ExtensionPolicy]:
    ca = (
        v.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, _ANY, _ca_constraints)
        .may_be_present(x509.KeyUsage, _ANY, _ca_usage)
    )
    ee = (
        v.ExtensionPolicy.permit_all()
        .may_be_present(x509.BasicConstraints, _ANY, _not_ca)
        .may_be_present(x509.ExtendedKeyUsage, _ANY, _eku(purpose))
    )
    if purpose == "identity":
        ee = ee.may_be_present(x509.KeyUsage, _ANY, _identity_usage)
    else:
        ee = ee.may_be_present(x509.KeyUsage, _ANY, _tls_usage)
    return ca, ee


def verified_issuer(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    *,
    purpose: Purpose,
    at: datetime,
) -> x509.Certificate:
    """The trusted CA that issued ``cert`` for ``purpose``, valid at ``at``.

    Raises :class:`cryptography.x509.verification.VerificationError` when the path
    does not validate; :func:`chain_problem` turns that into a reason.
    """
    ca_policy, ee_policy = _policies(purpose)
    verifier = (
        v.PolicyBuilder()
        .store(v.Store(list(anchors)))
        .time(at)
        .max_chain_depth(0)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()  # no host name to check: the roster names peers
    )
    return verifier.verify(cert, []).chain[-1]


def chain_problem(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    *,
    purpose: Purpose,
    at: datetime,
) -> str | None:
    """Why ``cert`` fails path validation for ``purpose`` at ``at``; None if it passes.

    The reason completes a sentence about the certificate ("... expired on ...").
    """
    if not anchors:
        return "cannot be checked: no CA certificate is trusted"
    try:
        verified_issuer(cert, anchors, purpose=purpose, at=at)
    except v.VerificationError as exc:
        return _explain(cert, anchors, at, str(exc))
    return None


def _explain(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    at: datetime,
    message: str,
) -> str:
    """The library refused ``cert``: the first cause an operator can act on."""
    issuers = [ca for ca in anchors if ca.subject == cert.issuer]
    signed = [ca for ca in issuers if _signed(cert, ca)]
    if not signed:
        if cert.issuer == cert.subject:
            return "is self-signed; only this federation's CA can issue certificates"
        return "was not issued by this federation's CA"
    ca = signed[0]
    if at > ca.not_valid_after_utc:
        expired = _when(ca.not_valid_after_utc)
        return f"was issued by a CA certificate that expired on {expired}"
    if at < ca.not_valid_before_utc:
        start = _when(ca.not_valid_before_utc)
        return f"was issued by a CA certificate not valid before {start}"
    if at < cert.not_valid_before_utc:
        return f"is not valid before {_when(cert.not_valid_before_utc)}"
    if at > cert.not_valid_after_utc:
        return f"expired on {_when(cert.not_valid_after_utc)}"
    found = _VALIDATOR.search(message)
    if found:
        return found.group(1)
    return f"failed path validation ({message.removeprefix('validation failed: ')})"


def _signed(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - any failure means "not by this CA"
        return False
    return True
