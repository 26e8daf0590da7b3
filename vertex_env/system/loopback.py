"""What the loopback services (the proxy, the emulator) accept: this machine's addresses, and the proxy's local key;
and the one rule for the way there: loopback traffic never goes through an HTTP(S)_PROXY.

Light on purpose (no aiohttp): `serve` checks its arguments and reads its key file before the proxy is imported.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vertex_env.errors import ConfigError, UsageError
from vertex_env.system.echo import printable
from vertex_env.system.quoting import quote_sh

if TYPE_CHECKING:
    import urllib.request

__all__ = [
    "DEFAULT_HOST",
    "KEY_ENV",
    "LOOPBACK_NAMES",
    "MIN_KEY_LENGTH",
    "PROXY_VARIABLES",
    "bypass_proxy_for_loopback",
    "check_key",
    "check_listen",
    "check_loopback",
    "fixed_key",
    "goes_direct",
    "is_loopback",
    "is_wildcard",
    "new_key",
    "opener_for",
    "private_file",
    "read_key_file",
]

DEFAULT_HOST = "127.0.0.1"
#: The variable that fixes the proxy's local key (never a command-line argument: argv is world-readable).
KEY_ENV = "VERTEX_ENV_PROXY_KEY"
#: Shortest local key accepted from a file or the environment (token_urlsafe(32) makes 43 characters).
MIN_KEY_LENGTH = 32
#: Largest key file read: a key is a line, not a document.
_MAX_KEY_FILE = 4096


def new_key() -> str:
    """A random local key for one proxy run: 32 bytes from `secrets`, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def _bare(host: str) -> str:
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name


def is_loopback(host: str) -> bool:
    """True for `localhost` and any loopback address (127.0.0.0/8, ::1), bracketed or not."""
    name = _bare(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- the one proxy-bypass rule --------------------------------------------------------------------------------
# A corporate HTTP(S)_PROXY may be the only way to Google, and is never the way to 127.0.0.1: the proxy runs on
# another machine, where this machine's loopback (the emulator, `serve`, `run --proxy`) is out of reach, or it
# refuses local addresses. Every HTTP client of vertex-env asks `goes_direct` (google-auth's session through
# vertex_env.core.transport, the proxy's upstream, the emulator's admin client, the demo, the pytest plugin) and
# a child handed a loopback base URL gets the same rule through NO_PROXY (`bypass_proxy_for_loopback`).

#: The variables HTTP clients (requests, httpx, aiohttp, urllib, curl) read a forward proxy from.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
#: Loopback as NO_PROXY names it for every client (each client matches names, not address ranges).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def goes_direct(url: str) -> bool:
    """True when `url` is on this machine's loopback: connect to it directly, whatever HTTP(S)_PROXY says."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # a malformed URL is not ours to route; its client reports it
        return False
    return is_loopback(host)


def opener_for(url: str) -> urllib.request.OpenerDirector:
    """A urllib opener for `url`: without proxies for a loopback URL, the environment's proxies otherwise."""
    import urllib.request

    if goes_direct(url):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def bypass_proxy_for_loopback(environ: MutableMapping[str, str], base_url: str) -> None:
    """Add the loopback names to NO_PROXY/no_proxy in `environ` (a child's, or a test process's) when it has a
    forward proxy and `base_url` is on loopback: the child's own HTTP client then goes direct as ours do."""
    if not goes_direct(base_url) or not any(environ.get(name) for name in PROXY_VARIABLES):
        return
    for name in ("NO_PROXY", "no_proxy"):
        present = [entry.strip() for entry in environ.get(name, "").split(",") if entry.strip()]
        missing = [entry for entry in LOOPBACK_NAMES if entry not in present]
        environ[name] = ",".join(present + missing)


def check_loopback(host: str) -> str:
    """The address to bind for `host` if it is loopback (127.0.0.0/8, ::1, localhost); ConfigError otherwise."""
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r}: the proxy serves this machine only",
            hint="use 127.0.0.1, ::1 or localhost; anyone who reaches it spends your Google credentials",
        )
    name = _bare(host)
    if name.lower() == "localhost":
        return (
            DEFAULT_HOST  # one address: an ephemeral port is not shared between 127.0.0.1 and ::1
        )
    return str(ipaddress.ip_address(name))


def is_wildcard(host: str) -> bool:
    """True for the unspecified addresses (0.0.0.0, ::): a listener there answers on every interface."""
    try:
        return ipaddress.ip_address(_bare(host)).is_unspecified
    except ValueError:
        return False


def check_listen(host: str, keyed: bool) -> str:
    """The address to bind for `--listen host`: loopback as `check_loopback` says; any other IP address
    (0.0.0.0, ::, an interface's) only when the key is fixed (`keyed`): a per-run random key is useless to an
    app configured once, and a listener beyond loopback without a key is never allowed. UsageError otherwise."""
    if is_loopback(host):
        return check_loopback(host)
    try:
        address = ipaddress.ip_address(_bare(host))
    except ValueError:
        raise UsageError(
            f"invalid --listen {printable(host)!r}: expected an IP address "
            "(127.0.0.1, ::1, 0.0.0.0, ::, or an address of this machine's) or localhost"
        ) from None
    if not keyed:
        raise UsageError(
            f"refusing to listen on {address} without a fixed key: give --key-file FILE "
            f"(or {KEY_ENV}, at least {MIN_KEY_LENGTH} characters); apps beyond loopback need a key that lasts"
        )
    return str(address)


def check_key(key: str) -> str:
    """The key, if it is one: at least MIN_KEY_LENGTH visible ASCII characters (no space, no control
    character: an ESC in VERTEX_ENV_PROXY_KEY would reach a terminal or a header)."""
    if len(key) < MIN_KEY_LENGTH or not all("\x21" <= c <= "\x7e" for c in key):
        raise ConfigError(
            f"invalid proxy key: expected at least {MIN_KEY_LENGTH} printable ASCII characters without spaces",
            hint="generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return key


def _kubelet_secret(st: os.stat_result) -> bool:
    """A Kubernetes secret mounted with `defaultMode: 0400` under the pod's `fsGroup`: the kubelet makes it
    root-owned, 0440, group fsGroup. Accepted only for a non-root process whose own group is that group."""
    return (
        st.st_uid == 0 != os.geteuid()
        and st.st_gid == os.getegid()
        and stat.S_IMODE(st.st_mode) == 0o440
    )


def _others_in_group(gid: int) -> list[str]:
    """The other accounts in group `gid` (as a member, or as their primary group): a key readable by a
    group is private only when that group is ours alone, as a pod's fsGroup is."""
    import grp
    import pwd

    me = os.geteuid()
    try:
        my_name: str | None = pwd.getpwuid(me).pw_name
    except KeyError:  # a container's uid without an /etc/passwd entry
        my_name = None
    try:
        members = [name for name in grp.getgrgid(gid).gr_mem if name != my_name]
    except KeyError:
        members = []
    primary = [p.pw_name for p in pwd.getpwall() if p.pw_gid == gid and p.pw_uid != me]
    return sorted(set(members + primary))


@contextlib.contextmanager
def private_file(path: Path, what: str = "key file") -> Iterator[int]:
    """A descriptor of `path` opened for reading, refused as ssh refuses a private key others could read: the
    file (a symlink is followed) must be a regular file owned by us or root, with no group or other permission
    bits — except the form the kubelet gives a 0400 secret under `fsGroup` (root-owned 0440, our own group).
    `what` names the file in the one-line error (`key file`, `TLS key file`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if st.st_uid not in (os.geteuid(), 0):
            raise ConfigError(
                f"{what} {path} belongs to another user (uid {st.st_uid}); refusing a key others control",
                hint=f"use a {what} of your own, mode 0600",
            )
        if st.st_mode & 0o077 and _kubelet_secret(st):
            others = _others_in_group(st.st_gid)
            if others:
                raise ConfigError(
                    f"{what} {path} is readable by group {st.st_gid}, which other users are in too "
                    f"({printable(', '.join(others))}); refusing it",
                    hint=f"give the pod an fsGroup of its own, or the {what} mode 0400",
                )
        elif st.st_mode & 0o077:
            raise ConfigError(
                f"{what} {path} is accessible by others (mode {stat.S_IMODE(st.st_mode):04o}); refusing it",
                hint=f"run: chmod 600 {quote_sh(str(path))}",
            )
        yield fd
    finally:
        os.close(fd)


def read_key_file(path: Path) -> str:
    """The key in `path`, a file `private_file` accepts: one line of at least MIN_KEY_LENGTH visible characters."""
    with private_file(path) as fd:
        try:
            data = os.read(fd, _MAX_KEY_FILE + 1)
        except OSError as err:
            raise ConfigError(f"cannot read key file {path}: {err.strerror or err}") from None
    if len(data) > _MAX_KEY_FILE:
        raise ConfigError(f"key file {path} is over {_MAX_KEY_FILE} bytes: not a key")
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"key file {path} is not UTF-8 text") from None
    if not key:
        raise ConfigError(f"key file {path} is empty")
    return check_key(key)


def fixed_key(key_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The key fixed by a key file, else by VERTEX_ENV_PROXY_KEY; None for a random key per run."""
    if key_file is not None:
        return read_key_file(key_file)
    key = environ.get(KEY_ENV) or None
    return check_key(key) if key is not None else None


def listen_error(host: str, port: int, err: OSError, flag: str = "--port") -> ConfigError:
    """The one-line error for a listening socket that could not be bound, with what to do about it: a port in
    use (`--port 0` takes any free one), an address not on this machine, a port below 1024 without root."""
    import errno

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    text = (
        f"cannot listen on {where}{'' if flag == '--port' else f' ({flag})'}: {err.strerror or err}"
    )
    hint = None
    if err.errno == errno.EADDRINUSE:
        hint = (
            f"another program has port {port}; pick another, or {flag} 0 for any free one"
            if flag == "--port"
            else f"another program has port {port}; pick another, or {flag} {host}:0 for any free one"
        )
    elif err.errno == errno.EADDRNOTAVAIL:
        hint = f"{host} is not an address of this machine (`ip -brief address` lists them)"
    elif err.errno == errno.EACCES and 0 < port < 1024:
        hint = f"ports below 1024 need privileges; pick one above 1023, or {flag} 0"
    return ConfigError(text, hint=hint)
