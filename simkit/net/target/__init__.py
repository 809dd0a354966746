"""Target mode's real-socket parts: the kit's clients against a WebSocket server that is not
the kit's, whichever runtime drives them.

- :mod:`~simkit.net.target.url`: the ``ws://`` URL the user names, checked, and the URL
  each tab dials (``{user}``, ``simkit_conn``);
- :mod:`~simkit.net.target.stats`: the stats protocol's client (``GET /simkit/registry``
  on h11, bounded by a timeout);
- :mod:`~simkit.net.target.mirror`: the target's registry as its stats route reports it,
  its end of each connection, and the run's server actor;
- :mod:`~simkit.net.target.network`: the tabs' network, through the fault proxy;
- :mod:`~simkit.net.target.report`: the summary's part, with what cannot be known as a
  table of reasons.

Traffic goes only to the address the user names: the proxy's upstream and the stats route
are the target's own host and port.
"""

from simkit.net.target.mirror import Mirror, TargetEnd, TargetServer
from simkit.net.target.network import (
    OPEN_TIMEOUT,
    STARVE_AFTER,
    Auth,
    TargetNetwork,
    describe_refusal,
)
from simkit.net.target.report import REGISTRY_COLUMNS, UNKNOWN, target_summary
from simkit.net.target.stats import (
    STATS_PATH,
    STATS_TIMEOUT,
    StatsUnavailable,
    fetch_registry,
)
from simkit.net.target.url import (
    CONNECT_TIMEOUT,
    TARGET_KEEPALIVE,
    Target,
    check_keepalive,
    parse_target,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "OPEN_TIMEOUT",
    "REGISTRY_COLUMNS",
    "STARVE_AFTER",
    "STATS_PATH",
    "STATS_TIMEOUT",
    "TARGET_KEEPALIVE",
    "UNKNOWN",
    "Auth",
    "Mirror",
    "StatsUnavailable",
    "Target",
    "TargetEnd",
    "TargetNetwork",
    "TargetServer",
    "check_keepalive",
    "describe_refusal",
    "fetch_registry",
    "parse_target",
    "target_summary",
]
