"""Generates the gRPC stubs from the repository's proto/ directory while the package is built.

The stubs are never committed: `pip install ./clients/python` (or building a wheel) runs
grpc_tools.protoc over ../../proto/flinkbroker/v1/*.proto and places the modules in
`flinkbroker/v1/`, where the generated imports (`from flinkbroker.v1 import broker_pb2`) find
them.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO_ROOT = Path(os.environ.get("FLINKBROKER_PROTO_ROOT", HERE.parent.parent / "proto"))


def generate_stubs(out_dir: Path) -> None:
    """Runs protoc (bundled with grpcio-tools) over the broker's protos into `out_dir`."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "flinkbroker").rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {PROTO_ROOT / 'flinkbroker'}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    package_dir = out_dir / "flinkbroker" / "v1"
    (package_dir / "__init__.py").write_text('"""Generated from proto/flinkbroker/v1."""\n')


class BuildPyWithStubs(build_py):
    """build_py that first generates the stubs into the build (or, editable, the source) tree."""

    def run(self) -> None:
        target = HERE / "src" if self.editable_mode else Path(self.build_lib)
        generate_stubs(target)
        super().run()


setup(cmdclass={"build_py": BuildPyWithStubs})
