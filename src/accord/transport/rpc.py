"""The services and methods of ``accord.proto``, for the server and the client alike.

Both sides register or call methods through this table instead of protoc's
``accord_pb2_grpc`` stubs, which carry no type hints; a unit test checks that the
table matches the service descriptors compiled from the proto file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from google.protobuf.message import Message

from accord.transport.proto import accord_pb2 as pb

__all__ = ["ADMIN", "FEDERATION", "METHODS", "Method", "path"]

FEDERATION = "accord.v1.Federation"
ADMIN = "accord.v1.Admin"

Shape = Literal["unary_unary", "unary_stream", "stream_unary"]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its service, name, request and response types, and streaming shape."""

    service: str
    name: str
    request: type[Message]
    response: type[Message]
    shape: Shape


METHODS: tuple[Method, ...] = (
    Method(FEDERATION, "Subscribe", pb.Hello, pb.Task, "unary_stream"),
    Method(FEDERATION, "FetchModel", pb.ModelRequest, pb.ModelPart, "unary_stream"),
    Method(FEDERATION, "SubmitUpdate", pb.UpdatePart, pb.Receipt, "stream_unary"),
    Method(FEDERATION, "SubmitEval", pb.EvalReport, pb.Receipt, "unary_unary"),
    Method(FEDERATION, "ReportFailure", pb.FailureReport, pb.Receipt, "unary_unary"),
    Method(FEDERATION, "SubmitSecAgg", pb.SecAggPart, pb.Receipt, "stream_unary"),
    Method(ADMIN, "Status", pb.StatusRequest, pb.StatusReply, "unary_unary"),
    Method(ADMIN, "Stop", pb.StopRequest, pb.StopReply, "unary_unary"),
)


def path(service: str, name: str) -> str:
    """The HTTP/2 path of a method, e.g. ``/accord.v1.Federation/Subscribe``."""
    return f"/{service}/{name}"
