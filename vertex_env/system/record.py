"""The one base for vertex-env's immutable records (Token, CredentialSource, Profile, Environment).

A slotted class rather than a frozen dataclass: importing dataclasses (inspect, ast, dis, tokenize) would cost
the warm `export` path more than it runs. A record sets its fields once in `__init__` (`_set`), refuses every
later assignment or deletion, and is compared and hashed by `_compared` (its slots unless it says otherwise).
It imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Record"]


class Record:
    """Slotted and immutable; equal to a record of the same class with the same `_compared` fields."""

    __slots__ = ()
    #: The fields compared and hashed, in order (empty: every slot of the class).
    _compared: tuple[str, ...] = ()
    #: Said after "X is immutable" (Profile: "use replace()").
    _immutable_hint = ""

    def _set(self, **fields: Any) -> None:
        """Set fields: for `__init__` only."""
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        hint = f"; {self._immutable_hint}" if self._immutable_hint else ""
        raise AttributeError(f"{type(self).__name__} is immutable (cannot set {name!r}{hint})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (cannot delete {name!r})")

    def _fields(self) -> tuple[Any, ...]:
        names = self._compared or type(self).__slots__
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())
