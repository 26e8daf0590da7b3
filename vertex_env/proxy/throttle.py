"""Wrong keys counted per client address: an address that keeps sending a wrong key (or none) is cut off a while.

A fixed key of at least 32 characters cannot be guessed; what repeated wrong keys cost is noise, CPU and log
lines, and they are a sign worth a line in the log. So, per client address:
- `FAILURES` requests refused for their key within `WINDOW` seconds block the address for `FIRST_BLOCK` seconds;
  each new block of the same address lasts twice as long as the last, up to `MAX_BLOCK`.
- While blocked, its new connections are closed as soon as they are accepted, before a byte is read (a block
  is per address: a key holder behind the same address waits too), and a request without the right key on a
  connection it already had gets 429 with Retry-After and is closed; one with the right key there passes.
- Loopback addresses are counted and logged but never blocked: every account of this machine shares them, so
  a block would let one local user lock out another's app.
- The table holds at most `MAX_ADDRESSES` addresses, least recently failed dropped first: a flood from many
  addresses costs bounded memory.
- Lines name the address and the count, never a key, at most one of each kind every 10 s (RateLimitedLog).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from vertex_env.proxy.guard import RateLimitedLog

__all__ = ["FAILURES", "FIRST_BLOCK", "MAX_ADDRESSES", "MAX_BLOCK", "WINDOW", "WrongKeyThrottle"]

log = logging.getLogger("vertex_env.proxy.server")

FAILURES = 10
WINDOW = 60.0
FIRST_BLOCK = 30.0
MAX_BLOCK = 900.0
MAX_ADDRESSES = 4096


class _Record:
    __slots__ = ("block", "blocked_until", "failures", "since")

    def __init__(self, now: float) -> None:
        self.failures = 0
        self.since = now  # start of the current counting window
        self.blocked_until = 0.0
        self.block = 0.0  # length of the last block (0: never blocked)


def client_address(address: str | None) -> str | None:
    """The address a record is kept under: an IPv4-mapped IPv6 address (a dual-stack socket) as IPv4."""
    if not address or ":" not in address:
        return address
    try:
        parsed = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    mapped = parsed.ipv4_mapped
    return str(mapped) if mapped is not None else str(parsed)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class WrongKeyThrottle:
    """The per-address count of refused keys and the blocks it leads to (one per proxy; event-loop thread only)."""

    def __init__(
        self,
        lines: RateLimitedLog,
        *,
        failures: int = FAILURES,
        window: float = WINDOW,
        first_block: float = FIRST_BLOCK,
        max_block: float = MAX_BLOCK,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lines = lines
        self.failures = max(1, failures)
        self.window = window
        self.first_block = first_block
        self.max_block = max(first_block, max_block)
        self.max_addresses = max(1, max_addresses)
        self.clock = clock
        self._table: OrderedDict[str, _Record] = OrderedDict()  # least recently failed first
        #: Addresses blocked so far (a block renewed counts again).
        self.blocks = 0

    def __len__(self) -> int:
        return len(self._table)

    def blocked(self, address: str | None) -> float:
        """Seconds left of `address`'s block; 0 when it is not blocked (the common case costs one dict test)."""
        if not self._table or address is None:
            return 0.0
        record = self._table.get(client_address(address) or "")
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - self.clock())

    def failed(self, address: str | None, reason: str) -> float:
        """A request from `address` was refused for its key (`reason`: no_key, wrong_key). Seconds its
        address is now blocked for (0: not blocked)."""
        address = client_address(address)
        if address is None:
            return 0.0
        now = self.clock()
        if _is_loopback(address):
            self._line("wrong-key", address, reason, 0)
            return 0.0
        record = self._table.get(address)
        if record is None:
            if len(self._table) >= self.max_addresses:
                self._table.popitem(last=False)
            record = self._table[address] = _Record(now)
        else:
            self._table.move_to_end(address)
        if record.blocked_until > now:  # a request on a connection opened before the block
            self._line("wrong-key", address, reason, record.failures)
            return record.blocked_until - now
        if now - record.since > self.window:
            record.failures, record.since = 0, now
        record.failures += 1
        self._line("wrong-key", address, reason, record.failures)
        if record.failures < self.failures:
            return 0.0
        record.block = min(self.max_block, record.block * 2 if record.block else self.first_block)
        record.blocked_until = now + record.block
        record.failures, record.since = 0, now
        self.blocks += 1
        skipped = self.lines.admit("client-blocked")
        if skipped is not None:
            more = f" ({skipped} more blocks since the last such line)" if skipped else ""
            log.warning(
                "client %s sent %d wrong or missing keys within %gs: its new connections are closed "
                "for %gs%s",
                address,
                self.failures,
                self.window,
                record.block,
                more,
                extra={
                    "event": "client_blocked",
                    "fields": {"client": address, "seconds": record.block, "suppressed": skipped},
                },
            )
        return record.block

    def _line(self, kind: str, address: str, reason: str, count: int) -> None:
        skipped = self.lines.admit(kind)
        if skipped is None:
            return
        what = "no key" if reason == "no_key" else "a wrong key"
        more = f" ({skipped} more since the last such line)" if skipped else ""
        log.warning(
            "refused a request with %s from %s%s",
            what,
            address,
            more,
            extra={
                "event": "auth_failed",
                "fields": {
                    "client": address,
                    "reason": reason,
                    "failures": count,
                    "suppressed": skipped,
                },
            },
        )
