"""The HTTP routes of a service's commands (`writes:` in the service file): one route per
command, `METHOD /path` as the writes file declares it (`seam.services.commands`)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from seam.migration.writes import Command
from seam.services.commands import CommandError, Commands
from seam.services.runtime import Service


def _problem(status: int, message: str, hint: str | None = None) -> Response:
    body: dict[str, Any] = {"detail": message}
    if hint:
        body["hint"] = hint
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def add_routes(app: FastAPI, service: Service, commands: Commands) -> None:
    for command in commands.writes.commands:
        app.add_api_route(
            command.path,
            _handler(service, commands, command),
            methods=[command.method],
            tags=[f"{service.spec.entity} commands"],
            name=command.name,
            summary=f"{command.name}: sets {', '.join(command.sets)}",
            description=f"Sets {', '.join(command.sets)} of one {service.spec.entity} from the "
            f"JSON body; publishes the events it yields ({', '.join(command.events)}) to "
            f"{commands.topic}. 202: published; 200: nothing changed; 400: a bad body; 404: "
            "no such entity.",
        )


def _handler(service: Service, commands: Commands, command: Command) -> Any:
    async def handle(request: Request) -> Response:
        if not service.loader.progress.ready:
            return _problem(
                503,
                "the image is not current yet: a command needs the entity's current state",
                hint="retry once /ready answers 200",
            )
        try:
            key, text = commands.key_of(request.path_params)
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError as exc:
                raise CommandError(400, f"the body is not JSON: {exc}") from None
            values = commands.body_of(command, body)
            written, note = await run_in_threadpool(run, key, text, values)
        except CommandError as exc:
            return _problem(exc.status, exc.message, exc.hint)
        status = 202 if written else 200
        return Response(
            commands.answer(command, text, written, note),
            status_code=status,
            media_type="application/json",
        )

    def run(key: dict[str, Any], text: str, values: dict[str, Any]) -> Any:
        image = service.image
        with commands.lock:
            with image.lock:
                stored = image.stored(text)
                state = None if stored is None else orjson.loads(image.json(stored))
            commands.settle(text, state)
            return commands.run(command, state, key, text, values)

    return handle


__all__ = ["add_routes"]
