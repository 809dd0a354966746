"""Floor 1: the pure model. No asyncio, no sockets, no clock reads; time is passed in."""

from simkit.model.client import BACKOFF_PRESETS, Backoff, Client, Storage, claim
from simkit.model.codes import CloseCode
from simkit.model.connection import ClientState, ServerState
from simkit.model.errors import (
    ConfigError,
    IllegalConnectionTransition,
    IllegalTransition,
    SimkitError,
)
from simkit.model.liveness import LIVENESS, Heartbeat, Liveness, liveness
from simkit.model.registry import (
    REGISTRIES,
    Action,
    Buffered,
    Close,
    Deliver,
    Dropped,
    Expired,
    Hello,
    KickOld,
    KickOldSafe,
    Multi,
    Naive,
    NoRoute,
    Refuse,
    Registry,
    RejectNew,
    Resume,
    Welcome,
)
from simkit.model.strategy import STRATEGIES, Strategy, make_strategy, strategy

__all__ = [
    "BACKOFF_PRESETS",
    "LIVENESS",
    "REGISTRIES",
    "STRATEGIES",
    "Action",
    "Backoff",
    "Buffered",
    "Client",
    "ClientState",
    "Close",
    "CloseCode",
    "ConfigError",
    "Deliver",
    "Dropped",
    "Expired",
    "Heartbeat",
    "Hello",
    "IllegalConnectionTransition",
    "IllegalTransition",
    "KickOld",
    "KickOldSafe",
    "Liveness",
    "Multi",
    "Naive",
    "NoRoute",
    "Refuse",
    "Registry",
    "RejectNew",
    "Resume",
    "ServerState",
    "SimkitError",
    "Storage",
    "Strategy",
    "Welcome",
    "claim",
    "liveness",
    "make_strategy",
    "strategy",
]
