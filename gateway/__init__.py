"""The gateway: HTTP and WebSocket transports over one core (see docs/architecture.md)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("space-cloud-py")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
