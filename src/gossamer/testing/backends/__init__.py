"""Small real backends that run in-process on asyncio; each answer names its backend."""

from gossamer.testing.backends.grpc_echo import EchoClient, GrpcBackend
from gossamer.testing.backends.http_echo import HttpBackend, SeenRequest
from gossamer.testing.backends.tcp_echo import TcpEchoBackend

__all__ = ["EchoClient", "GrpcBackend", "HttpBackend", "SeenRequest", "TcpEchoBackend"]
