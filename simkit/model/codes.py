"""WebSocket close codes the kit speaks, with the meaning each has in the story.

RFC 6455 section 7.4.1 defines 1000-1015; 4000-4999 are free for applications, and the
kit uses a few of them for the server's own decisions so a plot can tell a kick from a
crash.
"""

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000  # the page closed its socket on purpose (pagehide/beforeunload handler)
    GOING_AWAY = 1001  # the browser navigated or reloaded: it closes sockets itself
    ABNORMAL = 1006  # never sent on the wire: TCP ended without a close frame (crash, reset)
    KEEPALIVE_TIMEOUT = 1011  # websockets' keepalive: a ping went unanswered
    TRY_AGAIN_LATER = 1013  # the server is over a connection limit
    REPLACED = 4000  # kick-old: a newer connection of the same user replaced this one
    REFUSED = 4001  # reject-new: the user already has a connection
    PROXY_IDLE = 4002  # an idle-timeout proxy cut the link (nginx's proxy_read_timeout, say)
    SERVER_RESTART = 4003  # the server went away and comes back


def describe(code: int) -> str:
    """A readable name for a close code, also for codes outside the enum."""
    try:
        return CloseCode(code).name.lower().replace("_", "-")
    except ValueError:
        return f"code-{code}"
