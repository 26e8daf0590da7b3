"""Loopback-proxy benchmarks: the proxy against direct calls to the same emulator, side by side in one run.

- added latency of a small non-streaming completion, p50 and p99          target p50 ≤ +1 ms
- streaming time to first byte                                           target within +2 ms
- throughput at 32 concurrent clients                                    target ≥ 80 % of direct
- RSS of the proxy process over 10,000 requests                          target flat
- the proxy's CPU per request with a far upstream (not loopback, as Google is) reached through HTTP_PROXY,
  beside the same proxy with the loopback upstream (the environment's proxy settings are read once, not per request)
- uvloop (the optional extra `vertex-env[speed]`) against asyncio's own loop: two more `serve` processes side by
  side, one where importing uvloop fails; the main table's proxy uses uvloop when it is installed
- the cost of routing by model (issue 19): two more `serve` processes side by side, one whose profile has a
  `models` table naming the benchmark's model (each request's JSON `model` is read and routed), one without
  (targets: the routed one's throughput at 32 clients within 10 % of the other's; its added p50 stays ≤ 1 ms)
- the cost of `serve`'s Prometheus metrics per request: two more `serve` processes side by side, one with
  prometheus_client importable (`/metrics` on) and one where importing it fails, as if the `vertex-env[metrics]`
  extra were not installed: latency p50 and proxy CPU µs per request

Three processes, so no two share a GIL: the emulator (`vertex-env emulator`), the proxy (`vertex-env serve`)
and this load generator (aiohttp). Direct calls carry a Google token minted by the token core; proxied calls
carry the proxy's local key. Everything runs on loopback with a throwaway HOME.

Run: python bench/bench_proxy.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

from vertex_env.system.loopback import PROXY_VARIABLES

PROJECT = "bench-project"
BODY = json.dumps(
    {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "Say hi"}]}
).encode()
STREAM_BODY = json.dumps(
    {
        "model": "google/gemini-2.5-flash",
        "messages": [{"role": "user", "content": "one two three four five six"}],
        "stream": True,
    }
).encode()


@dataclass
class Target:
    name: str
    url: str
    authorization: str


def isolated_environment(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_", "OPENAI_", "VERTEX_ENV_"))
    }
    home = root / "home"
    for sub in ("run", ".cache", ".config"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(home / "run"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        CLOUDSDK_CONFIG=str(home / ".config" / "gcloud"),
        NO_GCE_CHECK="true",
        VERTEX_ENV_PROJECT=PROJECT,
    )
    for name in PROXY_VARIABLES:
        env.pop(name, None)
    return env


def first_json_line(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    stdout: IO[str] | None = process.stdout
    assert stdout is not None
    line = stdout.readline()
    if not line:
        process.kill()
        _, err = process.communicate()
        raise SystemExit(f"{what} did not start: {err}")
    data: dict[str, Any] = json.loads(line)
    return data


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (None: this one)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def one(session: aiohttp.ClientSession, target: Target, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(
        target.url,
        data=body,
        headers={"Authorization": target.authorization, "Content-Type": "application/json"},
    ) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {response.status}")
    return time.perf_counter() - started


async def first_byte(session: aiohttp.ClientSession, target: Target) -> float:
    started = time.perf_counter()
    async with session.post(
        target.url,
        data=STREAM_BODY,
        headers={"Authorization": target.authorization, "Content-Type": "application/json"},
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {response.status}")
        await response.content.readany()
        elapsed = time.perf_counter() - started
        await response.read()
    return elapsed


async def interleaved(
    targets: list[Target], rounds: int, measure: Callable[[Target], Awaitable[float]]
) -> dict[str, list[float]]:
    """Alternate targets request by request, so drift (CPU frequency, neighbours) hits both alike."""
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    for index in range(rounds):
        for target in targets if index % 2 else reversed(targets):
            samples[target.name].append(await measure(target))
    return samples


async def throughput(
    session: aiohttp.ClientSession, target: Target, total: int, concurrency: int
) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one(session, target, BODY)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


Row = tuple[str, str, str, str, str]
CostRow = tuple[str, str, str, str]


async def measure(
    direct: Target, proxied: Target, pids: dict[str, int], quick: bool
) -> tuple[list[Row], list[str]]:
    rounds = 300 if quick else 2000
    total = 2000 if quick else 10000
    memory_total = 2000 if quick else 10000
    concurrency = 32
    rows: list[Row] = []
    notes: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for target in (direct, proxied):  # warm connections, caches and the proxy's token
            for _ in range(100):
                await one(session, target, BODY)

        lat = await interleaved([direct, proxied], rounds, lambda t: one(session, t, BODY))
        for label, fraction in (("p50", 0.50), ("p99", 0.99)):
            d = percentile(lat["direct"], fraction) * 1000
            p = percentile(lat["proxy"], fraction) * 1000
            target_text = "≤ +1 ms" if label == "p50" else "-"
            rows.append(
                (f"latency {label} (ms)", f"{d:.3f}", f"{p:.3f}", f"+{p - d:.3f} ms", target_text)
            )

        ttfb = await interleaved([direct, proxied], rounds // 2, lambda t: first_byte(session, t))
        d = statistics.median(ttfb["direct"]) * 1000
        p = statistics.median(ttfb["proxy"]) * 1000
        rows.append(("stream TTFB p50 (ms)", f"{d:.3f}", f"{p:.3f}", f"+{p - d:.3f} ms", "≤ +2 ms"))

        # Two passes each in alternating order, so neither path always runs on a warmer machine; the CPU
        # each process spends per request shows where the time goes when the cores are the limit.
        rates: dict[str, list[float]] = {"direct": [], "proxy": []}
        cpu: dict[str, dict[str, float]] = {"direct": {}, "proxy": {}}
        for order in ((direct, proxied), (proxied, direct)):
            for target in order:
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                before["load generator"] = cpu_seconds(None)
                rates[target.name].append(
                    await throughput(session, target, total // 2, concurrency)
                )
                for name, pid in [*pids.items(), ("load generator", None)]:
                    spent = cpu_seconds(pid) - before[name]
                    cpu[target.name][name] = cpu[target.name].get(name, 0.0) + spent
        d, p = statistics.mean(rates["direct"]), statistics.mean(rates["proxy"])
        rows.append(
            (f"throughput x{concurrency} (req/s)", f"{d:.0f}", f"{p:.0f}", f"{p / d:.0%}", "≥ 80%")
        )
        for name in [*pids, "load generator"]:
            per_d = cpu["direct"].get(name, 0.0) / total * 1e6
            per_p = cpu["proxy"].get(name, 0.0) / total * 1e6
            rows.append((f"  CPU µs/req, {name}", f"{per_d:.0f}", f"{per_p:.0f}", "", ""))
        cores = os.cpu_count() or 1
        spent_by = {k: sum(v.values()) / total for k, v in cpu.items()}
        notes.append(
            f"{cores} CPU cores; CPU per request, all processes: direct {spent_by['direct'] * 1e6:.0f} µs, "
            f"proxy {spent_by['proxy'] * 1e6:.0f} µs → CPU-bound ceiling of the ratio "
            f"{spent_by['direct'] / spent_by['proxy']:.0%} when every core is busy"
        )

        samples = [rss_kib(pids["proxy"])]
        step = memory_total // 10
        for _ in range(10):
            await throughput(session, proxied, step, concurrency)
            samples.append(rss_kib(pids["proxy"]))
        growth = samples[-1] - samples[1]  # after the first batch: pools and caches are warm
        rows.append(
            (
                f"proxy RSS over {memory_total} req (MiB)",
                "-",
                f"{samples[0] / 1024:.1f} → {samples[-1] / 1024:.1f}",
                f"{growth:+d} KiB after warm-up",
                "flat",
            )
        )
        notes.append(f"proxy RSS (KiB) every {step} requests: {' '.join(map(str, samples))}")
    return rows, notes


# A profile whose models table routes the benchmark's model (and two others): every request's body is read.
ROUTING_CONFIG = """
[profiles.routed]
location = "us-central1"

[profiles.routed.models]
"google/gemini-2.5-flash" = { location = "us-central1" }
"google/gemini-3-pro-preview" = { location = "global" }
"llama-3-70b" = { endpoint = "1234567890", location = "us-east5" }
"""


# Run `vertex-env serve` with some optional modules unimportable (prometheus_client: as if the
# `vertex-env[metrics]` extra were not installed; uvloop: as without `vertex-env[speed]`).
_WITHOUT = (
    "import sys\nfor name in sys.argv.pop(1).split(','): sys.modules[name] = None\n"
    "from vertex_env.cli.group import entry_point\nsys.argv[0] = 'vertex-env'\nentry_point()"
)


async def side_by_side(a: Target, b: Target, pids: dict[str, int], quick: bool) -> list[CostRow]:
    """Two `serve` processes on the same emulator: latency p50, proxy CPU per request and throughput at 32
    clients, alternating which goes first so that neither always runs on a warmer machine."""
    rounds = 300 if quick else 2000
    total = 2000 if quick else 10000
    concurrency = 32
    rows: list[CostRow] = []
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for target in (a, b):
            for _ in range(100):
                await one(session, target, BODY)
        lat = await interleaved([a, b], rounds, lambda t: one(session, t, BODY))
        x = percentile(lat[a.name], 0.5) * 1e6
        y = percentile(lat[b.name], 0.5) * 1e6
        rows.append(("latency p50 (µs)", f"{x:.0f}", f"{y:.0f}", f"{y - x:+.0f} µs"))
        cpu: dict[str, float] = {a.name: 0.0, b.name: 0.0}
        rate: dict[str, list[float]] = {a.name: [], b.name: []}
        for order in ((a, b), (b, a), (a, b), (b, a)):
            for target in order:
                before = cpu_seconds(pids[target.name])
                rate[target.name].append(await throughput(session, target, total // 4, concurrency))
                cpu[target.name] += cpu_seconds(pids[target.name]) - before
        x, y = (cpu[t.name] / total * 1e6 for t in (a, b))
        rows.append(("proxy CPU per request (µs)", f"{x:.0f}", f"{y:.0f}", f"{y - x:+.0f} µs"))
        x, y = (statistics.mean(rate[t.name]) for t in (a, b))
        rows.append((f"throughput x{concurrency} (req/s)", f"{x:.0f}", f"{y:.0f}", f"{y / x:.0%}"))
    return rows


async def metrics_cost(
    without: Target, with_: Target, pids: dict[str, int], quick: bool
) -> list[CostRow]:
    rows = await side_by_side(without, with_, pids, quick)
    metrics_url = with_.url.split("/v1/", 1)[0] + "/metrics"
    async with aiohttp.ClientSession() as session, session.get(metrics_url) as answer:
        scraped = (await answer.read()).decode()
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in scraped.splitlines()
        if line.startswith("vertex_env_proxy_requests_total{")
    )
    rows.append(("requests counted by /metrics", "-", f"{counted:.0f}", ""))
    return rows


# A proxy whose upstream is not loopback (as Google is), reached through HTTP_PROXY (the emulator answers
# absolute-form requests): the path where the proxy consults the environment's proxy settings.
_FAR_PROXY = """
import asyncio, json, sys
from urllib.parse import urlsplit
from vertex_env.environment import resolve
from vertex_env.proxy.server import LoopbackProxy, run_loop

async def main():
    env = resolve()
    far = "http://vertex.example" + urlsplit(env.base_url).path
    proxy = LoopbackProxy(upstream=far, token_source=env.token_source, min_ttl=env.profile.min_ttl)
    await proxy.start()
    print(json.dumps({"base_url": proxy.base_url, "api_key": proxy.key}), flush=True)
    await asyncio.Event().wait()

run_loop(main())  # the loop `serve` runs on (uvloop when installed), as the proxy it is compared with
"""


def start_far_proxy(python: str, env: dict[str, str]) -> subprocess.Popen[str]:
    far_env = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    far_env["HTTP_PROXY"] = f"http://{env['VERTEX_ENV_EMULATOR_HOST']}"
    return subprocess.Popen(
        [python, "-c", _FAR_PROXY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=far_env,
    )


async def upstream_cost(
    near: Target, far: Target, pids: dict[str, int], quick: bool
) -> list[CostRow]:
    """The same proxy with a loopback upstream and with a far one reached through HTTP_PROXY."""
    total = 2000 if quick else 10000
    concurrency = 32
    rows: list[CostRow] = []
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for target in (near, far):
            for _ in range(100):
                await one(session, target, BODY)
        cpu: dict[str, float] = {near.name: 0.0, far.name: 0.0}
        rate: dict[str, list[float]] = {near.name: [], far.name: []}
        for order in ((near, far), (far, near)):
            for target in order:
                before = cpu_seconds(pids[target.name])
                rate[target.name].append(await throughput(session, target, total // 2, concurrency))
                cpu[target.name] += cpu_seconds(pids[target.name]) - before
        a, b = (cpu[t.name] / total * 1e6 for t in (near, far))
        rows.append(("proxy CPU per request (µs)", f"{a:.0f}", f"{b:.0f}", f"{b - a:+.0f} µs"))
        a, b = (statistics.mean(rate[t.name]) for t in (near, far))
        rows.append((f"throughput x{concurrency} (req/s)", f"{a:.0f}", f"{b:.0f}", f"{b / a:.0%}"))
    return rows


def start_serve(python: str, env: dict[str, str], *, without: str = "") -> subprocess.Popen[str]:
    head = [python, "-c", _WITHOUT, without] if without else [python, "-m", "vertex_env"]
    return subprocess.Popen(
        [*head, "serve", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def run_side_by_side(
    processes: list[subprocess.Popen[str]],
    names: tuple[str, str],
    quick: bool,
    compare: Callable[
        [Target, Target, dict[str, int], bool], Coroutine[Any, Any, list[CostRow]]
    ] = side_by_side,
) -> list[CostRow]:
    targets = []
    for name, process in zip(names, processes, strict=True):
        announced = first_json_line(process, name)
        url = announced["base_url"] + "/chat/completions"
        targets.append(Target(name, url, f"Bearer {announced['api_key']}"))
    pids = {t.name: p.pid for t, p in zip(targets, processes, strict=True)}
    return asyncio.run(compare(targets[0], targets[1], pids, quick))


def print_table(header: tuple[str, ...], rows: list[Row] | list[CostRow]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 15 s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vertex-env-bench-") as tmp:
        root = Path(tmp)
        env = isolated_environment(root)
        python = sys.executable
        emulator = subprocess.Popen(
            [
                python,
                "-m",
                "vertex_env",
                "emulator",
                "--json",
                "--write-credentials",
                str(root / "creds"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        proxy: subprocess.Popen[str] | None = None
        sidecars: list[subprocess.Popen[str]] = []
        metric_rows: list[CostRow] = []
        loop_rows: list[CostRow] = []
        upstream_rows: list[CostRow] = []
        routing_rows: list[CostRow] = []
        try:
            started = first_json_line(emulator, "emulator")
            env["VERTEX_ENV_EMULATOR_HOST"] = started["host_port"]
            env["GOOGLE_APPLICATION_CREDENTIALS"] = started["credentials"]["authorized_user"]
            proxy = subprocess.Popen(
                [python, "-m", "vertex_env", "serve", "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            announced = first_json_line(proxy, "proxy")
            token = subprocess.run(
                [python, "-m", "vertex_env", "token"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            base = f"{started['url']}/v1/projects/{PROJECT}/locations/us-central1/endpoints/openapi"
            direct = Target("direct", base + "/chat/completions", f"Bearer {token}")
            proxied = Target(
                "proxy",
                announced["base_url"] + "/chat/completions",
                f"Bearer {announced['api_key']}",
            )
            pids = {"emulator": emulator.pid, "proxy": proxy.pid}
            rows, notes = asyncio.run(measure(direct, proxied, pids, args.quick))
            far_proxy = start_far_proxy(python, env)
            sidecars.append(far_proxy)
            announced = first_json_line(far_proxy, "far proxy")
            far = Target(
                "far",
                announced["base_url"] + "/chat/completions",
                f"Bearer {announced['api_key']}",
            )
            upstream_rows = asyncio.run(
                upstream_cost(proxied, far, {"proxy": proxy.pid, "far": far_proxy.pid}, args.quick)
            )
            sidecars.remove(far_proxy)
            far_proxy.terminate()
            far_proxy.communicate(timeout=20)
            proxy.terminate()
            proxy.communicate(timeout=20)
            proxy = None

            if importable("uvloop"):
                sidecars = [start_serve(python, env, without=w) for w in ("uvloop", "")]
                loop_rows = run_side_by_side(sidecars, ("asyncio loop", "uvloop"), args.quick)
                for process in sidecars:
                    process.terminate()
                    process.communicate(timeout=20)
                sidecars = []
            else:
                notes.append("uvloop: not measured (install vertex-env[speed] to compare)")
            if importable("prometheus_client"):
                sidecars = [start_serve(python, env, without=w) for w in ("prometheus_client", "")]
                metric_rows = run_side_by_side(
                    sidecars, ("without extra", "with extra"), args.quick, metrics_cost
                )
            else:
                notes.append("metrics cost: not measured (install vertex-env[metrics] to compare)")
            for process in sidecars:
                process.terminate()
                process.communicate(timeout=20)
            sidecars = []
            config = root / "routing.toml"
            config.write_text(ROUTING_CONFIG)
            routed = {**env, "VERTEX_ENV_CONFIG": str(config), "VERTEX_ENV_PROFILE": "routed"}
            sidecars = [start_serve(python, env), start_serve(python, routed)]
            routing_rows = run_side_by_side(
                sidecars, ("no models table", "models table"), args.quick
            )
        finally:
            started_processes: list[subprocess.Popen[str] | None] = [*sidecars, proxy, emulator]
            for started_process in started_processes:
                if started_process is not None:
                    started_process.terminate()
                    started_process.communicate(timeout=20)

    print_table(("metric", "direct", "proxy", "proxy vs direct", "target"), rows)
    if upstream_rows:
        print()
        print_table(("upstream", "loopback", "far, via HTTP_PROXY", "difference"), upstream_rows)
    if loop_rows:
        print()
        print_table(("serve event loop", "asyncio loop", "uvloop", "difference"), loop_rows)
    if routing_rows:
        print()
        print_table(
            ("serve routing by model", "no models table", "models table", "difference"),
            routing_rows,
        )
    if metric_rows:
        print()
        print_table(
            ("serve metrics cost", "without extra", "with extra", "difference"), metric_rows
        )
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
