"""Layer 6: the Bitrix24 sandbox portal, a local emulator of the Bitrix24 REST API.

Used for local runs, tests, demos and benchmarks. It answers as Bitrix24's public REST
documentation (apidocs.bitrix24.com, github.com/bitrix24/b24restdocs) describes a cloud portal, and
as the Bitrix24 modules' source behaves where the documentation is silent or ambiguous (each such
choice is a config switch), with costs and limits on a time scale. It imports nothing from the
other layers of this project and knows nothing about our client (``bitrix24_assets.bitrix24``).

    from bitrix24_assets.sandbox import SandboxConfig, running_sandbox
    with running_sandbox(SandboxConfig(users=50, tasks=300, profile="instant")) as portal:
        portal.webhook_url   # http://127.0.0.1:PORT/rest/1/<token>/
"""

from .config import PROFILE_LIMITS, SandboxConfig
from .costs import CostModel, Limits, Work, lower_bound_seconds
from .server import AdminClient, SandboxHandle, running_sandbox

__all__ = [
    "PROFILE_LIMITS",
    "AdminClient",
    "CostModel",
    "Limits",
    "SandboxConfig",
    "SandboxHandle",
    "Work",
    "lower_bound_seconds",
    "running_sandbox",
]
