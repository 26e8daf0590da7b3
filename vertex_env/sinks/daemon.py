"""The daemon: keeps the token cache and dotenv files fresh ahead of expiry, one process per profile.

The loop is a small state machine (`Daemon`) over three seams — a `Keeper` (where tokens come from and where
they go), a clock and a sleep — so tests drive it with a fake clock through 24 simulated hours. The real
Keeper (`EnvironmentKeeper`) takes tokens from the one TokenSource and writes dotenv files with write_dotenv.
When to refresh is decided by vertex_env.core.schedule, a pure function.

Files, next to the token cache (0700 directory): `daemon-<digest>.lock` (an flock held while the daemon runs)
and `daemon-<digest>.json` (pid, last and next refresh, last error; 0600, written atomically) for `status`.
The digest names the profile (config file and profile name), not the credential: two profiles on one gcloud
login run a daemon each, and their refreshes are still shared through the token cache's lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from vertex_env.config.file import config_path
from vertex_env.config.values import format_duration
from vertex_env.core import schedule
from vertex_env.core.cache import ensure_private_dir, key_digest
from vertex_env.core.source import Token
from vertex_env.environment import Environment
from vertex_env.errors import (
    AlreadyRunningError,
    LockTimeoutError,
    SinkError,
    TransientError,
    VertexEnvError,
)
from vertex_env.system import files
from vertex_env.system.hardening import disable_core_dumps

log = logging.getLogger(__name__)

#: The longest single sleep: the wall clock is re-read at least this often (suspend, clock changes).
MAX_SLEEP = 30.0
#: How long a starting daemon retries the lock (a `status` probe holds it for a microsecond).
LOCK_PATIENCE = 1.0


class Keeper(Protocol):
    """Where the daemon's tokens come from and where they go."""

    @property
    def min_ttl(self) -> float: ...

    @property
    def label(self) -> str: ...

    def fresh_token(self, due: Callable[[Token], bool]) -> Token:
        """The shared cached token unless `due(token)` says to replace it; then a newly minted one."""
        ...

    def publish(self, token: Token) -> list[str]:
        """Write the token to every target; the targets written. Raises SinkError if one failed."""
        ...


@dataclass
class EnvironmentKeeper:
    """The real Keeper: the profile's TokenSource, and dotenv files written with write_dotenv."""

    env: Environment
    targets: tuple[Path, ...] = ()
    google: bool = False
    legacy: bool = False

    def __repr__(
        self,
    ) -> str:  # the Environment's repr is already redacted; never the token source's
        return f"EnvironmentKeeper({self.env!r}, targets={[str(t) for t in self.targets]})"

    @property
    def min_ttl(self) -> float:
        return float(self.env.profile.min_ttl)

    @property
    def label(self) -> str:
        return self.env.profile.name or "default"

    @property
    def digest(self) -> str:
        return daemon_digest(self.env)

    @property
    def directory(self) -> Path:
        return self.env.token_source.cache.directory

    def fresh_token(self, due: Callable[[Token], bool]) -> Token:
        return self.env.token_source.refresh(due)

    def describe(self) -> str:
        """What this daemon keeps fresh, for its start line."""
        targets = [str(t) for t in self.targets]
        if not self.env.token_source.use_cache:
            return f"{', '.join(targets)} (not the token cache: --no-cache)"
        return ", ".join(["the token cache", *targets])

    def publish(self, token: Token) -> list[str]:
        if not self.targets:
            return []
        from vertex_env.sinks.dotenv_file import tightened_notice, update_dotenv

        variables = self.env.variables(token, google=self.google, legacy=self.legacy)
        written: list[str] = []
        failed: list[str] = []
        for target in self.targets:
            try:
                result = update_dotenv(target, variables)
                written.append(
                    str(result.path)
                    if result.tightened_from is None
                    else f"{result.path} ({tightened_notice(result)})"
                )
            except (OSError, VertexEnvError) as err:
                failed.append(f"{target}: {err}")
        if failed:
            raise SinkError(f"could not write {'; '.join(failed)}")
        return written


def resolve_targets(paths: Sequence[str], base: Path | None = None) -> tuple[Path, ...]:
    """Absolute target paths (relative ones against `base`, default the working directory; `~` expanded)."""
    root = base or Path.cwd()
    result: list[Path] = []
    for raw in paths:
        path = Path(os.path.expandvars(raw)).expanduser()
        path = path if path.is_absolute() else root / path
        if path not in result:
            result.append(path)
    return tuple(result)


def profile_targets(env: Environment) -> tuple[Path, ...]:
    """The profile's `write = [...]` list; a relative path is relative to the config file's folder (the
    daemon's working directory is `/` under systemd)."""
    return resolve_targets(env.profile.write, base=config_path(env.environ).parent)


def check_targets(targets: Sequence[Path]) -> tuple[Path, ...]:
    """The targets, if each can be written; else SinkError at start (the daemon would retry it forever)."""
    for target in targets:
        folder = target.parent
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise SinkError(
                f"cannot keep {target} fresh: its folder {folder} {what}",
                hint="create the folder or fix the path",
            )
        if target.is_dir():
            raise SinkError(f"cannot keep {target} fresh: it is a folder, not a dotenv file")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SinkError(
                f"cannot keep {target} fresh: its folder {folder} is not writable by this user"
            )
    return tuple(targets)


# --- the one-per-profile lock and the state file ---------------------------------------------------------


def daemon_digest(env: Environment) -> str:
    """What one daemon is unique for: the profile (config file and name; no profile at all is `default`).
    Not the credential: profiles sharing a login each get a daemon and share its refreshes via the cache lock."""
    name = env.profile.name or "default"
    return key_digest(f"daemon\0{config_path(env.environ)}\0{name}")


def lock_path(directory: Path, digest: str) -> Path:
    return directory / f"daemon-{digest}.lock"


def state_path(directory: Path, digest: str) -> Path:
    return directory / f"daemon-{digest}.json"


class DaemonLock:
    """An exclusive flock on `daemon-<digest>.lock`, held for the daemon's life (released by the kernel on exit)."""

    def __init__(self, directory: Path, digest: str, label: str = "this profile") -> None:
        self.directory = directory
        self.digest = digest
        self.label = label
        self.path = lock_path(directory, digest)
        self._fd: int | None = None

    def acquire(self, patience: float = LOCK_PATIENCE) -> None:
        try:
            ensure_private_dir(self.directory)
        except OSError as err:
            raise SinkError(
                f"cannot use the cache directory {self.directory}: {err.strerror or err}",
                hint="the daemon keeps its lock and state there; fix or remove it",
            ) from None
        try:
            self._fd = files.acquire(self.path, patience, what="the daemon lock")
        except LockTimeoutError:
            state = read_state(state_path(self.directory, self.digest)) or {}
            pid = state.get("pid")
            raise AlreadyRunningError(
                f"a daemon is already running for {self.label}" + (f" (pid {pid})" if pid else ""),
                hint="see `vertex-env status`; stop that one first to start another",
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            files.release(self._fd)
            self._fd = None


def lock_held(path: Path) -> bool:
    """Whether some process holds the daemon lock (a non-blocking shared lock attempt fails)."""
    return files.is_locked(path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state file, if it is a private file of ours (a file another user planted is never believed)."""
    data = files.read_private(path)
    if data is None:
        return None
    try:
        state = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, state: dict[str, Any]) -> None:
    ensure_private_dir(path.parent)
    files.atomic_write(path, json.dumps(state, indent=2).encode(), mode=0o600)


# --- the loop ----------------------------------------------------------------------------------------------


def clock_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def log_line(line: str) -> None:
    """One line of the daemon's log (on stderr through the CLI's handler), with the time: launchd's log file
    has no timestamps of its own."""
    log.info(line, extra={"speaker": f"{clock_text(time.time())} vertex-env daemon"})


def _permanent(err: BaseException) -> bool:
    return isinstance(err, VertexEnvError) and not isinstance(err, TransientError | SinkError)


@dataclass
class Daemon:
    """Refresh ahead of expiry; retry transient failures with backoff; stop on a permanent one.

    `clock`, `sleep` and `rand` are seams: the real ones are time.time, an interruptible sleep and
    random.random. `reload` re-resolves the profile (SIGHUP, and before retrying a permanent failure with
    keep_going, so that a fresh `gcloud auth application-default login` is picked up).
    """

    keeper: Keeper
    once: bool = False
    keep_going: bool = False
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    log: Callable[[str], None] = log_line
    reload: Callable[[], Keeper] | None = None
    on_state: Callable[[dict[str, Any]], None] | None = None
    token: Token | None = None
    published: Token | None = None
    failures: int = 0
    next_at: float = 0.0
    last_refresh: float | None = None
    last_error: VertexEnvError | None = None
    reported: str | None = None
    stop_requested: bool = False
    reload_requested: bool = False
    started_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started_at = self.next_at = self.clock()

    def __repr__(
        self,
    ) -> str:  # never the keeper's insides (tokens, credentials, environ) nor error text
        token = self.token
        held = "none" if token is None else f"expires_at={token.expires_at:.0f}"
        error = None if self.last_error is None else type(self.last_error).__name__
        return (
            f"Daemon(profile={self.keeper.label!r}, token=({held}), failures={self.failures}, "
            f"next_at={self.next_at:.0f}, last_error={error})"
        )

    # what the schedule needs about the token held now
    def margin(self, token: Token | None = None) -> float:
        token = token or self.token
        if token is None:
            return self.keeper.min_ttl
        return token.margin(self.keeper.min_ttl)

    def due(self, token: Token) -> bool:
        return schedule.due(self.clock(), token.expires_at, token.lifetime, self.margin(token))

    def _schedule(self, now: float) -> None:
        token = self.token
        self.next_at = schedule.next_refresh(
            now,
            None if token is None else token.expires_at,
            0.0 if token is None else token.lifetime,
            self.margin(),
            self.failures,
            self.rand(),
        )
        if token is not None and not self.failures and self.next_at <= now and self.due(token):
            # The source handed back a token already due (a metadata server refreshes its own only when
            # minutes remain): ask again after a backoff cap instead of at once, in a loop.
            self.next_at = now + schedule.backoff_cap(self.margin())

    def attempt(self) -> VertexEnvError | None:
        """One refresh: get a token, write the targets. Returns the permanent error to exit with, if any."""
        try:
            token = self.keeper.fresh_token(self.due)
        except (VertexEnvError, OSError) as err:
            return self._failed(err)
        now = self.clock()
        held = self.token
        # Consumers never get a worse token: a new one replaces the held one only if it expires later, or if
        # the held one is due (a token with random lifetimes may expire sooner, yet it is not due).
        if held is None or token.expires_at >= held.expires_at or self.due(held):
            self.token = held = token
        try:
            if self.published is None or held.value != self.published.value:
                written = self.keeper.publish(held)
                self.published = held
            else:
                written = []
        except (VertexEnvError, OSError) as err:
            return self._failed(err)
        self.failures = 0
        self.last_error = None
        self.reported = None
        self.last_refresh = now
        self._schedule(now)
        origin = "cached" if held.from_cache else "minted"
        self.log(
            f"{origin} token for {held.principal or 'unknown principal'} ({self.keeper.label}), "
            f"expires {clock_text(held.expires_at)} (in {format_duration(held.expires_at - now)}); "
            f"next refresh {clock_text(self.next_at)}"
            + (f"; wrote {', '.join(written)}" if written else "")
        )
        return None

    def _failed(self, err: BaseException) -> VertexEnvError | None:
        now = self.clock()
        error = err if isinstance(err, VertexEnvError) else TransientError(f"{err}")
        self.last_error = error
        self.failures += 1
        self._schedule(now)
        holding = (
            f"keeping the current token (expires in {format_duration(self.token.expires_at - now)})"
            if self.token is not None and self.token.expires_at > now
            else "no valid token to serve"
        )
        if not _permanent(error):
            self.log(
                f"refresh failed: {error}; retrying in {format_duration(self.next_at - now)}; {holding}"
            )
            return None
        if not self.keep_going:
            return error
        if self.reported != str(error):  # a permanent failure is reported once, not at every retry
            self.reported = str(error)
            self.log(
                f"refresh failed: {error}; --keep-going: retrying every {format_duration(self.next_at - now)} "
                f"until it is fixed; {holding}"
            )
        if self.reload is not None:
            self.reload_requested = True
        return None

    def do_reload(self) -> None:
        self.reload_requested = False
        if self.reload is None:
            return
        try:
            self.keeper = self.reload()
        except VertexEnvError as err:
            self.log(f"reload failed: {err}; keeping the previous configuration")
            return
        # a new configuration may mean another credential: its token is not comparable with the old one
        self.token = None
        self.published = None
        self.next_at = self.clock()  # refresh now under the new configuration

    def state(self) -> dict[str, Any]:
        token = self.token
        return {
            "pid": os.getpid(),
            "profile": self.keeper.label,
            "started_at": self.started_at,
            "last_refresh": self.last_refresh,
            "next_refresh": self.next_at,
            "expires_at": None if token is None else token.expires_at,
            "principal": None if token is None else token.principal,
            "failures": self.failures,
            "last_error": None if self.last_error is None else str(self.last_error),
            "exit_code": None,
        }

    def _publish_state(self, **extra: Any) -> None:
        if self.on_state is not None:
            try:
                self.on_state({**self.state(), **extra})
            except OSError as err:
                self.log(f"could not write the state file: {err}")

    def step(self) -> int | None:
        """One turn of the loop: attempt when due, else sleep. An exit code when the daemon should stop."""
        if self.stop_requested:
            return 0
        if self.reload_requested:
            self.do_reload()
        now = self.clock()
        if now + schedule.TOLERANCE < self.next_at:
            left = self.next_at - now
            # The whole remainder when it is at most a chunk (+ tolerance): a last chunk of MAX_SLEEP would leave
            # a tail under TOLERANCE, which counts as due and would attempt up to 1 ms before next_at.
            self.sleep(left if left <= MAX_SLEEP + schedule.TOLERANCE else MAX_SLEEP)
            return None
        error = self.attempt()
        if error is not None:
            self.log(f"error: {error}")
            self._publish_state(exit_code=error.exit_code)
            return error.exit_code
        self._publish_state()
        if self.once:
            return self.last_error.exit_code if self.last_error is not None else 0
        return None

    def run(self) -> int:
        while True:
            code = self.step()
            if code is not None:
                return code


# --- the real process: signals, interruptible sleep -----------------------------------------------------------


class SignalSleep:
    """A sleep that a signal ends early (self-pipe via signal.set_wakeup_fd), so SIGTERM exits at once."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def __call__(self, seconds: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._read], [], [], max(seconds, 0.0))
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 512):
                pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self._read)
        os.close(self._write)


@contextlib.contextmanager
def signal_handlers(daemon: Daemon) -> Iterator[None]:
    """SIGTERM/SIGINT: stop cleanly (exit 0). SIGHUP: re-resolve the profile and keep running."""

    def stop(signum: int, frame: FrameType | None) -> None:
        daemon.stop_requested = True

    def hangup(signum: int, frame: FrameType | None) -> None:
        daemon.reload_requested = True

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, stop),
        signal.SIGINT: signal.signal(signal.SIGINT, stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, hangup),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(
    make_keeper: Callable[[], EnvironmentKeeper],
    *,
    once: bool = False,
    keep_going: bool = False,
    log: Callable[[str], None] = log_line,
) -> int:
    """Run the daemon in this process until a signal, a permanent failure, or (with once) one refresh."""
    disable_core_dumps()  # a long-lived holder of tokens: no core file with one in it
    keeper = make_keeper()
    lock = DaemonLock(keeper.directory, keeper.digest, f"profile {keeper.label}")
    lock.acquire()
    holder = {"lock": lock}

    def reload() -> Keeper:
        new = make_keeper()
        current = holder["lock"]
        # another profile (default_profile changed) or cache directory: served under its own lock
        if new.digest != current.digest:
            new_lock = DaemonLock(new.directory, new.digest, f"profile {new.label}")
            try:
                new_lock.acquire(patience=0)
            except AlreadyRunningError as err:
                raise AlreadyRunningError(
                    f"the reloaded profile is served by another daemon ({err.message})"
                ) from None
            current.release()
            with contextlib.suppress(FileNotFoundError):
                state_path(current.directory, current.digest).unlink()
            holder["lock"] = new_lock
        log(f"reloaded profile {new.label}")
        return new

    def on_state(state: dict[str, Any]) -> None:
        current = holder["lock"]
        write_state(state_path(current.directory, current.digest), state)

    sleeper = SignalSleep()
    daemon = Daemon(
        keeper,
        once=once,
        keep_going=keep_going,
        sleep=sleeper,
        log=log,
        reload=reload,
        on_state=on_state,
    )
    if not once:
        log(
            f"started (pid {os.getpid()}) for profile {keeper.label}; keeping fresh: {keeper.describe()}"
        )
    code = 1
    try:
        with signal_handlers(daemon):
            code = daemon.run()
    finally:
        sleeper.close()
        current = holder["lock"]
        if code == 0 and not once:
            log("stopped")
            with contextlib.suppress(FileNotFoundError):
                state_path(current.directory, current.digest).unlink()
        current.release()
    return code
