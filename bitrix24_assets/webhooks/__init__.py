"""Layer 5: the HTTP receiver for Bitrix24 outgoing events (FastAPI).

It authenticates each event against the account's application token and stores it in Core's
inbox (``core.integration_events``); the Dagster sensor ``defs/inbox.py`` turns the inbox into runs.
Imports ``bitrix24.events`` (parsing) and ``core`` (the store); never Dagster, ``defs`` or the sandbox.
"""

from .app import create_app
from .settings import ReceiverSettings

__all__ = ["ReceiverSettings", "create_app"]
