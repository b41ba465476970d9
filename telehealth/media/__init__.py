"""The project's own WebRTC peer (aiortc): the Python client and test peer. Only this package imports aiortc."""

from telehealth.media.call import CallPeer
from telehealth.media.client import ProtocolError, TelehealthClient

__all__ = ["CallPeer", "ProtocolError", "TelehealthClient"]
