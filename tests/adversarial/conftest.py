"""Attacks on a real deployment, one test per attack (issue 8).

Each test attacks a coordinator served over real gRPC with mutual TLS, with
certificates from a real federation CA, and asserts the refusal, its record, and that
the honest sites' result is what it would have been without the attacker. The
integration suite's fixtures (a CA, a coordinator on port 0, deployed site runtimes)
are reused as they are; multi-process attacks use the end-to-end suite's.
"""

from ..integration.conftest import (  # noqa: F401
    background,
    coordinator,
    deploy_sites,
    federation,
    forge,
    listen,
    raw_channel,
    start_coordinator,
)
