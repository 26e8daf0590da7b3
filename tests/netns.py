"""A network namespace joined to this one by a veth pair: a container network without a container runtime.

`ContainerNetwork` is what Docker's bridge gives a container, reduced to what the tests need: the host side of
a veth pair with `host_address` (where `serve --listen 0.0.0.0` answers the "container"), and a namespace whose
side has `address` (and `other_address`, a second client of the same network) and nothing else: no route to
this machine's loopback, so a client in it reaches `serve` only as a container would. Run a program inside with
`argv(...)` (`ip netns exec`). Names are unique per run (pid and a counter) so parallel workers never collide;
`close()` (the fixture's finalizer) deletes the namespace and the veth pair whatever happened.

Needs root and iproute2's `ip` (the `container_network` fixture in conftest.py skips, or fails under
VERTEX_ENV_REQUIRE_TOOLS=1, without them).
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
from collections.abc import Sequence

__all__ = ["ContainerNetwork", "NetnsUnavailable"]

_counter = itertools.count()


class NetnsUnavailable(Exception):
    """This machine cannot make a namespace (not root, no `ip`, no CAP_SYS_ADMIN): the reason."""


class ContainerNetwork:
    """A namespace `name` with the veth end `inner` (`address`, `other_address`) joined to `outer`
    (`host_address`) in this namespace; a /24 of 10.200.0.0/13 picked at random."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        serial = f"{os.getpid() % 100000}x{next(_counter)}"
        self.name = f"vertex-env-test-{serial}"
        self.outer = f"ve{serial}h"[:15]
        self.inner = f"ve{serial}c"[:15]
        block = random.randrange(8 * 256)
        prefix = f"10.{200 + block // 256}.{block % 256}"
        self.host_address = f"{prefix}.1"
        self.address = f"{prefix}.2"
        self.other_address = f"{prefix}.3"
        self._made = False

    def _ip(self, *args: str) -> None:
        result = subprocess.run([self.ip, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NetnsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def open(self) -> ContainerNetwork:
        try:
            self._ip("netns", "add", self.name)
            self._made = True
            self._ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            self._ip("link", "set", self.inner, "netns", self.name)
            self._ip("addr", "add", f"{self.host_address}/24", "dev", self.outer)
            self._ip("link", "set", self.outer, "up")
            for address in (self.address, self.other_address):
                self._ip("-n", self.name, "addr", "add", f"{address}/24", "dev", self.inner)
            self._ip("-n", self.name, "link", "set", self.inner, "up")
            self._ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def argv(self, *command: str) -> list[str]:
        """`command` run inside the namespace (as root, with this process's environment unless given one)."""
        return [self.ip, "netns", "exec", self.name, *command]

    def run(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """`command` inside the namespace, `stdin` its input, output captured, never raising."""
        return subprocess.run(
            self.argv(*command),
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        """Delete the veth pair and the namespace (each step on its own: a half-made network goes too)."""
        subprocess.run([self.ip, "link", "del", self.outer], capture_output=True, check=False)
        if self._made:
            subprocess.run([self.ip, "netns", "del", self.name], capture_output=True, check=False)
            self._made = False

    def __repr__(self) -> str:
        return f"ContainerNetwork({self.name}: {self.host_address} <-> {self.address})"
