"""Exercise 1, *survive the race*: a registry of the learner's own.

The answer is a ``Registry`` subclass (the class), played in the ``postmortem-safe`` client
and heartbeat on the cleanup-race scenarios, on ``come-and-go`` (people who leave for
good, defined here) and on ``multi-tab`` (people with several tabs open: none of them may be
kicked). It must be the learner's own design: the kit's registries, subclasses of them and
wrappers that hand them the work are refused, each with the reason. It is seen through
:class:`_Witness`, which answers every question the kit asks from what the answer holds
(``entries()``), so an answer cannot say one thing to the pushes and another to the census.
"""

from __future__ import annotations

from collections.abc import Callable
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, TypeGuard

from simkit.grading.framework import (
    INVARIANTS,
    Book,
    Exercise,
    Prepared,
    Workload,
    book_check,
    nothing_to_replay,
    summary_check,
)
from simkit.grading.harness import BASE_STRATEGY
from simkit.model.errors import ConfigError
from simkit.model.latency import Latency
from simkit.model.registry import Action, Deliver, Expired, Hello, NoRoute, Registry
from simkit.model.strategy import STRATEGIES, Strategy
from simkit.scenarios import SCENARIOS, Scenario

if TYPE_CHECKING:
    from simkit.runtime.interfaces import TabActor


class _Witness(Registry):
    """The registry the server and the census see while an answer is graded.

    It passes ``connect``, ``disconnect`` and ``expire`` to the answer, then reads what the
    answer holds (``entries()``) and keeps a copy: every question the kit asks afterwards
    (``route``, ``routes_to``, ``audit``, where a push goes) is answered from that copy, so
    an answer cannot say one thing to the pushes and another to the census. It also checks
    what the kit relies on: ``route(user)`` gives the user's entries; an entry pairs a user
    with one of *that user's* connections; and entries change only for the user whose
    connection just opened or closed (the census re-counts only those).
    """

    def __init__(self, answer: Registry, book: Book) -> None:
        self.answer = answer
        self.book = book
        # The answer's class says whether it means one connection per user; the witness
        # stands in for any answer, so it carries that per instance (a class default on Registry).
        self.one_per_user = bool(getattr(answer, "one_per_user", True))
        self.owner: dict[int, str] = {}  # conn -> the user its handshake claimed
        self.held: dict[str, tuple[int, ...]] = {}
        self.wrong_user: dict[tuple[str, int], None] = {}
        self._read(None)

    def connect(self, hello: Hello, now: float) -> list[Action]:
        self.owner[hello.conn] = hello.user
        actions = list(self.answer.connect(hello, now) or ())
        self._read(hello.user)
        return actions

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        actions = list(self.answer.disconnect(conn, user, now) or ())
        self._read(user)
        return actions

    def deadline(self) -> float | None:
        return self.answer.deadline()

    def expire(self, now: float) -> list[Action]:
        actions = list(self.answer.expire(now) or ())
        before = self.held
        self._read(None, only_remove=True)
        told = {a.user for a in actions if isinstance(a, Expired)}
        for user in {*before, *self.held} - told:
            if before.get(user) != self.held.get(user):
                actions.append(Expired(user, "", ()))  # the census re-counts them
        return actions

    def route(self, user: str) -> tuple[int, ...]:
        return self.held.get(user, ())

    def entries(self) -> list[tuple[str, int]]:
        return [(user, conn) for user, conns in self.held.items() for conn in conns]

    def routes_to(self, user: str, conn: int) -> bool:
        return conn in self.held.get(user, ())

    def audit(self, is_open: Callable[[int], bool]) -> tuple[int, int]:
        entries = self.entries()
        return len(entries), sum(1 for _, conn in entries if not is_open(conn))

    def push(self, user: str, push: int, now: float) -> list[Action]:
        conns = self.held.get(user)
        if not conns:
            return [NoRoute(user, push)]
        return [Deliver(conn, push) for conn in conns]

    def _read(self, user: str | None, only_remove: bool = False) -> None:
        held: dict[str, dict[int, None]] = {}
        entries = self.answer.entries()
        try:
            pairs = [(u, c) for u, c in entries]
        except (TypeError, ValueError):
            raise ConfigError(
                f"entries() must return (user, connection) pairs, got {entries!r}"
            ) from None
        for u, c in pairs:
            if not isinstance(u, str) or isinstance(c, bool) or not isinstance(c, int):
                raise ConfigError(
                    f"entries() must return (user, connection) pairs of a str and an int, "
                    f"got {(u, c)!r}"
                )
            held.setdefault(u, {})[c] = None
            if self.owner.get(c, u) != u:
                self.wrong_user[(u, c)] = None
        now = {u: tuple(conns) for u, conns in held.items()}
        changed = [u for u in {**self.held, **now} if self.held.get(u) != now.get(u)]
        book = self.book
        if only_remove:
            # expire(): a timer, no event of any user's. Dropping entries is what a timer is
            # for (a TTL); adding one, or pointing a user at another connection, is not.
            hidden = sum(1 for u in changed if not set(now.get(u, ())) <= set(self.held.get(u, ())))
        else:
            hidden = sum(1 for u in changed if u != user)
        if hidden:
            book["hidden"] = book.get("hidden", 0) + hidden
        for u in changed if user is None else {*changed, user}:
            if set(self.answer.route(u)) != set(now.get(u, ())):
                book["route"] = book.get("route", 0) + 1
        book["wrong_user"] = len(self.wrong_user)
        self.held = now


def _is_kit_registry(cls: object) -> TypeGuard[type[Registry]]:
    """A registry policy the kit ships (``KickOldSafe``, ``Multi``, ...), not the base."""
    return (
        isinstance(cls, type)
        and issubclass(cls, Registry)
        and cls is not Registry
        and cls is not _Witness
        and (cls.__module__ == "simkit" or cls.__module__.startswith("simkit."))
    )


def _kit_registry_names() -> dict[str, type[Registry]]:
    found: dict[str, type[Registry]] = {}
    todo: list[type[Registry]] = [Registry]
    while todo:
        for sub in todo.pop().__subclasses__():
            if _is_kit_registry(sub):
                found[sub.__name__] = sub
            todo.append(sub)
    return found


def _code_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _code_names(const)
    return names


def _functions_of(cls: type) -> list[FunctionType]:
    functions: list[FunctionType] = []
    for klass in cls.__mro__:
        if klass in (Registry, object):
            continue
        for member in vars(klass).values():
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if isinstance(member, FunctionType):
                functions.append(member)
    return functions


def _held_kit_registry(value: object, depth: int = 0) -> type[Registry] | None:
    """A kit registry instance held by ``value`` (in its attributes, or in the lists,
    dicts and sets those hold), a few levels deep."""
    cls = type(value)
    if _is_kit_registry(cls):
        return cls
    if depth > 3:
        return None
    if isinstance(value, dict):
        inner: list[object] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        inner = list(value)
    else:
        inner = list(getattr(value, "__dict__", {}).values())
        for slot in getattr(type(value), "__slots__", ()):
            if isinstance(slot, str) and hasattr(value, slot):
                inner.append(getattr(value, slot))
    for item in inner:
        if isinstance(item, str | int | float | bool | bytes | type(None)):
            continue
        found = _held_kit_registry(item, depth + 1)
        if found is not None:
            return found
    return None


def _refuse_the_kits_policies(answer: type[Registry]) -> None:
    """The answer must be a design of the learner's own: not one of the kit's policies
    under another name, as a subclass (``class Mine(KickOldSafe): pass``), as a wrapper
    that hands the work to one (holding ``KickOldSafe()``), or borrowing its methods
    (``KickOldSafe.disconnect(self, ...)``). Each refusal says which and why."""
    why = (
        "the grade would score the kit's design, not yours: write connect, disconnect, "
        "route and entries yourself on a subclass of Registry"
    )
    for base in answer.__mro__[1:]:
        if _is_kit_registry(base):
            raise ConfigError(
                f"{answer.__name__} inherits from {base.__name__}, one of the kit's own "
                f"registries; {why}"
            )
    kit = _kit_registry_names()
    for function in _functions_of(answer):
        for name in sorted(_code_names(function.__code__) & set(kit)):
            seen = function.__globals__.get(name, kit[name])
            if _is_kit_registry(seen):
                raise ConfigError(
                    f"{answer.__name__}.{function.__name__} uses {name}, one of the kit's own "
                    f"registries; {why}"
                )
    try:
        instance = answer()
        instance.connect(Hello(-1, "grader-probe"), 0.0)
        instance.connect(Hello(-2, "grader-probe"), 0.0)
        instance.disconnect(-1, "grader-probe", 0.0)
    except Exception as exc:  # the learner's code: say what went wrong
        raise ConfigError(
            f"{answer.__name__}() failed on a first connect and disconnect: {exc!r}"
        ) from exc
    held = _held_kit_registry(instance)
    if held is not None:
        raise ConfigError(
            f"{answer.__name__} holds a {held.__name__}, one of the kit's own registries, and "
            f"hands it the work; {why}"
        )


def _prepare_registry(answer: object) -> Prepared:
    if isinstance(answer, Registry):
        raise ConfigError(
            f"pass the registry class, not an instance: {type(answer).__name__}, not "
            f"{type(answer).__name__}(); every run needs a fresh, empty registry"
        )
    if not (isinstance(answer, type) and issubclass(answer, Registry)):
        raise ConfigError(
            f"exercise 1 grades a Registry subclass (your class itself); got {answer!r}"
        )
    if _is_kit_registry(answer) or answer is Registry:
        raise ConfigError(
            f"{answer.__name__} is one of the kit's own registries; the answer is a class you wrote"
        )
    _refuse_the_kits_policies(answer)
    name = (
        answer.name
        if isinstance(answer.name, str) and answer.name != "custom"
        else (answer.__name__)
    )
    base = STRATEGIES[BASE_STRATEGY]
    cls: type[Registry] = answer

    def make(book: Book) -> Strategy:
        def factory() -> Registry:
            return _Witness(cls(), book)

        return base.replace(name=name, registry=factory, summary="")

    return Prepared(name, make, nothing_to_replay)


async def _come_and_go(tab: TabActor, sc: Scenario) -> None:
    """People drop in and leave for good. A tab loads in the first half of the workload,
    reloads a few times (a tenth of the reloads after its socket silently died), and half
    of the tabs then close for good, most of them within seconds of their newest
    connection (a few vanish instead: the phone dies). A registry that never forgets, or
    that ignores cleanups arriving soon after a connection, keeps entries for people who
    are gone."""
    rng = tab.work_rng
    await tab.sleep(rng.uniform(0.0, sc.duration / 2))
    tab.load()
    for _ in range(rng.randint(0, 3)):
        await tab.sleep(rng.uniform(0.2, 15.0))
        if tab.now >= sc.duration:
            return
        await tab.reload(rng.uniform(0.05, 0.5), vanish=rng.random() < 0.1)
    if rng.random() < 0.5:
        return  # stays to the end
    await tab.sleep(rng.expovariate(1 / 4.0))
    if tab.now >= sc.duration:
        return
    if rng.random() < 0.2:
        tab.unload(vanish=True)
    else:
        tab.close()


COME_AND_GO = Scenario(
    "come-and-go",
    "people who reload a few times and leave for good, most within seconds of their last load",
    _come_and_go,
    latency=Latency(0.01, 0.4),
)


def _registry_workload(sc: Scenario, min_delivery: float) -> Workload:
    return Workload(
        sc.name,
        sc,
        tabs=50,
        duration=120.0,
        settle=None,
        checks=(
            *INVARIANTS,
            summary_check("delivery_ratio", ">=", min_delivery),
            book_check("route", "route() disagrees with entries()"),
            book_check("wrong_user", "entries on another user's connection"),
            book_check("hidden", "entries added or changed for a user with no event"),
            summary_check("kicked_live_tabs", "==", 0, "live tabs kicked"),
        ),
    )


EXERCISE = Exercise(
    1,
    "survive the race",
    "exercises/ex1_survive_the_race.ipynb",
    "02_the_cleanup_race.ipynb",
    "a Registry subclass",
    (
        _registry_workload(SCENARIOS["reload-storm"], 0.9),
        _registry_workload(SCENARIOS["strict-mode"], 0.9),
        _registry_workload(SCENARIOS["flaky-network"], 0.6),
        _registry_workload(COME_AND_GO, 0.9),
        _registry_workload(SCENARIOS["multi-tab"], 0.9),
    ),
    _prepare_registry,
)

__all__ = ["COME_AND_GO", "EXERCISE"]
