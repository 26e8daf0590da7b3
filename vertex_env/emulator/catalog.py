"""Vertex's Model Garden catalog (publisher `google`), its self-deployed endpoints, and Google's paging of both.

Shapes are Google's (googleapis, `google/cloud/aiplatform/v1beta1/model_garden_service.proto` and
`publisher_model.proto`): `GET /v1beta1/publishers/google/models` answers a `ListPublisherModelsResponse`,
`{"publisherModels": [PublisherModel], "nextPageToken"}`, each model `{"name": "publishers/google/models/<id>",
"versionId", "openSourceCategory", "launchStage", "versionState", "publisherModelTemplate"}` (the BASIC view);
`GET /v1/projects/{p}/locations/{l}/endpoints` answers a `ListEndpointsResponse`, `{"endpoints": [Endpoint],
"nextPageToken"}`, each named `projects/{project number}/locations/{l}/endpoints/{id}`. Pages follow AIP-158:
`pageSize` (0 or absent: the default; above the maximum: the maximum; negative: 400), an opaque `pageToken`
that only this list accepts, and no `nextPageToken` on the last page.

The catalog also knows which locations serve each model (some live only in `global`): Vertex answers a chat
for a model outside its locations with the 404 `vertex.py` sends. Both are editable through the admin API.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vertex_env.config.values import VERTEX_LOCATIONS as VERTEX_LOCATIONS
from vertex_env.emulator.faults import EmulatorError

# VERTEX_LOCATIONS (the config layer's list, one for the whole package): the locations Vertex serves generative
# models in; a chat in another gets the same 404 as a model Vertex does not know.

REGIONS: tuple[str, ...] = tuple(loc for loc in VERTEX_LOCATIONS if loc != "global")
#: Every location (`"*"` in the admin API).
EVERYWHERE = "*"

LAUNCH_STAGES = ("EXPERIMENTAL", "PRIVATE_PREVIEW", "PUBLIC_PREVIEW", "GA")
OPEN_SOURCE_CATEGORIES = (
    "PROPRIETARY",
    "GOOGLE_OWNED_OSS_WITH_GOOGLE_CHECKPOINT",
    "THIRD_PARTY_OWNED_OSS_WITH_GOOGLE_CHECKPOINT",
    "GOOGLE_OWNED_OSS",
    "THIRD_PARTY_OWNED_OSS",
)
MODEL_KINDS = ("chat", "embedding")

#: ListPublisherModels: the page size when none is asked, and the most one page holds. The default is small on
#: purpose: a client that reads only the first page misses models here as it would on Vertex's long list.
CATALOG_PAGE_SIZE = 10
CATALOG_MAX_PAGE_SIZE = 100
ENDPOINTS_PAGE_SIZE = 100
ENDPOINTS_MAX_PAGE_SIZE = 1000

_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_VERSION_ID = re.compile(r"^[0-9A-Za-z._-]{1,32}$")
#: Endpoint IDs Vertex generates are up to 19 digits; a user-chosen numeric ID has no leading zero.
_ENDPOINT_ID = re.compile(r"^[1-9][0-9]{0,18}$")
#: What can name a project in a URL at all: a project ID (optionally domain-scoped) or a project number.
PROJECT_NAME_SHAPE = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z0-9-]+$")


@dataclasses.dataclass(frozen=True)
class CatalogModel:
    """One `publishers/google/models/<id>` entry, and where Vertex serves it."""

    id: str
    version_id: str = "001"
    launch_stage: str = "GA"
    open_source_category: str = "PROPRIETARY"
    #: The locations serving it; `("*",)` for every Vertex location.
    locations: tuple[str, ...] = (EVERYWHERE,)
    #: What the OpenAI-compatible endpoint serves it for: chat completions or embeddings.
    kind: str = "chat"

    def serves(self, location: str) -> bool:
        if location not in VERTEX_LOCATIONS:
            return False
        return EVERYWHERE in self.locations or location in self.locations

    def served_locations(self) -> list[str]:
        """Where it is served, `global` first (the location to try first)."""
        return [loc for loc in VERTEX_LOCATIONS if self.serves(loc)]

    def to_google(self) -> dict[str, Any]:
        """The PublisherModel resource, BASIC view, as ListPublisherModels and GetPublisherModel return it."""
        return {
            "name": f"publishers/google/models/{self.id}",
            "versionId": self.version_id,
            "openSourceCategory": self.open_source_category,
            "launchStage": self.launch_stage,
            "versionState": "VERSION_STATE_STABLE"
            if self.launch_stage == "GA"
            else "VERSION_STATE_UNSTABLE",
            "publisherModelTemplate": (
                f"projects/{{project}}/locations/{{location}}/publishers/google/models/{self.id}"
                f"@{self.version_id}"
            ),
        }

    def to_json(self) -> dict[str, Any]:
        """The admin API's view: the catalog entry with its locations spelled out."""
        return {
            "id": self.id,
            "version_id": self.version_id,
            "launch_stage": self.launch_stage,
            "open_source_category": self.open_source_category,
            "kind": self.kind,
            "locations": list(self.locations),
            "served_in": self.served_locations(),
        }

    @classmethod
    def from_json(cls, data: Any) -> CatalogModel:
        if not isinstance(data, dict):
            raise EmulatorError("a catalog model is a JSON object")
        known = {"id", "version_id", "launch_stage", "open_source_category", "locations", "kind"}
        unknown = set(data) - known
        if unknown:
            raise EmulatorError(f"unknown catalog model fields: {sorted(unknown)}")
        model_id = data.get("id")
        if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
            raise EmulatorError(
                "a catalog model needs an id such as gemini-2.5-flash (lowercase, no publisher prefix)"
            )
        version = str(data.get("version_id", "001"))
        if not _VERSION_ID.match(version):
            raise EmulatorError(f"version_id {version!r} is not a version such as 001")
        stage = str(data.get("launch_stage", "GA"))
        if stage not in LAUNCH_STAGES:
            raise EmulatorError(f"launch_stage is one of {list(LAUNCH_STAGES)}")
        category = str(data.get("open_source_category", "PROPRIETARY"))
        if category not in OPEN_SOURCE_CATEGORIES:
            raise EmulatorError(f"open_source_category is one of {list(OPEN_SOURCE_CATEGORIES)}")
        kind = str(data.get("kind", "chat"))
        if kind not in MODEL_KINDS:
            raise EmulatorError(f"kind is one of {list(MODEL_KINDS)}")
        return cls(
            id=model_id,
            version_id=version,
            launch_stage=stage,
            open_source_category=category,
            locations=parse_locations(data.get("locations", EVERYWHERE)),
            kind=kind,
        )


def parse_locations(value: Any) -> tuple[str, ...]:
    """`"*"`, one location, a comma/space separated string or a list, each a location Vertex serves."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not value:
        raise EmulatorError('locations is "*" or a non-empty list of Vertex locations')
    names = tuple(str(v) for v in value)
    if EVERYWHERE in names:
        return (EVERYWHERE,)
    unknown = [n for n in names if n not in VERTEX_LOCATIONS]
    if unknown:
        raise EmulatorError(f"not locations Vertex serves: {unknown}")
    return names


#: The catalog a fresh emulator starts with: current Gemini and embedding models, with Google's launch stages.
#: Previews of Gemini 3 are served only in `global`; text embeddings only in regions.
SEED_CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel("gemini-2.5-pro"),
    CatalogModel("gemini-2.5-flash"),
    CatalogModel("gemini-2.5-flash-lite"),
    CatalogModel("gemini-2.0-flash-001"),
    CatalogModel("gemini-2.0-flash"),
    CatalogModel("gemini-2.0-flash-lite-001"),
    CatalogModel("gemini-3-pro-preview", launch_stage="PUBLIC_PREVIEW", locations=("global",)),
    CatalogModel("gemini-3-flash-preview", launch_stage="PUBLIC_PREVIEW", locations=("global",)),
    CatalogModel("text-embedding-005", kind="embedding", locations=REGIONS),
    CatalogModel("text-multilingual-embedding-002", kind="embedding", locations=REGIONS),
    CatalogModel("gemini-embedding-001", kind="embedding", locations=REGIONS),
    CatalogModel("gemma-3-27b-it", open_source_category="GOOGLE_OWNED_OSS_WITH_GOOGLE_CHECKPOINT"),
)


@dataclasses.dataclass(frozen=True)
class DeployedEndpoint:
    """A self-deployed model's endpoint (Model Garden, Hugging Face): its numeric ID answers chat completions."""

    id: str
    display_name: str
    project: str
    location: str
    #: The model it serves (the deployment's model id, e.g. a Hugging Face name or `gemma-2-9b-it`).
    model: str
    create_time: float

    def to_google(self, project_number: str) -> dict[str, Any]:
        """The Endpoint resource as ListEndpoints returns it (name by project number, as Vertex does)."""
        created = rfc3339_nanos(self.create_time)
        deployed_id = str(int(hashlib.sha256(self.id.encode()).hexdigest()[:15], 16))
        model_id = str(int(hashlib.sha256(self.model.encode()).hexdigest()[:15], 16))
        return {
            "name": f"projects/{project_number}/locations/{self.location}/endpoints/{self.id}",
            "displayName": self.display_name,
            "deployedModels": [
                {
                    "id": deployed_id,
                    "model": f"projects/{project_number}/locations/{self.location}/models/{model_id}",
                    "displayName": self.model,
                    "createTime": created,
                    "dedicatedResources": {
                        "machineSpec": {
                            "machineType": "g2-standard-12",
                            "acceleratorType": "NVIDIA_L4",
                            "acceleratorCount": 1,
                        },
                        "minReplicaCount": 1,
                        "maxReplicaCount": 1,
                    },
                    "modelVersionId": "1",
                }
            ],
            "trafficSplit": {deployed_id: 100},
            "etag": base64.b64encode(
                hashlib.sha256(f"{self.id}:{self.create_time}".encode()).digest()[:12]
            ).decode("ascii"),
            "createTime": created,
            "updateTime": created,
        }

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, *, default_project: str, now: float) -> DeployedEndpoint:
        if not isinstance(data, dict):
            raise EmulatorError("an endpoint is a JSON object")
        unknown = set(data) - {"id", "display_name", "project", "location", "model"}
        if unknown:
            raise EmulatorError(f"unknown endpoint fields: {sorted(unknown)}")
        endpoint_id = str(data.get("id") or new_endpoint_id())
        if not _ENDPOINT_ID.match(endpoint_id):
            raise EmulatorError(
                "an endpoint id is numeric (up to 19 digits, no leading zero), as Vertex makes them"
            )
        display_name = data.get("display_name")
        if not isinstance(display_name, str) or not display_name.strip() or len(display_name) > 128:
            raise EmulatorError("an endpoint needs a display_name (1 to 128 characters)")
        location = data.get("location")
        if location not in REGIONS:
            raise EmulatorError(
                "an endpoint lives in a region Vertex serves (self-deployed endpoints are not global)"
            )
        model = data.get("model")
        if not isinstance(model, str) or not model.strip():
            raise EmulatorError("an endpoint needs the model it serves")
        project = str(data.get("project") or default_project)
        if not PROJECT_NAME_SHAPE.match(project):
            raise EmulatorError(f"project {project!r} is not a project id or number")
        return cls(
            id=endpoint_id,
            display_name=display_name,
            project=project,
            location=str(location),
            model=model,
            create_time=now,
        )


def new_endpoint_id() -> str:
    """A fresh endpoint ID in Vertex's shape (19 digits)."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


def project_number(project: str, *, default_project: str, default_number: str) -> str:
    """The project number for a project ID (a stable made-up one), or the number itself."""
    if project.isdigit():
        return project
    if project == default_project:
        return default_number
    return str(10**11 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % (9 * 10**11))


def rfc3339_nanos(epoch_seconds: float) -> str:
    """`2024-01-02T03:04:05.123456Z`, the timestamp form Vertex's resources carry."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- paging (AIP-158) -------------------------------------------------------------------------------------


class PageError(ValueError):
    """A bad pageSize or pageToken (Google answers 400 INVALID_ARGUMENT)."""


def page(
    items: Sequence[Any],
    query: Mapping[str, str],
    *,
    listing: str,
    default_size: int,
    max_size: int,
) -> tuple[list[Any], str | None]:
    """One page of `items` for `pageSize`/`pageToken`, and the token of the next page (None on the last)."""
    raw_size = query.get("pageSize", "").strip()
    try:
        size = int(raw_size) if raw_size else 0
    except ValueError:
        raise PageError(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw_size}\"") from None
    if size < 0:
        raise PageError("page_size must be non-negative.")
    size = default_size if size == 0 else min(size, max_size)
    token = query.get("pageToken", "")
    offset = _read_token(token, listing) if token else 0
    chunk = list(items[offset : offset + size])
    following = offset + size
    return chunk, (_make_token(following, listing) if following < len(items) else None)


def _make_token(offset: int, listing: str) -> str:
    raw = json.dumps({"o": offset, "l": listing}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _read_token(token: str, listing: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        data = None
    if (
        not isinstance(data, dict)
        or data.get("l") != listing
        or not isinstance(data.get("o"), int)
        or data["o"] < 0
    ):
        raise PageError("Invalid page token.")
    return int(data["o"])


def catalog_index(models: Iterable[CatalogModel]) -> dict[str, CatalogModel]:
    return {model.id: model for model in models}
