"""Refuse to grade a kit that was patched at run time.

A notebook can replace a function of the kit (``Census.audit = lambda ...``) and make any
answer pass. :class:`KitSnapshot` records every function and method of the loaded kit, and
:meth:`KitSnapshot.check_untouched` refuses to go on when one of them is no longer the same
object. The exercise table takes its snapshot when it is imported, after every grading
module.
"""

from __future__ import annotations

import inspect
import sys

from simkit.model.errors import ConfigError


def kit_functions() -> dict[str, object]:
    """Every function and method defined in a loaded simkit module, by dotted name."""
    found: dict[str, object] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "simkit" or module_name.startswith("simkit.")):
            continue
        for owner_name, owner in list(vars(module).items()):
            if isinstance(owner, type) and owner.__module__ == module_name:
                for key, member in vars(owner).items():
                    if inspect.isfunction(member) or isinstance(
                        member, staticmethod | classmethod | property
                    ):
                        found[f"{module_name}.{owner_name}.{key}"] = member
            elif inspect.isfunction(owner) and owner.__module__ == module_name:
                found[f"{module_name}.{owner_name}"] = owner
    return found


class KitSnapshot:
    """Every function and method the kit has now (:func:`kit_functions`), to compare later."""

    def __init__(self) -> None:
        self.functions = kit_functions()

    def check_untouched(self) -> None:
        """Refuse to grade when a function of the kit was replaced at run time (say
        ``Census.audit = ...`` in a notebook): every function and method the kit had when
        the snapshot was taken must still be the same object."""
        now = kit_functions()
        for name, function in self.functions.items():
            if now.get(name) is not function:
                raise ConfigError(
                    f"{name} was replaced or removed after the kit was imported; restart the "
                    "kernel to grade an unchanged kit"
                )


__all__ = ["KitSnapshot", "kit_functions"]
