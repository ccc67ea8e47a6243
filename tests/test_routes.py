"""Route maps (bin/rails routes, OpenAPI), resource-name normalisation, path templating, parameter pools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.errors import BadInput
from parity.model import Endpoint
from parity.sources.routes import (
    RouteMap,
    describe_route_map,
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


# -- annotate's Route Map, engines, skip reasons, OpenAPI without operationId ------------------------------------

ENGINES_TXT = FIXTURES / "engines_routes.txt"  # `bin/rails routes` of an app with 10 engines (one nested)
ENGINES_RB = FIXTURES / "engines_routes.rb"  # the same table as annotate writes it into config/routes.rb
RSPEC_OPENAPI = FIXTURES / "rspec_openapi.yaml"  # rspec-openapi output: summary/tags, no operationId


def test_annotate_route_map_parses_exactly_like_rails_routes() -> None:
    plain, annotated = read_route_map(ENGINES_TXT), read_route_map(ENGINES_RB)
    assert annotated.source == "annotate Route Map engines_routes.rb"
    assert annotated.routes == plain.routes  # same routes, same order
    assert annotated.entries == plain.entries
    assert annotated.globs == plain.globs
    assert annotated.skipped_reasons == plain.skipped_reasons
    assert annotated.collisions == plain.collisions
    assert len(plain.routes) == 151
    # the Ruby code under the comments is not read (nor counted): only the table's non-route lines are skipped
    assert plain.skipped == annotated.skipped == 15
    assert plain.skipped_reasons == {
        "mounts (engine or Rack app)": 12,
        "redirects": 2,
        "targets not controller#action": 1,
    }


def test_engine_routes_get_their_mount_prefix() -> None:
    routes = read_route_map(ENGINES_RB)
    assert routes.resolve("Blazer::ChecksController#destroy") == ep("DELETE /blazer/checks/{id}")
    assert ep("DELETE /checks/{id}") not in routes.routes
    assert routes.resolve("Blazer::QueriesController#home") == ep("GET /blazer")  # an engine's root
    assert routes.resolve("PgHero::HomeController#space") == ep("GET /pghero/space")  # (/:database) dropped
    assert routes.resolve("MissionControl::Jobs::JobsController#show") == ep(
        "GET /jobs/applications/{application_id}/jobs/{id}"
    )
    # two engines at one path; an engine mounted inside another (listed before it, as Rails does)
    assert routes.resolve("Rswag::Api::SwaggerController#show") == ep("GET /api-docs/{path}")
    assert routes.globs["/api-docs/{path}"] == frozenset({"path"})
    assert routes.resolve("Audits::AuditsController#show") == ep("GET /admin/audits/audits/{id}")
    assert routes.match_path("GET", "/admin/audits/audits/7") == ep("GET /admin/audits/audits/{id}")
    engine_routes = [e for e in routes.routes if routes.resource_for(e) and "::" in str(routes.resource_for(e))]
    assert all(not e.route.startswith(("/checks", "/queries", "/articles")) for e in engine_routes)


def test_engine_mounted_twice_and_engine_without_mount_line(tmp_path: Path) -> None:
    path = tmp_path / "routes.txt"
    path.write_text(
        "Prefix Verb URI Pattern Controller#Action\n"
        "  blog      /blog   Blorgh::Engine\n"
        " blog2      /news   Blorgh::Engine\n\n"
        "Routes for Blorgh::Engine:\n"
        "articles GET /articles(.:format) blorgh/articles#index\n\n"
        "Routes for Orphan::Engine:\n"
        "things GET /things(.:format) orphan/things#index\n",
        encoding="utf-8",
    )
    routes = read_route_map(path)
    assert routes.routes == (ep("GET /blog/articles"), ep("GET /news/articles"))
    assert routes.skipped_reasons == {"mounts (engine or Rack app)": 2, "engine routes without a mount line": 1}


def test_annotate_markdown_layout_and_wrappers(tmp_path: Path) -> None:
    # annotate's own spec output for format_markdown (GET|POST written GET-POST), with wrapper_open/close
    text = """# START
# ## Route Map (Updated 2024-05-01 12:00)
#
# Prefix    | Verb       | URI Pattern     | Controller#Action   
# --------- | ---------- | --------------- | --------------------
# myaction1 | GET        | /url1(.:format) | mycontroller1#action
# myaction2 | POST       | /url2(.:format) | mycontroller2#action
# myaction3 | DELETE-GET | /url3(.:format) | mycontroller3#action
# END

Rails.application.routes.draw do
  get "/url1", to: "mycontroller1#action"
end
"""  # noqa: W291 - annotate pads the header row
    path = tmp_path / "routes.rb"
    path.write_text(text, encoding="utf-8")
    routes = read_route_map(path)
    assert routes.routes == (ep("GET /url1"), ep("POST /url2"), ep("DELETE /url3"), ep("GET /url3"))
    assert routes.resolve("Mycontroller3Controller#action") == ep("DELETE /url3")
    assert routes.skipped_reasons == {"lines not a route": 1}  # "END"


def test_routes_rb_without_route_map_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "routes.rb"
    path.write_text('Rails.application.routes.draw do\n  get "/x", to: "x#show"\nend\n', encoding="utf-8")
    with pytest.raises(BadInput, match=r"without annotate's `# == Route Map` comments"):
        read_route_map(path)


def test_describe_route_map_line() -> None:
    line = describe_route_map(read_route_map(ENGINES_RB))
    assert line.startswith("route map annotate Route Map engines_routes.rb: 151 routes; 15 lines skipped: ")
    assert "12 mounts (engine or Rack app), 2 redirects, 1 targets not controller#action" in line
    assert "(e.g. line " in line
    assert describe_route_map(read_route_map(OPENAPI)).endswith(
        "; no line skipped; 1 operations without operationId map by method + path only "
        "(Controller#action resources need `bin/rails routes` output)"
    )


def test_rspec_openapi_maps_by_method_and_path() -> None:
    spec = read_route_map(RSPEC_OPENAPI)
    rails = read_route_map(ENGINES_TXT)
    assert spec.unnamed == len(spec.routes) == 12
    # every operation's path is a route of the app (rspec-openapi writes Rails' own templates)
    assert set(spec.routes) <= set(rails.routes)
    for resource, key in [
        ("GET /api/v1/employees/:id", "GET /api/v1/employees/{id}"),
        ("GET /api/v1/employees/{id}", "GET /api/v1/employees/{id}"),
        ("GET /api/v1/employees/?", "GET /api/v1/employees/{id}"),  # Datadog's quantised name
        ("get_/api/v1/employees/:id", "GET /api/v1/employees/{id}"),  # ... as a tag value
        ("get_/api/v1/employees/", "GET /api/v1/employees/{id}"),  # `?` at the end: `_`, then stripped
        ("get_/api/v1/employees/_id/attendances", "GET /api/v1/employees/{employee_id}/attendances"),
        ("GET /api/v1/employees/:employee_id/attendances", "GET /api/v1/employees/{employee_id}/attendances"),
        ("GET /api/v1/employees", "GET /api/v1/employees"),
        ("GET /api/v1/employees/", "GET /api/v1/employees"),
        ("GET /api/v1/employees/search", "GET /api/v1/employees/search"),  # literal beats placeholder
        ("GET /api/v1/employees/1042", "GET /api/v1/employees/{id}"),  # a concrete path
        ("DELETE /blazer/checks/:id", "DELETE /blazer/checks/{id}"),
        ("HEAD /api/v1/employees/:id", "HEAD /api/v1/employees/{id}"),
    ]:
        assert spec.resolve(resource) == ep(key), resource
    # a Controller#action name cannot be resolved from paths alone (the spec names no controller)
    assert spec.resolve("Api::V1::EmployeesController#show") is None
    assert spec.resolve("POST /api/v1/employees/:id") is None  # no such method on that path
    assert spec.resolve("GET /nowhere/:id") is None
    # the same names resolve against a rails routes map too
    assert rails.resolve("GET /api/v1/employees/:id") == ep("GET /api/v1/employees/{id}")
