"""Listening: a taken port is a readable error, not gRPC's RuntimeError."""

import pytest

from accord.errors import TransportError
from accord.transport import pki
from accord.transport.executor import GrpcExecutor
from accord.transport.server import serve
from accord.transport.trust import TrustStore

pytestmark = pytest.mark.timeout(60)


def test_a_port_already_taken_is_a_transport_error_naming_the_address(
    coordinator, federation, tmp_path
):
    taken = f"127.0.0.1:{coordinator.server.port}"
    executor = GrpcExecutor(["site-00"], spool_dir=tmp_path)
    try:
        with pytest.raises(TransportError, match=f"cannot listen on {taken}"):
            serve(
                executor,
                listen=taken,
                identity=pki.load_identity(federation.root / "coordinator"),
                trust=TrustStore.load(federation.ca),
            )
        with pytest.raises(TransportError, match="cannot listen"):
            serve(executor, listen=taken, identity=None, trust=None, insecure=True)
    finally:
        executor.close()
