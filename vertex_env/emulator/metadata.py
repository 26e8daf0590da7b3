"""The GCE metadata server: project and instance values, the service account listing, and its cached access token."""

from __future__ import annotations

import re

from aiohttp import web

from vertex_env.emulator.state import EmulatorState

METADATA_SA_PATH = re.compile(
    r"^/computeMetadata/v1/instance/service-accounts/(?P<account>[^/]+)/(?P<leaf>[^/]*)$"
)


def respond(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    if request.headers.get("Metadata-Flavor") != "Google":
        return web.Response(
            status=403,
            text="Missing required header: Metadata-Flavor: Google\n",
            content_type="text/plain",
        )
    flavor = {"Metadata-Flavor": "Google"}
    config = state.config
    path = request.path
    text_values = {
        "/": "computeMetadata/\n",
        "/computeMetadata/": "v1/\n",
        "/computeMetadata/v1/project/project-id": config.project_id,
        "/computeMetadata/v1/project/numeric-project-id": "123456789012",
        "/computeMetadata/v1/universe/universe-domain": "googleapis.com",
        "/computeMetadata/v1/instance/zone": "projects/123456789012/zones/us-central1-a",
        "/computeMetadata/v1/instance/id": "1234567890123456789",
        "/computeMetadata/v1/instance/service-accounts/": f"default/\n{config.service_account_email}/\n",
    }
    if path in text_values:
        return web.Response(text=text_values[path], content_type="application/text", headers=flavor)
    match = METADATA_SA_PATH.match(path)
    if match is None or match["account"] not in ("default", config.service_account_email):
        return web.Response(
            status=404, text="Not Found\n", content_type="text/html", headers=flavor
        )
    leaf = match["leaf"]
    info = {
        "aliases": ["default"],
        "email": config.service_account_email,
        "scopes": list(config.scopes),
    }
    if leaf == "":
        if request.query.get("recursive") == "true":
            return web.json_response(info, headers=flavor)
        return web.Response(
            text="aliases\nemail\nidentity\nscopes\ntoken\n",
            content_type="application/text",
            headers=flavor,
        )
    if leaf == "email":
        return web.Response(
            text=config.service_account_email, content_type="application/text", headers=flavor
        )
    if leaf == "aliases":
        return web.Response(text="default", content_type="application/text", headers=flavor)
    if leaf == "scopes":
        return web.Response(
            text="\n".join(config.scopes) + "\n",
            content_type="application/text",
            headers=flavor,
        )
    if leaf == "token":
        requested = request.query.get("scopes", "").replace(",", " ").split()
        # Like a real metadata server: the cached token again, with what it has left, until only
        # metadata_refresh_before seconds remain; a caller cannot get a fresher one earlier.
        value, _, expires_in = state.metadata_token(
            f"serviceAccount:{config.service_account_email}",
            tuple(requested or config.scopes),
        )
        return web.json_response(
            {"access_token": value, "expires_in": expires_in, "token_type": "Bearer"},
            headers=flavor,
        )
    return web.Response(status=404, text="Not Found\n", content_type="text/html", headers=flavor)
