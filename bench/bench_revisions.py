"""Warm `token` / `export` of two revisions side by side in one run: before/after figures for a start-up change.

Each revision is `git archive`d and installed regularly (not editable) in its own temporary venv, like
bench_core.py's install. One emulator and one HOME serve both; each venv mints its token once, then every
round runs, in turn: bare interpreter, warm token, warm export, for each revision (the same machine load for
all). Prints the medians and their ratios to the bare interpreter of the same venv.

Run: python bench/bench_revisions.py BEFORE_REV [AFTER_REV (default HEAD)] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vertex_env.emulator import EmulatorServer, write_authorized_user

ROOT = Path(__file__).resolve().parent.parent


def install(rev: str, folder: Path) -> Path:
    """A venv holding a regular install of `rev`; its bin directory."""
    src = folder / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    bin_dir = folder / "venv" / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(src)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return bin_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmulatorServer() as emu:
        home = Path(tmp) / "home"
        home.mkdir()
        bins = {
            rev: install(rev, Path(tmp) / f"rev{i}")
            for i, rev in enumerate((args.before, args.after))
        }
        adc = write_authorized_user(home / "adc.json")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "VERTEX_ENV_EMULATOR_HOST": emu.host_port,
            "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
            "VERTEX_ENV_PROJECT": "bench-project",
        }
        commands: dict[tuple[str, str], list[str]] = {}
        for rev, bin_dir in bins.items():
            subprocess.run(
                [str(bin_dir / "vertex-env"), "token"],
                env=env,
                check=True,
                capture_output=True,
            )
            commands[rev, "bare"] = [str(bin_dir / "python"), "-c", "pass"]
            commands[rev, "token"] = [str(bin_dir / "vertex-env"), "token"]
            commands[rev, "export"] = [str(bin_dir / "vertex-env"), "export"]
        minted = emu.state.stats()["tokens_issued"]
        times: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
        for _ in range(args.rounds):
            for key, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, env=env, check=True, capture_output=True)
                times[key].append(time.perf_counter() - started)
        if emu.state.stats()["tokens_issued"] != minted:
            raise SystemExit("a warm command minted a token: the figures are not of the warm path")
        for rev in bins:
            bare = statistics.median(times[rev, "bare"])
            cells = [f"bare {bare * 1000:.1f} ms"]
            for what in ("token", "export"):
                median = statistics.median(times[rev, what])
                cells.append(f"warm {what} {median * 1000:.1f} ms = {median / bare:.2f}×")
            print(f"{rev:<12} " + "; ".join(cells))


if __name__ == "__main__":
    main()
