"""`vertex-env daemon`: the loop's fault handling (fake clock) and the real process against the emulator."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require_tool, wait_for
from dotenv import dotenv_values

from vertex_env.core import schedule
from vertex_env.core.source import Token
from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve
from vertex_env.errors import (
    AlreadyRunningError,
    InvalidGrantError,
    ReauthRequiredError,
    SinkError,
    TransientError,
    VertexEnvError,
)
from vertex_env.sinks.daemon import Daemon, DaemonLock, EnvironmentKeeper, lock_held
from vertex_env.sinks.status import daemon_status

VERTEX_ENV = str(Path(sys.executable).with_name("vertex-env"))


# --- the loop, with a fake clock ------------------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class ScriptedKeeper:
    """Mints 1-hour tokens, except when the next scripted outcome is an error."""

    clock: Clock
    outcomes: list[VertexEnvError | OSError] = field(default_factory=list)
    publish_errors: list[VertexEnvError] = field(default_factory=list)
    min_ttl: float = 300.0
    label: str = "test"
    cached: Token | None = None
    published: list[Token] = field(default_factory=list)
    mints: int = 0

    def fresh_token(self, due: Callable[[Token], bool]) -> Token:
        if self.cached is not None and not due(self.cached):
            return self.cached
        if self.outcomes:
            raise self.outcomes.pop(0)
        self.mints += 1
        now = self.clock.now
        self.cached = Token(f"ya29.tok{self.mints}", now + 3600, now, "me@example.com", "t", False)
        return self.cached

    def publish(self, token: Token) -> list[str]:
        if self.publish_errors:
            raise self.publish_errors.pop(0)
        self.published.append(token)
        return ["/tmp/.env"]


def make_daemon(keeper: ScriptedKeeper, **kwargs: object) -> tuple[Daemon, list[str]]:
    lines: list[str] = []
    daemon = Daemon(
        keeper,
        clock=keeper.clock,
        sleep=keeper.clock.sleep,
        rand=lambda: 0.5,
        log=lines.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return daemon, lines


def run_until(daemon: Daemon, clock: Clock, until: float) -> int | None:
    while clock.now < until:
        code = daemon.step()
        if code is not None:
            return code
    return None


def test_first_refresh_is_immediate_and_the_next_one_comes_before_the_margin() -> None:
    keeper = ScriptedKeeper(Clock())
    daemon, _lines = make_daemon(keeper)
    start = keeper.clock.now
    assert daemon.step() is None
    assert [t.value for t in keeper.published] == ["ya29.tok1"]
    # 3600 s token, 300 s margin: refresh 300 s ahead of the margin, less half the 30 s jitter window
    assert daemon.next_at == pytest.approx(start + 3600 - 300 - 300 - 15)
    run_until(daemon, keeper.clock, start + 3600)
    assert [t.value for t in keeper.published] == ["ya29.tok1", "ya29.tok2"]
    assert keeper.published[1].minted_at < keeper.published[0].expires_at - 300


def test_each_refresh_logs_one_line_with_principal_expiry_and_next_refresh_but_never_the_token() -> (
    None
):
    keeper = ScriptedKeeper(Clock())
    daemon, lines = make_daemon(keeper)
    daemon.step()
    assert len(lines) == 1
    assert "me@example.com" in lines[0]
    assert "expires" in lines[0] and "next refresh" in lines[0] and "/tmp/.env" in lines[0]
    assert "ya29" not in lines[0]


def test_transient_failures_are_retried_with_backoff_and_consumers_keep_the_last_good_token() -> (
    None
):
    clock = Clock()
    keeper = ScriptedKeeper(clock)
    daemon, lines = make_daemon(keeper)
    daemon.step()
    outages: list[VertexEnvError | OSError] = [TransientError("503")] * 5
    keeper.outcomes = [*outages, OSError("connection refused")]
    first = keeper.published[0]
    retry_times: list[float] = []
    while len(keeper.published) == 1:
        before = daemon.failures
        daemon.step()
        if daemon.failures > before:
            retry_times.append(clock.now)
    assert daemon.failures == 0
    assert len(retry_times) == 6
    gaps = [b - a for a, b in itertools.pairwise(retry_times)]
    assert gaps == sorted(gaps), "backoff grows"
    assert max(gaps) <= schedule.backoff_cap(300)
    assert keeper.published[1].expires_at > first.expires_at
    assert retry_times[-1] < first.expires_at - 300, "recovered before consumers saw a stale token"
    failures = [line for line in lines if "refresh failed" in line]
    assert len(failures) == 6 and all("keeping the current token" in line for line in failures)


def test_the_wake_up_lands_at_next_at_when_the_last_chunk_would_leave_a_tail_under_the_tolerance() -> (
    None
):
    # The refresh window opens 3 chunks and half a millisecond from now: chunked sleeps of MAX_SLEEP would wake
    # 0.5 ms early, inside TOLERANCE, and mint before the window opens.
    from vertex_env.sinks.daemon import MAX_SLEEP

    clock = Clock()
    keeper = ScriptedKeeper(clock)
    daemon, _lines = make_daemon(keeper)
    daemon.rand = lambda: 1.0  # the earliest edge of the jittered window
    daemon.step()
    first = keeper.published[0]
    opens = schedule.refresh_window(first.expires_at, 3600, 300)[0]
    assert daemon.next_at == pytest.approx(opens, abs=1e-9)
    clock.now = daemon.next_at - (3 * MAX_SLEEP + 0.0005)
    clock.sleeps.clear()
    while keeper.mints == 1:
        assert daemon.step() is None
    assert keeper.published[1].minted_at >= opens - 1e-6, "minted before the refresh window opened"
    assert clock.now == pytest.approx(opens, abs=1e-6)
    assert clock.sleeps[:2] == [MAX_SLEEP, MAX_SLEEP]
    assert clock.sleeps[2] == pytest.approx(MAX_SLEEP + 0.0005, abs=1e-6)
    assert len(clock.sleeps) == 3


@pytest.mark.parametrize("error", [InvalidGrantError("revoked"), ReauthRequiredError("reauth")])
def test_a_permanent_failure_stops_the_daemon_with_its_exit_code(error: VertexEnvError) -> None:
    clock = Clock()
    keeper = ScriptedKeeper(clock, outcomes=[error])
    daemon, lines = make_daemon(keeper)
    assert daemon.step() == error.exit_code
    assert lines == [f"error: {error}"]


def test_keep_going_retries_a_permanent_failure_reports_it_once_and_reloads_the_profile() -> None:
    clock = Clock()
    error = InvalidGrantError("the refresh token was revoked", hint="run gcloud auth login")
    keeper = ScriptedKeeper(clock, outcomes=[error] * 10)
    reloads: list[float] = []

    def reload() -> ScriptedKeeper:
        reloads.append(clock.now)
        return keeper

    daemon, lines = make_daemon(keeper, keep_going=True, reload=reload)
    while not keeper.published:
        assert daemon.step() is None
    assert [t.value for t in keeper.published] == ["ya29.tok1"]
    assert sum("refresh failed" in line for line in lines) == 1
    assert "run gcloud auth login" in lines[0]
    assert len(reloads) == 10, "a fresh `gcloud auth application-default login` is picked up"


def test_a_failed_file_write_is_retried_with_the_same_token() -> None:
    clock = Clock()
    keeper = ScriptedKeeper(clock, publish_errors=[SinkError("disk full")])
    daemon, _lines = make_daemon(keeper)
    assert daemon.step() is None
    assert keeper.published == [] and daemon.failures == 1
    run_until(daemon, clock, clock.now + 5)
    assert [t.value for t in keeper.published] == ["ya29.tok1"]
    assert keeper.mints == 1


def test_once_refreshes_and_exits_zero() -> None:
    keeper = ScriptedKeeper(Clock())
    daemon, _ = make_daemon(keeper, once=True)
    assert daemon.step() == 0
    assert len(keeper.published) == 1


def test_once_exits_with_the_transient_error_code() -> None:
    keeper = ScriptedKeeper(Clock(), outcomes=[TransientError("503")])
    daemon, _ = make_daemon(keeper, once=True)
    assert daemon.step() == TransientError.exit_code
    assert keeper.published == []


def test_a_stop_request_ends_the_loop_cleanly() -> None:
    keeper = ScriptedKeeper(Clock())
    daemon, _ = make_daemon(keeper)
    daemon.step()
    daemon.stop_requested = True
    assert daemon.run() == 0


def test_a_newer_token_from_the_cache_is_not_replaced_by_a_mint() -> None:
    clock = Clock()
    keeper = ScriptedKeeper(clock)
    keeper.cached = Token("ya29.other", clock.now + 3000, clock.now, "me@example.com", "t", True)
    daemon, lines = make_daemon(keeper)
    daemon.step()
    assert keeper.mints == 0 and keeper.published[0].value == "ya29.other"
    assert lines[0].startswith("cached token")


# --- lock and status ------------------------------------------------------------------------------------------


def test_the_lock_admits_one_daemon_per_cache_key(tmp_path: Path) -> None:
    first = DaemonLock(tmp_path, "abc")
    first.acquire()
    try:
        assert lock_held(first.path)
        with pytest.raises(AlreadyRunningError) as info:
            DaemonLock(tmp_path, "abc").acquire(patience=0)
        assert info.value.exit_code == 11
        DaemonLock(tmp_path, "other").acquire(patience=0)
    finally:
        first.release()
    assert not lock_held(first.path)
    assert (first.path.stat().st_mode & 0o777) == 0o600


# --- the real process against the emulator --------------------------------------------------------------------


class DaemonProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [VERTEX_ENV, "daemon", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def wait(self, timeout: float = 20) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def dotenv_token(path: Path) -> str | None:
    return dotenv_values(path).get("OPENAI_API_KEY") if path.exists() else None


@pytest.mark.slow
def test_daemon_rotates_the_dotenv_file_before_the_short_lived_token_expires(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    emu.admin.configure(expires_in=6)
    target = isolated_machine / "app" / ".env"
    target.parent.mkdir()
    target.write_text("# mine\nOTHER=1\n")
    daemon = DaemonProcess("--write", str(target))
    try:
        wait_for(lambda: dotenv_token(target), what="the first write")
        seen = [dotenv_token(target)]
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            values = dotenv_values(target)
            remaining = int(values["VERTEX_ENV_EXPIRES_AT"] or 0) - time.time()
            assert remaining > 1, "a consumer read a token about to expire"
            if values["OPENAI_API_KEY"] != seen[-1]:
                seen.append(values["OPENAI_API_KEY"])
            time.sleep(0.05)
        assert len(seen) == 3, "two rotations of a 6 s token within 10 s"
        text = target.read_text()
        assert text.startswith("# mine\nOTHER=1\n")
        assert "OPENAI_BASE_URL=" in text
    finally:
        code, err = daemon.stop()
    assert code == 0
    assert "ya29" not in err
    assert err.count("minted token") >= 2 and "stopped" in err


@pytest.mark.slow
def test_a_fifo_target_never_blocks_the_daemon_which_keeps_refreshing_its_other_targets(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    """A FIFO planted as a target used to block the daemon forever (no refresh, SIGTERM ignored): it is
    refused at once each time, the other target rotates, and SIGTERM stops the daemon promptly."""
    emu.admin.configure(expires_in=6)
    fifo = isolated_machine / "fifo.env"
    os.mkfifo(fifo, 0o600)
    target = isolated_machine / "app.env"
    daemon = DaemonProcess("--write", str(fifo), "--write", str(target))
    try:
        wait_for(lambda: dotenv_token(target), what="the first write")
        seen = [dotenv_token(target)]
        deadline = time.monotonic() + 12
        while len(seen) < 3 and time.monotonic() < deadline:
            token = dotenv_token(target)
            if token != seen[-1]:
                seen.append(token)
            time.sleep(0.05)
        assert len(seen) == 3, "two rotations of a 6 s token beside a FIFO target"
        stopped = time.monotonic()
        code, err = daemon.stop(timeout=10)
        assert time.monotonic() - stopped < 5
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.communicate()
    assert code == 0, err
    assert f"refusing dotenv file {fifo}: it is a FIFO, not a regular file" in err
    assert "ya29" not in err


@pytest.mark.slow
def test_daemon_survives_a_queue_of_transient_faults(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    target = isolated_machine / ".env"
    # refused/closed connections, then server errors: every attempt until these run out fails
    emu.admin.faults(
        [
            {"target": "token", "close": True, "count": 3},
            {"target": "token", "status": 503, "count": 3},
        ]
    )
    daemon = DaemonProcess("--write", str(target))
    try:
        wait_for(lambda: dotenv_token(target), timeout=30, what="recovery after the faults")
        assert emu.admin.stats()["faults_pending"] == []
    finally:
        code, err = daemon.stop()
    assert code == 0
    assert err.count("refresh failed") >= 2, err
    assert "retrying in" in err and "no valid token to serve" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("error", "code", "advice"),
    [
        ("invalid_grant", 7, "gcloud auth application-default login"),
        ("invalid_rapt", 6, "gcloud auth application-default login"),
    ],
)
def test_daemon_exits_with_a_clear_message_on_a_permanent_failure(
    emu: EmulatorServer, isolated_machine: Path, error: str, code: int, advice: str
) -> None:
    emu.admin.fault("token", error=error, count=5)
    daemon = DaemonProcess("--write", str(isolated_machine / ".env"))
    returncode, err = daemon.wait()
    assert returncode == code
    assert advice in err
    assert err.count("error:") == 1
    env = resolve()
    status = daemon_status(env)
    assert status["running"] is False
    assert error.replace("_", "") in status["summary"].replace("_", "")


@pytest.mark.slow
def test_a_second_daemon_for_the_same_profile_exits_with_code_11(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    first = DaemonProcess()
    try:
        # Running and its state written: between taking the lock and writing its pid, a second daemon could only
        # say "already running" without the pid (a race a loaded machine hit on Python 3.10).
        wait_for(
            lambda: (
                daemon_status(resolve())["pid"] == first.proc.pid
                and daemon_status(resolve())["running"]
            ),
            what="the first daemon and its state file",
        )
        second = DaemonProcess()
        code, err = second.wait()
        assert code == 11
        assert "already running" in err and f"pid {first.proc.pid}" in err
    finally:
        first.stop()


@pytest.mark.slow
def test_status_reports_the_running_daemon(emu: EmulatorServer) -> None:
    daemon = DaemonProcess()
    try:
        wait_for(lambda: daemon_status(resolve()).get("last_refresh"), what="a refresh")
        out = subprocess.run(
            [VERTEX_ENV, "status", "--json"], capture_output=True, text=True, env=os.environ.copy()
        )
        report = json.loads(out.stdout)
        assert report["daemon"]["running"] is True
        assert f"running (pid {daemon.proc.pid})" in report["daemon"]["summary"]
        assert "next" in report["daemon"]["summary"]
    finally:
        code, _ = daemon.stop(signal.SIGINT)
    assert code == 0
    assert daemon_status(resolve())["running"] is False


@pytest.mark.slow
def test_sighup_reloads_the_profile(emu: EmulatorServer, isolated_machine: Path) -> None:
    config = isolated_machine / ".config" / "vertex-env" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    first, second = isolated_machine / "one.env", isolated_machine / "two.env"
    config.write_text(f'[profiles.default]\nwrite = ["{first}"]\n')
    daemon = DaemonProcess()
    try:
        wait_for(lambda: dotenv_token(first), what="the profile's first target")
        config.write_text(f'[profiles.default]\nwrite = ["{second}"]\n')
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: dotenv_token(second), what="the reloaded target")
        assert daemon.proc.poll() is None
    finally:
        code, err = daemon.stop()
    assert code == 0 and "reloaded profile default" in err


@pytest.mark.slow
def test_once_tightens_a_0644_target_and_logs_it(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    target = isolated_machine / ".env"
    target.write_text("DEBUG=1\n")
    target.chmod(0o644)
    result = subprocess.run(
        [VERTEX_ENV, "daemon", "--once", "--write", str(target)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (target.stat().st_mode & 0o777) == 0o600
    assert result.stderr.count("was mode 0644, readable by others") == 1


@pytest.mark.slow
def test_once_writes_the_targets_and_exits(emu: EmulatorServer, isolated_machine: Path) -> None:
    target = isolated_machine / ".env"
    result = subprocess.run(
        [VERTEX_ENV, "daemon", "--once", "--write", str(target), "--google"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    values = dotenv_values(target)
    assert values["GOOGLE_CLOUD_PROJECT"] == "test-project"
    assert int(values["VERTEX_ENV_EXPIRES_AT"] or 0) > time.time() + 3000
    assert (target.stat().st_mode & 0o777) == 0o600
    assert result.stdout == ""


def two_profiles(isolated_machine: Path) -> Path:
    """`prod` and `dev` in the config file, both on the one ADC login the emulator fixture set up."""
    config = isolated_machine / ".config" / "vertex-env" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        '[profiles.prod]\nlocation = "us-east1"\n[profiles.dev]\nlocation = "europe-west4"\n'
    )
    return config


def status_json(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [VERTEX_ENV, "status", "--json", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=30,
    )
    report: dict[str, object] = json.loads(out.stdout)
    return report


@pytest.mark.slow
def test_one_login_runs_a_daemon_per_profile_and_shares_its_refreshes(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    two_profiles(isolated_machine)
    prod_env, dev_env = isolated_machine / "p.env", isolated_machine / "d2.env"
    prod = DaemonProcess("--profile", "prod", "--write", str(prod_env))
    try:
        wait_for(lambda: dotenv_token(prod_env), what="prod's first write")
        assert daemon_status(resolve("dev"))["running"] is False, "status is per profile"
        dev = DaemonProcess("--profile", "dev", "--write", str(dev_env))
        try:
            wait_for(lambda: dotenv_token(dev_env), what="dev's first write")
            assert dev.proc.poll() is None and prod.proc.poll() is None
            assert (
                dotenv_values(dev_env)["OPENAI_BASE_URL"]
                != dotenv_values(prod_env)["OPENAI_BASE_URL"]
            )
            assert emu.admin.stats()["tokens_issued"] == 1, "one login, one refresh for both"
            for name, process in (("prod", prod), ("dev", dev)):
                daemon = status_json("--profile", name)["daemon"]
                assert isinstance(daemon, dict) and daemon["running"] is True
                assert f"running (pid {process.proc.pid})" in daemon["summary"]
            again = DaemonProcess("--profile", "dev")
            code, err = again.wait()
            assert code == 11
            assert "already running for profile dev" in err and f"pid {dev.proc.pid}" in err
        finally:
            code, _ = dev.stop()
        assert code == 0
        assert daemon_status(resolve("dev"))["running"] is False
        assert daemon_status(resolve("prod"))["running"] is True
    finally:
        code, _ = prod.stop()
    assert code == 0


def unwritable_target(kind: str, root: Path) -> Path:
    if kind == "missing folder":
        return root / "no-such-folder" / ".env"
    if kind == "folder is a file":
        (root / "plain").write_text("x\n")
        return root / "plain" / ".env"
    (root / "a-folder").mkdir()
    return root / "a-folder"


@pytest.mark.parametrize(
    ("via", "kind"),
    [
        ("--write", "missing folder"),
        ("--write", "folder is a file"),
        ("profile", "missing folder"),
        ("profile", "folder is a file"),
        (
            "profile",
            "target is a folder",
        ),  # `--write FOLDER` is refused by click's own check (exit 2)
    ],
)
def test_a_target_that_can_never_be_written_exits_9_at_start_with_one_line(
    emu: EmulatorServer, isolated_machine: Path, kind: str, via: str
) -> None:
    target = unwritable_target(kind, isolated_machine)
    args = ["--write", str(target)]
    if via == "profile":
        config = isolated_machine / ".config" / "vertex-env" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[profiles.default]\nwrite = ["{target}"]\n')
        args = []
    result = subprocess.run(
        [VERTEX_ENV, "daemon", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=20,
    )
    assert result.returncode == 9, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0], result.stderr
    assert emu.admin.stats()["tokens_issued"] == 0, "refused before asking Google"
    assert not target.is_file(), "nothing created"


def test_relative_profile_write_paths_resolve_against_the_config_files_folder(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    config = isolated_machine / ".config" / "vertex-env" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[profiles.default]\nwrite = ["rel.env", "../other.env"]\n')
    elsewhere = isolated_machine / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [VERTEX_ENV, "daemon", "--once"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=elsewhere,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert dotenv_token(config.parent / "rel.env")
    assert dotenv_token(config.parent.parent / "other.env")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_no_cache_says_what_it_keeps_fresh_and_refuses_to_keep_nothing(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    nothing = subprocess.run(
        [VERTEX_ENV, "daemon", "--no-cache"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=20,
    )
    assert nothing.returncode == 2
    assert "nothing to keep fresh" in nothing.stderr and "token cache only" not in nothing.stderr
    target = isolated_machine / ".env"
    daemon = DaemonProcess("--no-cache", "--write", str(target))
    try:
        wait_for(lambda: dotenv_token(target), what="the first write")
    finally:
        code, err = daemon.stop()
    assert code == 0
    assert f"keeping fresh: {target} (not the token cache: --no-cache)" in err
    assert not list(Path(os.environ["XDG_RUNTIME_DIR"]).glob("vertex-env/token-*.json"))


@pytest.mark.slow
def test_the_start_line_names_the_token_cache_and_every_target(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    target = isolated_machine / ".env"
    daemon = DaemonProcess("--write", str(target))
    try:
        wait_for(lambda: dotenv_token(target), what="the first write")
    finally:
        code, err = daemon.stop()
    assert code == 0
    assert f"keeping fresh: the token cache, {target}" in err


@dataclass
class TalkativeKeeper(ScriptedKeeper):
    """A keeper of the user's own, holding secrets in fields its dataclass repr would show."""

    client_secret: str = "GOCSPX-client-secret-value"
    refresh_token: str = "1//refresh-token-value"


def test_repr_of_the_daemon_shows_no_token_secret_error_text_nor_environ(
    emu: EmulatorServer, isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = TalkativeKeeper(Clock())
    daemon, _ = make_daemon(keeper)
    daemon.step()
    keeper.cached, keeper.outcomes = None, [TransientError("echoed client_secret=GOCSPX-x")]
    daemon.next_at = keeper.clock.now
    daemon.step()
    assert daemon.last_error is not None and daemon.token is not None
    shown = repr(daemon)
    for secret in (keeper.client_secret, keeper.refresh_token, daemon.token.value, "GOCSPX-x"):
        assert secret not in shown
    assert "profile='test'" in shown and "TransientError" in shown

    monkeypatch.setenv("MY_DATABASE_PASSWORD", "hunter2-password")
    env = resolve()
    real = Daemon(EnvironmentKeeper(env, (isolated_machine / ".env",)), log=lambda _line: None)
    assert real.attempt() is None and real.token is not None
    shown = repr(real) + repr(real.keeper)
    adc = json.loads(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    for secret in (
        real.token.value,
        adc["refresh_token"],
        adc["client_secret"],
        "hunter2-password",
    ):
        assert secret not in shown
    assert str(isolated_machine / ".env") in repr(real.keeper)


def test_a_target_in_a_folder_this_user_cannot_write_exits_9_at_start(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    setpriv = require_tool("setpriv")
    drop = "-dac_override,-dac_read_search"  # root without these: file modes hold, as for a user
    folder = isolated_machine / "read-only"
    folder.mkdir(mode=0o555)
    target = folder / ".env"
    result = subprocess.run(
        [
            setpriv,
            f"--bounding-set={drop}",
            f"--inh-caps={drop}",
            VERTEX_ENV,
            "daemon",
            "--write",
            str(target),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=20,
    )
    assert result.returncode == 9, result.stderr
    assert (
        result.stderr.count("\n") == 1 and f"its folder {folder} is not writable" in result.stderr
    )
    assert list(folder.iterdir()) == []
