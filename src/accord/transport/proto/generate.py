"""Regenerate the Python modules of ``accord.proto`` from the command line.

Run ``python -m accord.transport.proto.generate``.

It runs ``grpc_tools.protoc`` (the ``dev`` extra's ``grpcio-tools``) in a child
process, never in this one: protoc's in-process entry point loads its own copy of
the protobuf runtime's descriptors, which may clash with the ones already imported.
The include root is ``src/``, so the generated modules import each other as
``accord.transport.proto.*`` instead of as top-level modules. The output
(``accord_pb2.py``, ``accord_pb2.pyi``, ``accord_pb2_grpc.py``) is committed, so a
deployment needs only the ``deploy`` extra at run time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["generate", "main"]

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[2]  # the folder holding the ``accord`` package
PROTO = _HERE / "accord.proto"


def generate(root: Path = _ROOT) -> list[Path]:
    """Run protoc on ``root``'s copy of ``accord.proto``; return the files it wrote."""
    proto = PROTO.relative_to(_ROOT)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={root}",
        f"--python_out={root}",
        f"--pyi_out={root}",
        f"--grpc_python_out={root}",
        str(proto),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"protoc failed ({done.returncode}): {done.stderr.strip()}; is the dev "
            "extra (grpcio-tools) installed?"
        )
    stem = proto.with_suffix("")
    return [
        root / f"{stem}_pb2.py",
        root / f"{stem}_pb2.pyi",
        root / f"{stem}_pb2_grpc.py",
    ]


def main() -> None:
    """Command-line entry point."""
    for path in generate():
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
