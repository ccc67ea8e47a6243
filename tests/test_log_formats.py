"""Access logs in their documented formats: AWS's own ALB examples, NGINX's documented ``upstream_time`` format
(built-in parser and ``--log-format``), custom ``log_format``s (``escape=json``, ``$request_method`` +
``$request_uri``, ``$msec``), and the refusals of ``--log-format``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from parity.cli import main
from parity.errors import BadInput
from parity.model import LatencyDistribution
from parity.sources.access_log import read_access_logs
from parity.sources.nginx_format import compile_log_format
from tests.conftest import run_parity

# --- AWS ALB: the examples of "Access log entries" (Elastic Load Balancing user guide), verbatim -----------

_ARN = "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067"
ALB_HTTP = (
    "http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 "
    '0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
    f'{_ARN} "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" '
    '"10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90 "-" "-" "-"'
)
ALB_HTTPS = (
    "https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 "
    '0.086 0.048 0.037 200 200 0 57 "GET https://www.example.com:443/ HTTP/1.1" "curl/7.46.0" '
    f'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 {_ARN} "Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" '
    '"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 '
    '2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90 '
    '"m.example.com" "-" "TransformSuccess"'
)
ALB_H2_REDIRECT = (
    "h2 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 10.0.1.252:48160 10.0.0.66:9000 "
    '0.000 0.002 0.000 200 200 5 257 "GET https://10.0.2.105:773/ HTTP/2.0" "curl/7.46.0" '
    f'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 {_ARN} "Root=1-58337327-72bd00b0343d75b906739c42" "-" "-" 1 '
    '2018-07-02T22:22:48.364000Z "redirect" "https://example.com:80/" "-" "10.0.0.66:9000" "200" "-" "-" '
    'TID_1234abcd5678ef90 "-" "-" "-"'
)
ALB_WS = (
    "ws 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 10.0.0.140:40914 10.0.1.192:8010 "
    '0.001 0.003 0.000 101 101 218 587 "GET http://10.0.0.30:80/ HTTP/1.1" "-" - - '
    f'{_ARN} "Root=1-58337364-23a8c76965a2ef7629b185e3" "-" "-" 1 2018-07-02T22:22:48.364000Z "forward" "-" "-" '
    '"10.0.1.192:8010" "101" "-" "-" TID_1234abcd5678ef90 "-" "-" "-"'
)
ALB_WSS = (
    "wss 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 10.0.0.140:44244 10.0.0.171:8010 "
    '0.000 0.001 0.000 101 101 218 786 "GET https://10.0.0.30:443/ HTTP/1.1" "-" ECDHE-RSA-AES128-GCM-SHA256 '
    f'TLSv1.2 {_ARN.replace("us-east-2", "us-west-2")} "Root=1-58337364-23a8c76965a2ef7629b185e3" "-" "-" 1 '
    '2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.171:8010" "101" "-" "-" TID_1234abcd5678ef90 "-" "-" "-"'
)
ALB_LAMBDA = (
    "http 2018-11-30T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 - "
    '0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
    f'{_ARN} "Root=1-58337364-23a8c76965a2ef7629b185e3" "-" "-" 0 2018-11-30T22:22:48.364000Z "forward" "-" "-" '
    '"-" "-" "-" "-" TID_1234abcd5678ef90 "-" "-" "-"'
)
ALB_LAMBDA_FAILED = (
    "http 2018-11-30T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 - "
    '0.000 0.001 0.000 502 - 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
    f'{_ARN} "Root=1-58337364-23a8c76965a2ef7629b185e3" "-" "-" 0 2018-11-30T22:22:48.364000Z "forward" "-" '
    '"LambdaInvalidResponse" "-" "-" "-" "-" TID_1234abcd5678ef90 "-" "-" "-"'
)
# Not in AWS's examples: written from the field descriptions (a fixed response and an authenticate answer are
# logged with -1 times and no target; a request too malformed for any action has actions_executed "-").
ALB_FIXED_RESPONSE = (
    "https 2026-09-20T10:01:26.379899Z app/my-loadbalancer/50dc6c495c0c9188 216.180.246.224:21790 - -1 -1 -1 404 - "
    '127 162 "GET https://www.example.com:443/wp-login.php HTTP/1.1" "GenomeCrawlerd/1.0" - - - '
    '"Root=1-6ab37c8e-5afd1aca560fd3a825162993" "-" "-" 0 2026-09-20T10:01:26.379000Z "fixed-response" "-" "-" '
    '"-" "-" "-" "-" TID_558e26a7adede44b9fdb98006014afcf "-" "-" "-"'
)
ALB_AUTHENTICATE = (
    "https 2026-09-20T10:01:27.000000Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 - -1 -1 -1 302 - "
    '34 366 "GET https://www.example.com:443/app HTTP/1.1" "Mozilla/5.0" - - - '
    '"Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" "-" 1 2026-09-20T10:01:26.990000Z "authenticate" '
    '"-" "-" "-" "-" "-" "-" TID_1234abcd5678ef90 "-" "-" "-"'
)
ALB_NO_ACTION = (
    "https 2026-09-29T09:00:00.000000Z app/my-loadbalancer/50dc6c495c0c9188 198.18.9.9:40000 - -1 -1 -1 400 - 0 272 "
    '"- - - " "-" - - - "-" "-" "-" - 2026-09-29T09:00:00.000000Z "-" "-" "-" "-" "-" "-" "-" TID_00000000000000aa '
    '"-" "-" "-"'
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_alb_counts_only_the_forwarded_requests_of_aws_examples(tmp_path: Path) -> None:
    lines = [ALB_HTTP, ALB_HTTPS, ALB_H2_REDIRECT, ALB_WS, ALB_WSS, ALB_LAMBDA, ALB_LAMBDA_FAILED]
    lines += [ALB_FIXED_RESPONSE, ALB_AUTHENTICATE, ALB_NO_ACTION]
    result = read_access_logs(_write(tmp_path / "alb.log", lines), "alb")
    # HTTP, HTTPS (authenticate,forward), Lambda and failed Lambda were forwarded; AWS's h2 example is a
    # redirect the ALB answered itself, although it names a target, processing times and status 200.
    get = result.measurement.by_key()["GET /"]
    assert (result.lines, result.malformed, result.skipped) == (10, 0, 6)
    assert (get.count, get.errors) == (4, 1)  # the failed Lambda: 502, target_status_code "-"
    assert isinstance(get.latency, LatencyDistribution)
    assert get.latency.samples == 4
    assert get.latency.mean == pytest.approx((1 + 48 + 1 + 1) / 4)  # target_processing_time, ms
    assert result.skipped_reasons == (
        ("websocket", 2),
        ("authenticate", 1),
        ("fixed-response", 1),
        ("not forwarded", 1),
        ("redirect", 1),
    )
    assert any('redirect: actions_executed "redirect"' in e for e in result.skipped_examples)


def test_alb_forwarded_without_a_target_answer_is_an_error(tmp_path: Path) -> None:
    """target_status_code "-" on a forwarded request: the target sent no response (an error); -1 times: no
    latency either."""
    lines = [
        ALB_HTTP.replace("0.000 0.001 0.000 200 200", "-1 -1 -1 504 -").replace('"10.0.0.1:80" "200"', '"-" "-"'),
        ALB_HTTP.replace("0.000 0.001 0.000 200 200", "0.000 0.001 0.000 460 -"),
        ALB_HTTP,
    ]
    result = read_access_logs(_write(tmp_path / "alb.log", lines), "alb")
    get = result.measurement.by_key()["GET /"]
    assert (get.count, get.errors, result.no_latency) == (3, 2, 1)


# --- nginx: NGINX's documented upstream_time format ----------------------------------------------------------

# As in NGINX's admin guide ("Setting Up the Access Log"): no space between "$http_user_agent" and rt=.
UPSTREAM_TIME = """log_format upstream_time '$remote_addr - $remote_user [$time_local] '
                         '"$request" $status $body_bytes_sent '
                         '"$http_referer" "$http_user_agent"'
                         'rt=$request_time uct="$upstream_connect_time" uht="$upstream_header_time" urt="$upstream_response_time"';"""  # noqa: E501
UPSTREAM_TIME_LINES = [
    '203.0.113.7 - - [25/Nov/2026:18:00:05 +0900] "GET /api/employees/12?tab=pay HTTP/1.1" 200 512 "-" '
    '"curl/8.5.0"rt=0.034 uct="0.001" uht="0.030" urt="0.031"',
    # two servers of one upstream, then a second group (error_page / X-Accel-Redirect): summed
    '203.0.113.7 - alice [25/Nov/2026:18:00:06 +0900] "GET /api/employees/13 HTTP/1.1" 502 157 "-" '
    '"Mozilla/5.0 (X11; Linux x86_64)"rt=1.034 uct="0.001, 0.002 : 0.001" uht="-, 0.030 : 0.100" '
    'urt="1.000, 0.020 : 0.010"',
    # answered by nginx itself: no upstream
    '203.0.113.7 - - [25/Nov/2026:18:00:07 +0900] "GET /static/app.css HTTP/1.1" 200 9000 "-" '
    '"curl/8.5.0"rt=0.000 uct="-" uht="-" urt="-"',
    '203.0.113.7 - - [25/Nov/2026:18:00:08 +0900] "POST /api/reports HTTP/1.1" 499 0 "-" '
    '"curl/8.5.0"rt=30.001 uct="0.001" uht="-" urt="30.000"',
]
T_05 = datetime(2026, 11, 25, 9, 0, 5, tzinfo=UTC).timestamp()


def _latencies(result_path: Path, **options: object) -> dict[str, tuple[int, int | None, float | None]]:
    """endpoint → (count, errors, mean latency ms rounded to 1 ns, or None without latency)."""
    result = read_access_logs(result_path, "nginx", **options)  # type: ignore[arg-type]
    assert result.malformed == 0, result.malformed_examples
    out: dict[str, tuple[int, int | None, float | None]] = {}
    for key, s in result.measurement.by_key().items():
        latency = s.latency if isinstance(s.latency, LatencyDistribution) else None
        mean = None if latency is None or latency.mean is None else round(latency.mean, 6)
        out[key] = (s.count, s.errors, mean)
    return out


@pytest.mark.parametrize("space", ["", " "])
def test_nginx_upstream_time_format_with_the_built_in_parser(tmp_path: Path, space: str) -> None:
    """name="value" fields are read: the last field (default) is urt, field 0 is rt."""
    lines = [line.replace('"rt=', f'"{space}rt=') for line in UPSTREAM_TIME_LINES]
    path = _write(tmp_path / "access.log", lines)
    urt = _latencies(path)
    assert urt["GET /api/employees/{id}"] == (2, 1, 530.5)
    assert urt["GET /static/app.css"] == (1, 0, None)  # urt "-": no latency
    assert urt["POST /api/reports"] == (1, 1, None)  # 499: an error without latency
    rt = _latencies(path, timing_field=0)
    assert rt["GET /api/employees/{id}"] == (2, 1, 534.0)
    assert rt["GET /static/app.css"] == (1, 0, 0.0)


def test_nginx_upstream_time_directive_as_log_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "access.log", UPSTREAM_TIME_LINES)
    rt = _latencies(path, log_format=UPSTREAM_TIME)
    assert rt["GET /api/employees/{id}"] == (2, 1, 534.0)
    assert rt["GET /static/app.css"] == (1, 0, 0.0)
    urt = _latencies(path, log_format=UPSTREAM_TIME, latency_field="upstream_response_time")
    assert urt["GET /api/employees/{id}"] == (2, 1, 530.5)
    assert urt["GET /static/app.css"] == (1, 0, None)
    result = read_access_logs(path, "nginx", log_format=UPSTREAM_TIME)
    assert result.measurement.window.start.timestamp() == T_05
    assert result.measurement.labels["latency_field"] == "request_time"
    assert result.measurement.labels["log_format"].endswith('urt="$upstream_response_time"')


def test_log_format_lines_keep_query_strings_and_unescape_requests() -> None:
    """The parser hands over the target as received, query string included; \\xHH escapes are bytes."""
    from parity.sources.access_log import _log_format_parser

    parse = _log_format_parser(compile_log_format(UPSTREAM_TIME))
    assert parse(UPSTREAM_TIME_LINES[0]) == (T_05, "GET", "/api/employees/12?tab=pay", 34.0, False)
    escaped = UPSTREAM_TIME_LINES[0].replace("/api/employees/12?tab=pay", r"/api/employees/\xE5\xB1\xB1?q=\x22a\x22")
    assert parse(escaped)[2] == "/api/employees/%E5%B1%B1?q=%22a%22"
    assert str(parse(UPSTREAM_TIME_LINES[0].replace('"GET /api', '"- /api'))).startswith("no usable request line")


# --- nginx: custom log_formats -------------------------------------------------------------------------------

JSON_FORMAT = """log_format json_logs escape=json
    '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request",'
    '"status":$status,"bytes":$body_bytes_sent,"referer":"$http_referer","agent":"$http_user_agent",'
    '"rt":$request_time,"urt":"$upstream_response_time"}';"""
JSON_LINES = [
    '{"time":"2026-11-25T18:00:05+09:00","remote_addr":"203.0.113.7","request":"GET /api/search?q=\\"a\\" HTTP/1.1",'
    '"status":200,"bytes":512,"referer":"","agent":"Mozilla/5.0 \\"quoted\\" \\\\ back","rt":0.120,"urt":"0.100"}',
    '{"time":"2026-11-25T18:00:06+09:00","remote_addr":"203.0.113.7","request":"POST /api/employees HTTP/1.1",'
    '"status":503,"bytes":0,"referer":"https://hr.example.com/","agent":"curl/8.5.0","rt":0.300,'
    '"urt":"0.100, 0.150"}',
    # no upstream: nginx logs a variable it could not find as empty with escape=json
    '{"time":"2026-11-25T18:00:07+09:00","remote_addr":"203.0.113.7","request":"GET /healthz HTTP/1.1",'
    '"status":200,"bytes":2,"referer":"","agent":"","rt":0.000,"urt":""}',
]


def test_nginx_json_log_format(tmp_path: Path) -> None:
    from parity.sources.access_log import _log_format_parser

    parse = _log_format_parser(compile_log_format(JSON_FORMAT))
    assert parse(JSON_LINES[0]) == (T_05, "GET", '/api/search?q="a"', 120.0, False)
    path = _write(tmp_path / "access.json.log", JSON_LINES)
    rt = _latencies(path, log_format=JSON_FORMAT)
    assert rt == {
        "GET /api/search": (1, 0, 120.0),
        "POST /api/employees": (1, 1, 300.0),
        "GET /healthz": (1, 0, 0.0),
    }
    urt = _latencies(path, log_format=JSON_FORMAT, latency_field="$upstream_response_time")
    assert urt["POST /api/employees"] == (1, 1, 250.0)
    assert urt["GET /healthz"] == (1, 0, None)


def test_nginx_method_uri_msec_and_name_value_fields(tmp_path: Path) -> None:
    """Amplify-style name=value / name="value" fields; $request_method + $request_uri; $msec; $uri$is_args$args."""
    fmt = (
        '$msec client=$remote_addr method=$request_method request="$request_uri" status=$status '
        'user_agent="$http_user_agent" upstream_addr=$upstream_addr request_time=$request_time'
    )
    lines = [
        '1795597205.250 client=203.0.113.7 method=GET request="/api/employees/12?page=2" status=200 '
        'user_agent="Mozilla/5.0 (X11; Linux)" upstream_addr=10.0.0.1:8080, 10.0.0.2:8080 request_time=0.015',
        '1795597206.000 client=203.0.113.7 method=DELETE request="/api/employees/13" status=204 '
        'user_agent="-" upstream_addr=unix:/run/app.sock request_time=0.005',
    ]
    path = _write(tmp_path / "amplify.log", lines)
    result = read_access_logs(path, "nginx", log_format=fmt)
    assert result.malformed == 0, result.malformed_examples
    assert result.measurement.window.start.timestamp() == pytest.approx(T_05 + 0.25)
    assert {k: s.count for k, s in result.measurement.by_key().items()} == {
        "GET /api/employees/{id}": 1,
        "DELETE /api/employees/{id}": 1,
    }
    from parity.sources.access_log import _log_format_parser

    uri_args = _log_format_parser(compile_log_format('[$time_local] "$request_method $uri$is_args$args" $status'))
    assert uri_args('[25/Nov/2026:18:00:05 +0900] "GET /a/b?x=1&y=2" 200') == (T_05, "GET", "/a/b?x=1&y=2", None, False)
    assert uri_args('[25/Nov/2026:18:00:05 +0900] "GET /a/b" 404') == (T_05, "GET", "/a/b", None, False)
    unquoted = _log_format_parser(compile_log_format("$time_iso8601 request=$request status=$status"))
    assert unquoted("2026-11-25T09:00:05Z request=GET /a?b=1 HTTP/1.1 status=200") == (
        T_05,
        "GET",
        "/a?b=1",
        None,
        False,
    )


def test_lines_must_match_the_log_format(tmp_path: Path) -> None:
    """A line the format did not write (a literal differs, a field missing) is malformed, named so."""
    good = UPSTREAM_TIME_LINES[0]
    lines = [good, good.replace('"rt=', '" rt='), good.replace('uct="0.001" ', "")] + [good] * 7  # a space; no uct
    result = read_access_logs(
        _write(tmp_path / "a.log", lines), "nginx", log_format=UPSTREAM_TIME, max_malformed_share=1
    )
    assert (result.lines, result.malformed) == (10, 2)
    assert result.malformed_examples[0].endswith("a.log:2: does not match log_format upstream_time")


def test_upstream_header_values_are_free_text(tmp_path: Path) -> None:
    """$upstream_http_NAME (and _cookie_, _trailer_) hold a header's text, not nginx's list of numbers: a
    Content-Type with a space or a Set-Cookie with `; ` must not make the line malformed."""
    fmt = '[$time_local] "$request" $status "$upstream_http_content_type" "$upstream_cookie_sid" rt=$request_time'
    lines = [
        '[25/Nov/2026:18:00:05 +0900] "GET /a HTTP/1.1" 200 "application/json" "-" rt=0.010',
        '[25/Nov/2026:18:00:05 +0900] "GET /b HTTP/1.1" 200 "text/html; charset=utf-8" "x, y : z" rt=0.020',
    ]
    result = read_access_logs(_write(tmp_path / "h.log", lines), "nginx", log_format=fmt, max_malformed_share=1)
    assert result.malformed == 0, result.malformed_examples
    assert {k: s.count for k, s in result.measurement.by_key().items()} == {"GET /a": 1, "GET /b": 1}


# --- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "latency_field", "message"),
    [
        ("", None, "the format is empty"),
        ('$remote_addr "$request" $status $request_time', None, r"no time variable \(\$time_local, \$time_iso8601"),
        ("[$time_local] $status $request_time", None, r"no request \(\$request, or \$request_method"),
        ('[$time_local] "$request_method" $status', None, r"no request"),
        ('[$time_local] "$request" $request_time', None, r"no \$status"),
        ('[$time_local] "$request" $status $-x', None, r"invalid variable name at '\$-x'"),
        ("log_format main escape=xml '[$time_local] \"$request\" $status';", None, "escape=xml is not one of"),
        ('log_format main \'[$time_local] "$request" $status;', None, "unterminated ' string"),
        ("log_format main;", None, "has no format string"),
        ("log_format main '[$time_local] \"$request\" $status'; access_log x;", None, "text after the log_format"),
        ('[$time_local] "$request" $status', "upstream_response_time", r"\$upstream_response_time is not in the"),
        ('[$time_local] "$request" $status rt=$request_time', "bogus", "'bogus' is not one of request_time"),
    ],
)
def test_bad_log_formats_are_refused_in_one_line(text: str, latency_field: str | None, message: str) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        compile_log_format(text, latency_field)
    assert "\n" not in str(caught.value)


def test_combined_by_name_reads_like_the_built_in_parser(tmp_path: Path) -> None:
    lines = [line.split('"rt=')[0] + '"' for line in UPSTREAM_TIME_LINES]
    path = _write(tmp_path / "combined.log", lines)
    named = read_access_logs(path, "nginx", log_format="combined")
    built_in = read_access_logs(path, "nginx")
    assert named.measurement.labels["latency_field"] == "-"
    assert {k: (s.count, s.errors) for k, s in named.measurement.by_key().items()} == {
        k: (s.count, s.errors) for k, s in built_in.measurement.by_key().items()
    }
    assert named.no_latency == built_in.no_latency == 4


def test_from_logs_cli_prints_skip_reasons_and_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alb = _write(tmp_path / "alb.log", [ALB_HTTP, ALB_H2_REDIRECT, ALB_WS, ALB_FIXED_RESPONSE])
    out = tmp_path / "b.json"
    assert main(["baseline", "from-logs", "--format", "alb", str(alb), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lines 4, malformed 0, skipped 3 " in printed
    assert "  skipped by reason: fixed-response 1, redirect 1, websocket 1\n" in printed

    nginx = _write(tmp_path / "access.log", UPSTREAM_TIME_LINES)
    base = ["baseline", "from-logs", "--format", "nginx", str(nginx), "-o", str(out)]
    assert main([*base, "--log-format", UPSTREAM_TIME, "--latency-field", "upstream_response_time"]) == 0
    capsys.readouterr()
    for extra, message in [
        (["--log-format", UPSTREAM_TIME, "--timing-field", "0"], "--timing-field applies to the built-in"),
        (["--latency-field", "upstream_response_time"], "--latency-field applies with --log-format"),
        (["--log-format", "[$time_local] $status"], "the format has no request"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert message in err
    assert main(["baseline", "from-logs", "--format", "alb", str(alb), "-o", str(out), "--log-format", "combined"]) == 2
    assert "--log-format applies to --format nginx, not alb" in capsys.readouterr().err


def test_from_logs_refusal_is_one_line_exit_2_in_the_real_command(tmp_path: Path) -> None:
    nginx = _write(tmp_path / "access.log", UPSTREAM_TIME_LINES)
    done = run_parity(
        "baseline", "from-logs", "--format", "nginx", str(nginx), "-o", str(tmp_path / "b.json"),
        "--log-format", '$remote_addr "$request" $status',
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr
        == "parity: error: --log-format: the format has no time variable ($time_local, $time_iso8601 or $msec)\n"
    )
    assert not (tmp_path / "b.json").exists()
