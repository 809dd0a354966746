"""Each registry policy's own promise, event by event."""

import pytest

from simkit.model import (
    Buffered,
    Close,
    CloseCode,
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
    RejectNew,
    Resume,
    Welcome,
)


def test_naive_keeps_both_sockets_and_blind_delete_drops_the_new_entry() -> None:
    reg = Naive()
    assert reg.connect(Hello(1, "u"), 0) == []
    assert reg.connect(Hello(2, "u"), 1) == []  # c1 is never closed by the server
    reg.disconnect(1, "u", 2)  # c1's late close
    assert reg.route("u") == ()  # c2 is open but unroutable


def test_kick_old_closes_the_old_then_loses_the_new_entry() -> None:
    reg = KickOld()
    reg.connect(Hello(1, "u"), 0)
    assert reg.connect(Hello(2, "u"), 1) == [
        Close(1, CloseCode.REPLACED, "replaced by a newer connection")
    ]
    reg.disconnect(1, "u", 2)
    assert reg.route("u") == ()


def test_kick_old_safe_keeps_the_new_entry() -> None:
    reg = KickOldSafe()
    reg.connect(Hello(1, "u"), 0)
    reg.connect(Hello(2, "u"), 1)
    reg.disconnect(1, "u", 2)
    assert reg.route("u") == (2,)
    reg.disconnect(2, "u", 3)
    assert reg.entries() == []


def test_reject_new_refuses_the_second_and_the_refused_close_does_not_evict_the_owner() -> None:
    reg = RejectNew()
    reg.connect(Hello(1, "u"), 0)
    assert reg.connect(Hello(2, "u"), 1) == [Refuse(2, CloseCode.REFUSED, "user already connected")]
    reg.disconnect(2, "u", 2)
    assert reg.route("u") == (1,)


def test_multi_delivers_to_every_tab_and_forgets_only_the_closed_one() -> None:
    reg = Multi()
    for conn in (1, 2, 3):
        reg.connect(Hello(conn, "u"), conn)
    assert reg.push("u", 99, 4) == [Deliver(1, 99), Deliver(2, 99), Deliver(3, 99)]
    reg.disconnect(2, "u", 5)
    assert reg.route("u") == (1, 3)
    assert reg.push("nobody", 100, 6) == [NoRoute("nobody", 100)]


def test_resume_replays_missed_pushes_within_grace() -> None:
    reg = Resume(grace=10, buffer=5)
    [welcome] = reg.connect(Hello(1, "u"), 0)
    assert welcome == Welcome(1, "s1", False)
    reg.disconnect(1, "u", 1)
    assert reg.push("u", 7, 2) == [Buffered("u", 7)]
    assert reg.connect(Hello(2, "u", "s1"), 5) == [Welcome(2, "s2", True, (7,))]
    assert reg.route("u") == (2,) and reg.resumes == 1


def test_resume_tokens_are_single_use() -> None:
    reg = Resume(grace=10, buffer=5)
    reg.connect(Hello(1, "u"), 0)
    reg.disconnect(1, "u", 1)
    assert reg.connect(Hello(2, "u", "s1"), 2)[0].session == "s2"  # s1 retired, s2 issued
    reg.disconnect(2, "u", 3)
    replayed_by_thief = reg.connect(Hello(3, "u", "s1"), 4)  # the old token, copied earlier
    assert replayed_by_thief == [Welcome(3, "s3", False)] and reg.resume_failures == 1
    assert reg.connect(Hello(4, "u", "s2"), 5)[0].resumed  # the owner's current token works


def test_resume_fails_after_grace_and_counts_the_lost_pushes() -> None:
    reg = Resume(grace=10, buffer=5)
    reg.connect(Hello(1, "u"), 0)
    reg.disconnect(1, "u", 1)
    reg.push("u", 7, 2)
    assert reg.deadline() == 11
    assert reg.expire(10.9) == []
    assert reg.expire(11) == [Expired("u", "s1", (7,))]
    assert reg.connect(Hello(2, "u", "s1"), 12) == [Welcome(2, "s2", False)]
    assert reg.resume_failures == 1


def test_resume_buffer_overflow_fails_the_resume() -> None:
    reg = Resume(grace=10, buffer=2)
    reg.connect(Hello(1, "u"), 0)
    reg.disconnect(1, "u", 1)
    fates = [type(a) for p in range(3) for a in reg.push("u", p, 2)]
    assert fates == [Buffered, Buffered, Dropped]
    actions = reg.connect(Hello(2, "u", "s1"), 3)
    assert actions == [Expired("u", "s1", (0, 1)), Welcome(2, "s2", False)]


def test_resume_reload_before_the_old_close_arrives_closes_the_old_socket() -> None:
    reg = Resume()
    reg.connect(Hello(1, "u"), 0)
    actions = reg.connect(Hello(2, "u", "s1"), 1)
    assert actions == [
        Close(1, CloseCode.REPLACED, "session resumed elsewhere"),
        Welcome(2, "s2", True),
    ]
    reg.disconnect(1, "u", 2)  # the old handler finishing must not detach the new one
    assert reg.route("u") == (2,)


def test_resume_validates_its_parameters() -> None:
    with pytest.raises(ValueError, match="grace must be >= 0 seconds, got -1"):
        Resume(grace=-1)
