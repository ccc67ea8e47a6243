"""Route maps (bin/rails routes, OpenAPI), resource-name normalisation, path templating, parameter pools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.errors import BadInput
from parity.model import Endpoint
from parity.sources.routes import (
    RouteMap,
    encode_path,
    normalise_resource,
    read_openapi,
    read_param_pools,
    read_rails_routes,
    read_route_map,
    template_path,
    template_path_values,
)

FIXTURES = Path(__file__).parent / "fixtures" / "routes"
RAILS = FIXTURES / "rails_routes.txt"
OPENAPI = FIXTURES / "openapi.json"


def ep(key: str) -> Endpoint:
    return Endpoint.parse(key)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("EmployeesController#show", "employeescontroller_show"),
        ("Api::V1::EmployeesController#show", "api::v1::employeescontroller_show"),
        ("GET /api/employees/:id", "get_/api/employees/:id"),
        # cases from the Datadog Trace Agent's tag normalisation tests (tag values)
        ("Test Conversion Of Weird !@#$%^&**() Characters", "test_conversion_of_weird_characters"),
        ("#test_starting_hash", "test_starting_hash"),
        ("contiguous_____underscores", "contiguous_underscores"),
        ("foo_", "foo"),
        ("Data🐨dog🐶 繋がっ⛰てて", "data_dog_繋がっ_てて"),
        ("AlsO:ök", "also:ök"),
        ("1test", "1test"),
        (" spaces   ", "spaces"),
        ("a" * 888, "a" * 200),
    ],
)
def test_normalise_resource_like_datadog(name: str, expected: str) -> None:
    assert normalise_resource(name) == expected


def test_rails_routes_sample() -> None:
    routes = read_rails_routes(RAILS)
    assert routes.resolve("HomeController#index") == ep("GET /")
    assert routes.resolve("Api::V1::EmployeesController#index") == ep("GET /api/v1/employees")
    assert routes.resolve("Api::V1::EmployeesController#create") == ep("POST /api/v1/employees")
    assert routes.resolve("Api::V1::EmployeesController#show") == ep("GET /api/v1/employees/{id}")
    assert routes.resolve("Api::V1::EmployeesController#update") == ep("PATCH /api/v1/employees/{id}")  # first wins
    nested = ep("GET /api/v1/employees/{employee_id}/payslips/{id}")
    assert routes.resolve("Api::V1::PayslipsController#show") == nested  # constraints column ignored
    assert routes.resolve("Api::V1::AttendancesController#create") == ep(
        "POST /api/v1/employees/{employee_id}/attendances"
    )
    assert routes.resolve("HelpController#index") == ep("GET /help")  # optional (/:locale) dropped
    assert routes.resolve("Rails::HealthController#show") == ep("GET /up")
    assert routes.resolve("SessionsController#login") == ep("GET /login")  # GET|POST: first verb named
    assert routes.resolve("FilesController#show") == ep("GET /files/{path}")
    assert routes.globs == {"/files/{path}": frozenset({"path"})}
    # engine routes get the engine's mount path
    assert routes.resolve("Blorgh::ArticlesController#show") == ep("GET /blog/articles/{id}")
    # redirect, two mounts (Sidekiq, engine), ActionCable, a Proc endpoint: skipped and counted
    assert routes.skipped == 5
    assert any("redirect" in s for s in routes.skipped_examples)
    assert len(routes.collisions) == 2
    assert "PUT /api/v1/employees/{id}" in routes.collisions[0]
    assert len(routes.routes) == 19
    assert ep("PUT /api/v1/employees/{id}") in routes.routes
    assert ep("POST /login") in routes.routes
    assert not any("(" in e.route or ":" in e.route for e in routes.routes)


def test_resolve_accepts_datadog_tag_spellings() -> None:
    routes = read_rails_routes(RAILS)
    show = ep("GET /api/v1/employees/{id}")
    assert routes.resolve("api::v1::employeescontroller_show") == show
    assert routes.resolve("api_v1_employeescontroller_show") == show
    assert routes.resolve(normalise_resource("Api::V1::EmployeesController#show")) == show
    assert routes.resolve("NoSuchController#show") is None
    assert routes.resource_for(show) == "Api::V1::EmployeesController#show"


def test_rails_routes_expanded_layout(tmp_path: Path) -> None:
    text = """--[ Route 1 ]--------------------------------
Prefix            | api_v1_employee
Verb              | GET
URI               | /api/v1/employees/:id(.:format)
Controller#Action | api/v1/employees#show
--[ Route 2 ]--------------------------------
Prefix            | old
Verb              | GET
URI               | /old(.:format)
Controller#Action | redirect(301, /)
"""
    path = tmp_path / "routes.txt"
    path.write_text(text, encoding="utf-8")
    routes = read_route_map(path)
    assert routes.entries == {"Api::V1::EmployeesController#show": ep("GET /api/v1/employees/{id}")}
    assert routes.skipped == 1


def test_match_path_prefers_the_most_specific_template() -> None:
    routes = read_rails_routes(RAILS)
    assert routes.match_path("GET", "/api/v1/employees/1042") == ep("GET /api/v1/employees/{id}")
    assert routes.match_path("GET", "/api/v1/employees/search") == ep("GET /api/v1/employees/search")
    assert routes.match_path("GET", "/api/v1/employees/") == ep("GET /api/v1/employees")  # trailing slash
    assert routes.match_path("PUT", "/api/v1/employees/7") == ep("PUT /api/v1/employees/{id}")
    assert routes.match_path("GET", "/files/a/b/c.txt") == ep("GET /files/{path}")  # glob spans segments
    assert routes.match_path("HEAD", "/api/v1/employees/7") == ep("HEAD /api/v1/employees/{id}")  # via GET
    assert routes.match_path("POST", "/api/v1/employees/7") is None
    assert routes.match_path("GET", "/nowhere") is None
    found = routes.match("GET", "/api/v1/employees/%E5%B1%B1%E7%94%B0/payslips/9")
    assert found is not None
    assert found.params == {"employee_id": "%E5%B1%B1%E7%94%B0", "id": "9"}  # raw, as received
    assert found.resource == "Api::V1::PayslipsController#show"


def test_match_path_specificity_does_not_depend_on_order() -> None:
    a, b = ep("GET /things/{id}"), ep("GET /things/new")
    for routes in (RouteMap(routes=(a, b)), RouteMap(routes=(b, a))):
        assert routes.match_path("GET", "/things/new") == b
        assert routes.match_path("GET", "/things/12") == a


def test_openapi_json() -> None:
    routes = read_openapi(OPENAPI)
    assert routes.resolve("EmployeesController#index") == ep("GET /api/employees")
    assert routes.resolve("EmployeesController#create") == ep("POST /api/employees")  # from employees#create
    assert routes.resolve("employees#create") == ep("POST /api/employees")
    assert routes.resolve("EmployeesController#show") == ep("GET /api/employees/{id}")
    assert routes.resolve("employeescontroller_show") == ep("GET /api/employees/{id}")
    assert routes.resolve("EmployeesController#search") == ep("GET /api/employees/search")  # x-datadog-resource
    assert routes.resolve("searchEmployees") is None
    assert routes.resolve("updateEmployee") == ep("PATCH /api/employees/{id}")
    assert routes.resolve("DELETE /api/employees/{id}") == ep("DELETE /api/employees/{id}")  # no operationId
    assert len(routes.routes) == 7
    assert routes.match_path("GET", "/api/employees/search") == ep("GET /api/employees/search")
    pdf = routes.match("GET", "/api/payslips/2026-11/77.pdf")
    assert pdf is not None
    assert pdf.endpoint == ep("GET /api/payslips/{year}-{month}/{id}.pdf")
    assert dict(pdf.params) == {"year": "2026", "month": "11", "id": "77"}


def test_openapi_servers_base_path(tmp_path: Path) -> None:
    doc = {
        "openapi": "3.1.0",
        "servers": [{"url": "https://{host}/v2", "variables": {"host": {"default": "api.example.com"}}}],
        "paths": {"/employees/{id}": {"get": {"operationId": "employees#show"}}},
    }
    path = tmp_path / "api.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert read_route_map(path).resolve("EmployeesController#show") == ep("GET /v2/employees/{id}")


def test_openapi_yaml_is_read(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(
        "openapi: 3.0.0\nservers: [{url: 'https://x/v1'}]\npaths:\n  /x/{id}:\n    get: {operationId: 'x#show'}\n",
        encoding="utf-8",
    )
    assert read_route_map(path).resolve("XController#show") == ep("GET /v1/x/{id}")
    path.write_text("openapi: 3.0.0\npaths: [unclosed\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"api\.yaml: not valid YAML"):
        read_route_map(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"swagger": "2.0", "paths": {}}', "Swagger 2 is not supported"),
        ('{"openapi": "3.0.0", "paths": {}}', "no routes found"),
        ('{"openapi": "3.0.0"}', "paths: expected an object"),
        ('{"routes": []}', "not an OpenAPI document"),
        ('{"openapi": ', "not valid JSON"),
        ("nothing useful here\n", "no routes found"),
    ],
)
def test_bad_route_maps(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput, match=message) as info:
        read_route_map(path)
    assert str(path) in str(info.value)


def test_missing_route_map(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        read_route_map(tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/employees/1042", "/api/employees/{id}"),
        ("/api/employees/1042/payslips/77?month=2026-11", "/api/employees/{id}/payslips/{id2}"),
        ("/orders/3f2c1a9e-8b7d-4c6e-9f10-1234567890ab", "/orders/{id}"),
        ("/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{id}"),  # hex hash
        ("/files/aB3dE5fG7hJ9kL1m", "/files/{id}"),  # 16-char mixed token with digits
        ("/files/aB3dE5fG7hJ9kL1", "/files/aB3dE5fG7hJ9kL1"),  # 15 chars: kept
        ("/api/employees/search", "/api/employees/search"),  # letters only: kept
        ("/api/payroll-runs-2026-november", "/api/payroll-runs-2026-november"),  # slug: kept
        ("/api/employees/%E5%B1%B1%E7%94%B0", "/api/employees/%E5%B1%B1%E7%94%B0"),  # not decoded
        ("/api/employees/山田", "/api/employees/%E5%B1%B1%E7%94%B0"),  # raw unicode: encoded as UTF-8
        ("/a/{x}", "/a/%7Bx%7D"),  # braces never look like placeholders
        ("/", "/"),
    ],
)
def test_template_path(path: str, expected: str) -> None:
    assert template_path(path) == expected


def test_template_path_values_and_encode_path() -> None:
    assert template_path_values("/a/12/b/34") == ("/a/{id}/b/{id2}", {"id": "12", "id2": "34"})
    assert encode_path("/plain/path%20x") == "/plain/path%20x"
    assert encode_path("/caf\udce9") == "/caf%E9"  # an undecodable log byte keeps its value


def test_read_param_pools(tmp_path: Path) -> None:
    (tmp_path / "id.csv").write_text("id\n1001\n1008\n\n1001\n", encoding="utf-8")
    (tmp_path / "month.csv").write_text("2026-01,extra column\n2026-02\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    assert read_param_pools(tmp_path) == {"id": ("1001", "1008", "1001"), "month": ("2026-01", "2026-02")}


def test_read_param_pools_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no <param>\.csv files"):
        read_param_pools(tmp_path)
    (tmp_path / "id.csv").write_text("id\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"id\.csv: no values"):
        read_param_pools(tmp_path)
    with pytest.raises(BadInput, match="no such directory"):
        read_param_pools(tmp_path / "missing")
