"""A tiny app as a user would write it: a weather assistant on Vertex AI through the openai SDK.

tests/test_plugin_sample_app.py tests it offline with nothing but the plugin's public fixtures.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic

import vertex_env

MODEL = "google/gemini-2.5-flash"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Forecast(pydantic.BaseModel):
    city: str
    temperature_c: float
    summary: str


def make_client() -> openai.OpenAI:
    return vertex_env.openai_client()


def get_weather(city: str) -> dict[str, Any]:
    """The app's own tool: a stand-in for a real weather service."""
    return {"city": city, "temperature_c": 21.5, "summary": "sunny"}


def ask(client: openai.OpenAI, question: str) -> str:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content or ""


def ask_streaming(client: openai.OpenAI, question: str) -> str:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def weather_agent(client: openai.OpenAI, question: str) -> str:
    """Let the model call get_weather, run it, and return the model's final answer."""
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(3):
        reply = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
            result = get_weather(**arguments)
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )
    raise RuntimeError("the model kept calling tools")


def forecast(client: openai.OpenAI, city: str) -> Forecast:
    reply = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": f"Weather in {city}?"}],
        response_format=Forecast,
    )
    parsed = reply.choices[0].message.parsed
    if parsed is None:
        raise RuntimeError("no structured answer")
    return parsed


def ask_or_apologise(client: openai.OpenAI, question: str) -> str:
    """The app's error handling: a refused request becomes a polite message."""
    try:
        return ask(client, question)
    except openai.APIStatusError as err:
        return f"Sorry, the assistant is unavailable ({err.status_code})."
