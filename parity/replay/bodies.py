"""Request-body templates for a replay (``--bodies DIR``, or ``bodies`` in ``[replay]`` of parity.toml).

A baseline from access logs or Datadog knows an endpoint's method and route, not what its requests carried.
``DIR`` holds one JSON file per endpoint whose body the replay must send, named after the endpoint key
(:func:`body_file_name`): the method, then the route with every ``/`` turned into ``_``, then ``.json``::

    POST /api/employees/{id}/payroll   ->  POST_api_employees_{id}_payroll.json
    PATCH /api/employees/{id}          ->  PATCH_api_employees_{id}.json

The file is the JSON body as it is sent, with ``{name}`` placeholders inside string values filled from the
endpoint's parameter pools (``{"employee_id": "{id}"}``); the replay sends it with ``Content-Type:
application/json``. A template overrides a body the baseline carries. Bad input (``BadInput``, one line): a file
that is not JSON (or is JSON ``null``), a placeholder with no pool in the endpoint, a ``.json`` file named after
no endpoint of the baseline (a typo would otherwise leave an endpoint without its body), or two endpoints whose
keys give the same file name. Other files (README, non-``.json``) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from parity.bounds import load_json
from parity.errors import BadInput, reading
from parity.model import Endpoint, RequestTemplate
from parity.replay.plan import placeholders

__all__ = ["MAX_BODY_BYTES", "body_file_name", "body_placeholders", "check_body_placeholders", "load_bodies"]

#: Largest body template file read, bytes.
MAX_BODY_BYTES = 1024 * 1024


def body_file_name(endpoint: Endpoint) -> str:
    """The template file of ``endpoint``: ``POST /api/x/{id}`` → ``POST_api_x_{id}.json``."""
    return f"{endpoint.method}{endpoint.route.replace('/', '_')}.json"


def body_placeholders(body: Any) -> tuple[str, ...]:
    """Names of the ``{name}`` placeholders in the string values of a JSON ``body`` (each once, in order)."""
    found: dict[str, None] = {}
    stack = [body]
    while stack:
        value = stack.pop(0)
        if isinstance(value, str):
            found.update(dict.fromkeys(placeholders(value)))
        elif isinstance(value, list):
            stack[:0] = value
        elif isinstance(value, dict):
            stack[:0] = list(value.values())
    return tuple(found)


def load_bodies(directory: str | Path, endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    """Endpoint key → JSON body template, from the files of ``directory`` named by :func:`body_file_name` after
    ``endpoints`` (the baseline's). BadInput (one line) as the module docstring says."""
    folder = Path(directory)
    if not folder.is_dir():
        raise BadInput(f"--bodies: {folder} is not a directory (one JSON body template per endpoint)")
    by_name: dict[str, Endpoint] = {}
    for endpoint in endpoints:
        if not endpoint.mapped:
            continue
        name = body_file_name(endpoint)
        if name in by_name and by_name[name] != endpoint:
            raise BadInput(f"--bodies: {by_name[name]} and {endpoint} would both read {name}")
        by_name[name] = endpoint
    bodies: dict[str, Any] = {}
    with reading(folder, "a directory of body templates"):
        files = sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())
    for path in files:
        named = by_name.get(path.name)
        if named is None:
            raise BadInput(
                f"{path}: names no endpoint of the baseline (expected METHOD_route.json, e.g. POST_api_x.json)"
            )
        with reading(path, "a JSON body template"):
            size = path.stat().st_size
            if size > MAX_BODY_BYTES:
                raise BadInput(f"{path}: {size} bytes, more than the {MAX_BODY_BYTES} a body template may have")
            text = path.read_text("utf-8")
        body = load_json(text, str(path))
        if body is None:
            raise BadInput(f"{path}: the template is JSON null: write the body the endpoint's requests carry")
        bodies[named.key] = body
    return bodies


def check_body_placeholders(bodies: Mapping[str, Any], requests: Mapping[str, RequestTemplate]) -> str | None:
    """Why a body template cannot be filled (a placeholder with no pool in its endpoint's ``params``), or None.
    ``requests``: endpoint key → the request template the replay uses for it."""
    for key, body in bodies.items():
        request = requests.get(key)
        if request is None:
            continue
        missing = [name for name in body_placeholders(body) if name not in request.params]
        if missing:
            pools = ", ".join(sorted(request.params)) or "none"
            endpoint = Endpoint.parse(key)
            return (
                f"{body_file_name(endpoint)}: {', '.join('{' + m + '}' for m in missing)} has no value pool in "
                f"{key} (its pools: {pools})"
            )
    return None
