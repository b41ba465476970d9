"""Service operations: one per use case, called alike by the WebSocket commands, the JSON API and the pages.

Each operation takes the actor, a validated input and `now`; it decides with the one access policy
(`access.py`), writes in one transaction with its audit entry, and publishes its events after the commit.
Nothing here imports aiohttp.
"""

from telehealth.services.context import Actor, Services, Unit

__all__ = ["Actor", "Services", "Unit"]
