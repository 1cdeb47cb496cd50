"""Compile the Kubernetes API .proto files into the descriptor set the sandbox ships.

The sandbox reads and writes ``application/vnd.kubernetes.protobuf`` from one serialized FileDescriptorSet
(kubeops/sandbox/proto/k8s-api.binpb) instead of thousands of lines of generated ``_pb2`` modules: the
descriptors are all a generic converter needs, and at run time only the ``protobuf`` package is required.

Usage: python scripts/build_k8s_proto.py [PROTO_ROOT]   (default /work/shared/k8s-proto, the k8s.io/api and
k8s.io/apimachinery v0.33.9 ``generated.proto`` files laid out by import path). Needs PyPI ``grpcio-tools``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "kubeops" / "sandbox" / "proto" / "k8s-api.binpb"


def compile_descriptor_set(proto_root: Path) -> bytes:
    """Every generated.proto under `proto_root`, with imports, as serialized FileDescriptorSet bytes."""
    import tempfile

    from grpc_tools import protoc

    files = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("generated.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        code = protoc.main(["protoc", f"-I{proto_root}", "--include_imports", f"--descriptor_set_out={out}", *files])
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        return out.read_bytes()


def main() -> None:
    proto_root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/k8s-proto")
    OUT.write_bytes(compile_descriptor_set(proto_root))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
