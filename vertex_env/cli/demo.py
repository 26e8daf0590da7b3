"""`vertex-env demo`: the whole flow, offline, against the embedded emulator — nothing is mocked.

It starts the emulator, writes a synthetic ADC file, resolves a token through the real google-auth path, shows
the variables (token masked), calls chat completions through them, and lets a short-lived token expire to show
what a client holding it by value sees, and what vertex-env does next.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

DEMO_LIFETIME = 4  # seconds: long enough to use, short enough to watch it expire


def chat(base_url: str, api_key: str, prompt: str) -> tuple[int, str]:
    """One chat completion through the variables: with the openai SDK when installed, else the stdlib."""
    try:
        import openai
    except ImportError:
        return _chat_stdlib(base_url, api_key, prompt)
    from vertex_env.system.loopback import goes_direct

    # The emulator is on loopback: a corporate HTTPS_PROXY in the environment must not take this call.
    client = openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=not goes_direct(base_url)),
    )
    try:
        result = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": prompt}]
        )
    except openai.APIStatusError as err:
        return err.status_code, _google_message(err.response.text)
    finally:
        client.close()
    return 200, result.choices[0].message.content or ""


def _chat_stdlib(base_url: str, api_key: str, prompt: str) -> tuple[int, str]:
    from vertex_env.system.loopback import opener_for

    body = json.dumps(
        {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": prompt}]}
    )
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=body.encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    try:
        with opener_for(base_url).open(request, timeout=10) as response:
            return 200, str(json.load(response)["choices"][0]["message"]["content"])
    except urllib.error.HTTPError as err:
        return err.code, _google_message(err.read().decode(errors="replace"))


def _google_message(text: str) -> str:
    """The message of Google's error body; on the OpenAI-compatible path Vertex wraps it in a list."""
    try:
        body = json.loads(text)
        if isinstance(body, list) and body:
            body = body[0]
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:120]


def run_demo(echo: Callable[[str], None] = print) -> int:
    from vertex_env.emulator import EmulatorServer
    from vertex_env.emulator.credfiles import write_authorized_user
    from vertex_env.environment import resolve
    from vertex_env.sinks.status import countdown, mask

    client = "openai SDK" if _has_openai() else "stdlib HTTP (pip install openai to use the SDK)"
    with (
        tempfile.TemporaryDirectory(prefix="vertex-env-demo-") as tmp,
        EmulatorServer(expires_in=DEMO_LIFETIME) as emu,
    ):
        adc = write_authorized_user(Path(tmp) / "application_default_credentials.json")
        environ = {
            "VERTEX_ENV_EMULATOR_HOST": emu.host_port,
            "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
            "VERTEX_ENV_PROJECT": "demo-project",
            "VERTEX_ENV_LOCATION": "us-central1",
            "VERTEX_ENV_CACHE_DIR": str(Path(tmp) / "cache"),
            "NO_GCE_CHECK": "true",
        }
        echo(f"1. Emulator for oauth2.googleapis.com and Vertex AI listening at {emu.url}")
        echo(
            f"   (VERTEX_ENV_EMULATOR_HOST={emu.host_port}; tokens it issues live {DEMO_LIFETIME} s instead of 1 h)"
        )
        echo(f"2. Synthetic gcloud ADC file (authorized_user): {adc}")

        env = resolve(environ=environ)
        token = env.token()
        token_requests = emu.state.stats()["tokens_issued"]
        echo(
            f"3. google-auth refreshed it through vertex-env's transport: {token_requests} token request(s)"
        )
        echo(
            f"   token {mask(token.value)}, {countdown(token.remaining())}, cached for every process of this user"
        )
        variables = env.variables(token)
        echo('4. eval "$(vertex-env export)" would set:')
        for name, value in variables.items():
            shown = mask(value) if name == "OPENAI_API_KEY" else value
            echo(f"     {name}={shown}")

        status, reply = chat(
            variables["OPENAI_BASE_URL"], variables["OPENAI_API_KEY"], "Hello from vertex-env"
        )
        echo(f"5. Chat completion through those variables ({client}): HTTP {status}: {reply}")
        if status != 200:
            return 1

        again = env.token()
        echo(
            f"6. A second export is served from the cache: same token={again.value == token.value}, "
            f"token requests still {emu.state.stats()['tokens_issued']}"
        )

        wait = max(token.remaining(), 0) + 0.2
        echo(f"7. Waiting {wait:.1f} s for the token to expire (on Vertex AI: one hour)…")
        time.sleep(wait)
        status, reply = chat(
            variables["OPENAI_BASE_URL"], variables["OPENAI_API_KEY"], "Still there?"
        )
        echo(f"   A client still holding the old token by value: HTTP {status}: {reply}")
        if status != 401:
            return 1
        fresh = env.token()
        status, reply = chat(env.base_url, fresh.value, "Still there?")
        echo(
            f"   vertex-env export now mints a fresh token ({mask(fresh.value)}): HTTP {status}: {reply}"
        )
        if status != 200 or fresh.value == token.value:
            return 1
    echo("")
    echo(
        'Real use: `gcloud auth application-default login`, then eval "$(vertex-env export --project YOUR_PROJECT)".'
    )
    echo(
        "Long-running apps: `vertex-env run --proxy -- python app.py` keeps tokens fresh underneath them."
    )
    return 0


def _has_openai() -> bool:
    """Whether the openai SDK is installed, imported now: its import takes a second or more on a busy machine,
    which must not come out of the demo token's few seconds of life between the mint and the first chat."""
    try:
        import openai  # noqa: F401
    except ImportError:
        return False
    return True
