"""Token-core and start-up benchmarks, measured side by side in one run (ratios, not absolute timings).

Everything runs in a temporary venv holding a regular (non-editable) `pip install` of this checkout, the way
users install it: a development venv's editable finder slows every interpreter start and flatters ratios.

- bare interpreter start (`python -c pass`)                                   the unit
- warm `vertex-env token` and `export` (cached token, no click) ÷ bare        target ≤ 3×
- the same `export` through the click CLI ÷ bare                              (what the warm path saves)
- `gcloud auth print-access-token` (cached) ÷ warm `token`                    target ≥ 15×, when gcloud is installed
- cold `export` (one mint against the emulator) ÷ a bare google-auth script  target ≤ 1.3×
- no credentials anywhere → error                                            target < 1 s
- 32 concurrent cold `export`s → token requests seen by the emulator         target exactly 1
- `bash -i -c exit` with each documented hook form ÷ without, and the processes it starts (strace)
                                                                              target: none spawned

Run: python bench/bench_core.py [--rounds N] [--venv DIR (reuse a venv, rebuilt when missing)]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vertex_env.emulator import EmulatorServer, write_service_account

ROOT = Path(__file__).resolve().parent.parent
BARE_GOOGLE_AUTH = """
import google.auth, google.auth.transport.requests
creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
creds.refresh(google.auth.transport.requests.Request())
print(creds.token)
"""
CLICK_ONLY = "import sys; from vertex_env.cli.group import main; sys.exit(main())"

Row = tuple[str, str, str, str]


def regular_install(venv: Path) -> Path:
    """A venv with `pip install <copy of this checkout>` (not editable); returns its bin directory."""
    bin_dir = venv / "bin"
    if (bin_dir / "vertex-env").exists():
        return bin_dir
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A copy, so that the build leaves no build/ or egg-info in the checkout.
        src = Path(tmp) / "src"
        shutil.copytree(
            ROOT,
            src,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".tox"
            ),
        )
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(src)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    return bin_dir


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 4):
        raise SystemExit(f"{command} failed: {result.stderr.decode()}")
    return elapsed


def medians(
    commands: list[tuple[list[str], dict[str, str] | Callable[[], dict[str, str]]]], rounds: int
) -> list[float]:
    """Run the commands in turn, round after round, so all see the same machine load; their medians."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(rounds):
        for i, (command, env) in enumerate(commands):
            times[i].append(timed(command, env() if callable(env) else env))
    return [statistics.median(t) for t in times]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ratio: float, target: float, at_most: bool = True) -> str:
    met = ratio <= target if at_most else ratio >= target
    sign = "≤" if at_most else "≥"
    return f"{ratio:.2f}× (target {sign} {target:g}×: {'met' if met else 'NOT met'})"


def gcloud_setup(
    gcloud: str, base: dict[str, str], home: Path, sa: Path, emu_url: str
) -> dict[str, str]:
    """An isolated gcloud config that holds the service account and mints against the emulator."""
    env = dict(base, CLOUDSDK_CONFIG=str(home / "gcloud-bench"))
    for args in (
        ["config", "set", "component_manager/disable_update_check", "true"],
        ["config", "set", "core/disable_usage_reporting", "true"],
        ["config", "set", "auth/token_host", f"{emu_url}/token"],
        ["auth", "activate-service-account", "--key-file", str(sa)],
        [
            "auth",
            "print-access-token",
        ],  # mints once; every later call is served from gcloud's cache
    ):
        subprocess.run([gcloud, *args], env=env, check=True, capture_output=True, timeout=120)
    return env


def shell_startup_rows(bin_dir: Path, base: dict[str, str], home: Path, rounds: int) -> list[Row]:
    """`bash -i -c exit` with each hook form in ~/.bashrc ÷ without; processes it starts, counted by strace."""
    bash = shutil.which("bash")
    if bash is None:
        return [("bash -i -c exit", "bash not installed", "", "")]
    exe = bin_dir / "vertex-env"
    env = dict(base, PATH=f"{bin_dir}:{base.get('PATH', '')}", HOME=str(home))
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    installed = subprocess.run(
        [str(exe), "hook", "bash", "--install"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    forms = {
        "no hook": "",
        "installed hook (. file)": installed,
        'eval "$(vertex-env hook bash)"': 'eval "$(vertex-env hook bash)"',
    }
    rc = home / ".bashrc"
    strace = shutil.which("strace")
    command = [bash, "-i", "-c", "exit"]
    rows: list[Row] = []
    times: dict[str, float] = {}
    for name, line in forms.items():
        rc.write_text(line + "\n")
        (times[name],) = medians([(command, env)], rounds)
        spawned = "strace not installed"
        if strace:
            log = home / "strace.log"
            subprocess.run(
                [strace, "-f", "-qq", "-e", "trace=execve", "-o", str(log), *command],
                env=env,
                capture_output=True,
                check=False,
            )
            execs = [ln for ln in log.read_text().splitlines() if "execve(" in ln][1:]
            programs = sorted({ln.split('execve("', 1)[1].split('"', 1)[0] for ln in execs})
            spawned = f"{len(execs)} process{'es' * (len(execs) != 1)}"
            spawned += f" ({', '.join(programs)})" if programs else ""
        ratio = times[name] / times["no hook"]
        rows.append((f"bash -i -c exit, {name}", ms(times[name]), spawned, f"{ratio:.2f}× no hook"))
    rc.unlink()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--venv", type=Path, default=None)
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, EmulatorServer() as emu:
        bin_dir = regular_install(args.venv or Path(tmp) / "venv")
        python, vertex_env = str(bin_dir / "python"), str(bin_dir / "vertex-env")
        home = Path(tmp) / "home"
        home.mkdir()
        sa = write_service_account(Path(tmp) / "sa.json", emu.url, register_with=emu.state)
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_", "VERTEX_ENV_", "OPENAI_", "XDG_"))
        }
        base.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(home),
            NO_GCE_CHECK="true",
            CLOUDSDK_CONFIG=str(home / "gcloud"),
        )
        env = dict(
            base,
            GOOGLE_APPLICATION_CREDENTIALS=str(sa),
            VERTEX_ENV_PROJECT="bench-project",
            VERTEX_ENV_EMULATOR_HOST=emu.host_port,
            VERTEX_ENV_CACHE_DIR=str(Path(tmp) / "warm"),
        )
        export = [vertex_env, "export", "--format", "sh"]
        token = [vertex_env, "token"]
        subprocess.run(export, env=env, check=True, capture_output=True)  # fill the cache

        gcloud = shutil.which("gcloud")
        gcloud_env: dict[str, str] | None = None
        gcloud_note = "not installed"
        if gcloud:
            try:
                gcloud_env = gcloud_setup(gcloud, base, home, sa, emu.url)
            except (subprocess.SubprocessError, OSError) as err:
                gcloud_note = f"installed, but could not be set up offline: {err}"
        commands: list[tuple[list[str], dict[str, str] | Callable[[], dict[str, str]]]] = [
            ([python, "-c", "pass"], base),
            (token, env),
            (export, env),
            ([python, "-c", CLICK_ONLY, *export[1:]], env),
        ]
        if gcloud and gcloud_env:
            commands.append(([gcloud, "auth", "print-access-token"], gcloud_env))
        bare, warm_token, warm_export, click_export, *rest = medians(commands, args.rounds)
        rows.append(("bare interpreter: python -c pass", ms(bare), "", "1.00×"))
        rows.append(("warm token ÷ bare", ms(warm_token), "", verdict(warm_token / bare, 3)))
        rows.append(("warm export ÷ bare", ms(warm_export), "", verdict(warm_export / bare, 3)))
        rows.append(
            (
                "warm export through click ÷ bare",
                ms(click_export),
                "",
                f"{click_export / bare:.2f}×",
            )
        )
        if rest:
            rows.append(
                (
                    "gcloud auth print-access-token (cached) ÷ warm token",
                    ms(rest[0]),
                    ms(warm_token),
                    verdict(rest[0] / warm_token, 15, at_most=False),
                )
            )
        else:
            rows.append(("gcloud auth print-access-token", gcloud_note, "", ""))

        counter = iter(range(10**6))

        def cold_env() -> dict[str, str]:
            return dict(env, VERTEX_ENV_CACHE_DIR=str(Path(tmp) / f"cold-{next(counter)}"))

        cold, google_auth = medians(
            [(export, cold_env), ([python, "-c", BARE_GOOGLE_AUTH], env)], args.rounds
        )
        rows.append(
            (
                "cold export ÷ bare google-auth",
                ms(cold),
                ms(google_auth),
                verdict(cold / google_auth, 1.3),
            )
        )

        nothing = dict(base)
        nothing.pop("NO_GCE_CHECK")
        times = [timed([vertex_env, "export"], nothing) for _ in range(5)]
        rows.append(
            (
                "no credentials → error (metadata probe on)",
                f"{max(times) * 1000:.0f} ms max of 5",
                "",
                f"target < 1000 ms: {'met' if max(times) < 1 else 'NOT met'}",
            )
        )

        emu.state.reset()
        burst = dict(env, VERTEX_ENV_CACHE_DIR=str(Path(tmp) / "burst"))
        with ThreadPoolExecutor(max_workers=32) as pool:
            codes = list(
                pool.map(
                    lambda _: subprocess.run(export, env=burst, capture_output=True).returncode,
                    range(32),
                )
            )
        issued = emu.state.stats()["tokens_issued"]
        rows.append(
            (
                "32 concurrent cold exports → token requests",
                str(issued),
                f"exit codes {set(codes)}",
                f"target exactly 1: {'met' if issued == 1 else 'NOT met'}",
            )
        )
        rows.extend(shell_startup_rows(bin_dir, base, home, args.rounds))

    width = max(len(r[0]) for r in rows)
    for name, a, b, note in rows:
        print(f"{name:<{width}}  {a:>18}  {b:>18}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
