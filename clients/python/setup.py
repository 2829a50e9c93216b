"""Builds signround-client; the gRPC stubs are generated here, at build time.

The stubs of proto/signround/v1 (the repository's proto folder, two levels up, or
$SIGNROUND_PROTO_DIR) are generated with grpc_tools.protoc into the build folder as the
top-level package `signround.v1`, named after the proto package, beside the hand-written
`signround_client`. They are never checked in.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_FILE = "signround/v1/quantization_service.proto"


def proto_root():
    return os.path.abspath(os.environ.get("SIGNROUND_PROTO_DIR")
                           or os.path.join(HERE, "..", "..", "proto"))


class BuildPyWithStubs(build_py):
    """build_py, then protoc: *_pb2.py and *_pb2_grpc.py under build_lib."""

    def run(self):
        super().run()
        root = proto_root()
        proto = os.path.join(root, PROTO_FILE)
        if not os.path.isfile(proto):
            raise SystemExit(f"signround-client: {proto} not found (build from the signround "
                             "repository, or set SIGNROUND_PROTO_DIR to its proto folder)")
        try:
            from grpc_tools import protoc
        except ImportError:
            raise SystemExit("signround-client: generating the stubs needs grpcio-tools "
                             "(Debian: python3-grpc-tools)")
        well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        out = self.build_lib
        args = ["grpc_tools.protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out}",
                f"--grpc_python_out={out}", proto]
        if protoc.main(args) != 0:
            raise SystemExit(f"signround-client: protoc failed on {proto}")
        for package in ("signround", os.path.join("signround", "v1")):
            open(os.path.join(out, package, "__init__.py"), "a").close()


setup(cmdclass={"build_py": BuildPyWithStubs})
