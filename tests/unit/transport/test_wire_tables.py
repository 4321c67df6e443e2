"""The method table, the status table and the address rules agree with the proto."""

import grpc
import pytest

from accord.errors import ConfigError
from accord.transport import rpc
from accord.transport.proto import accord_pb2 as pb
from accord.transport.security import check_insecure_host, is_loopback, split_address
from accord.transport.status import CODES, kind_of


def test_the_method_table_matches_the_compiled_services():
    compiled = {
        (
            service.full_name,
            m.name,
            m.input_type.name,
            m.output_type.name,
            m.client_streaming,
            m.server_streaming,
        )
        for service in pb.DESCRIPTOR.services_by_name.values()
        for m in service.methods
    }
    table = {
        (
            m.service,
            m.name,
            m.request.DESCRIPTOR.name,
            m.response.DESCRIPTOR.name,
            m.shape == "stream_unary",
            m.shape == "unary_stream",
        )
        for m in rpc.METHODS
    }

    assert table == compiled


def test_the_generated_stubs_use_the_same_paths():
    from accord.transport.proto import accord_pb2_grpc

    with open(accord_pb2_grpc.__file__, encoding="utf-8") as f:
        source = f.read()
    for m in rpc.METHODS:
        assert f"'{rpc.path(m.service, m.name)}'" in source


@pytest.mark.parametrize("kind", sorted(CODES))
def test_every_refusal_kind_survives_the_status_table(kind):
    assert kind_of(CODES[kind], kind) == kind


def test_a_status_outside_the_table_is_no_refusal():
    assert kind_of(grpc.StatusCode.UNAVAILABLE) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("[::1]:0", ("::1", 0)),
        ("coord.example.org:443", ("coord.example.org", 443)),
    ],
)
def test_addresses_split_into_host_and_port(address, expected):
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["nohost", ":80", "host:port", "h:70000"])
def test_bad_addresses_are_config_errors(address):
    with pytest.raises(ConfigError):
        split_address(address)


def test_plaintext_is_refused_beyond_loopback():
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    check_insecure_host("127.0.0.1:9")
    for address in ("0.0.0.0:9", "10.0.0.1:9", "coord.example.org:9"):
        with pytest.raises(ConfigError, match="loopback"):
            check_insecure_host(address)


def test_the_committed_modules_match_the_proto_file(tmp_path):
    """Regenerating would change nothing: the compiled descriptor is the file's."""
    pytest.importorskip("grpc_tools")
    from google.protobuf import descriptor_pb2

    from accord.transport.proto import generate

    root = tmp_path / "src"
    target = root / generate.PROTO.relative_to(generate._ROOT)
    target.parent.mkdir(parents=True)
    target.write_bytes(generate.PROTO.read_bytes())

    written = generate.generate(root)  # protoc runs in a child process

    assert all(path.exists() for path in written)
    source = (root / "accord" / "transport" / "proto" / "accord_pb2.py").read_text()
    fresh = descriptor_pb2.FileDescriptorProto.FromString(_serialized(source))
    mine = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(mine)
    assert fresh == mine


def _serialized(source: str) -> bytes:
    """The descriptor bytes a generated ``_pb2.py`` embeds."""
    import ast

    marker = "AddSerializedFile("
    start = source.index(marker) + len(marker)
    end = source.index(")\n", start)
    return ast.literal_eval(source[start:end])
