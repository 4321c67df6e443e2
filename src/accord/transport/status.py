"""One table between accord's refusals and gRPC status codes, used in both directions.

The coordinator answers a refused message with the code of its
:class:`~accord.errors.SubmissionRefused` kind, the refusal's readable reason as the
details and the kind itself in the ``accord-refusal`` trailing metadata (several
kinds share a code); a participant turns them back into the same refusal. A peer
sees only that sanitised reason, never a traceback.
"""

from __future__ import annotations

import grpc

from accord.errors import RefusalKind

__all__ = ["CODES", "FATAL", "REFUSAL_KEY", "RETRYABLE", "kind_of"]

#: Trailing metadata key holding the refusal kind.
REFUSAL_KEY = "accord-refusal"

#: The status code each kind of refusal is answered with.
CODES: dict[RefusalKind, grpc.StatusCode] = {
    "malformed": grpc.StatusCode.INVALID_ARGUMENT,
    "mismatch": grpc.StatusCode.INVALID_ARGUMENT,
    "duplicate": grpc.StatusCode.ALREADY_EXISTS,
    "stale": grpc.StatusCode.FAILED_PRECONDITION,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "corrupt": grpc.StatusCode.DATA_LOSS,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
    "busy": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "throttled": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "out_of_bounds": grpc.StatusCode.OUT_OF_RANGE,
}

#: Codes after which a participant retries the connection (with backoff).
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)

#: Codes that no retry will change: the certificate or the roster must change first.
FATAL = frozenset({grpc.StatusCode.UNAUTHENTICATED})


def kind_of(code: grpc.StatusCode, named: str | None = None) -> RefusalKind | None:
    """The refusal kind of a status: ``named`` if it fits the code, else the first."""
    kinds = [kind for kind, value in CODES.items() if value == code]
    for kind in kinds:
        if kind == named:
            return kind
    return kinds[0] if kinds else None
