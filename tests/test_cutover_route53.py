"""parity.cutover.route53 with the real boto3 calls: against moto's Route 53 server (parity.demo.dns) for what moto
serves, and against a tiny loopback server answering in Route 53's XML (success and error formats) for what moto
cannot do: PENDING changes, throttling, AccessDenied, time-outs, a read-back that disagrees."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from parity.cutover.model import Shifter, ShiftError
from parity.cutover.route53 import Route53Shifter, route53_weights
from parity.demo.dns import DEMO_NEW_SET_ID, DEMO_OLD_SET_ID, DEMO_RECORD, DemoDns, demo_session

if TYPE_CHECKING:
    from types_boto3_route53.client import Route53Client

from tests.conftest import free_port

ZONE = "parity-demo.test"
NS = "https://route53.amazonaws.com/doc/2013-04-01/"
TEST_KEY_ID = "AKIAPARITYTEST000000"


@pytest.fixture(scope="module")
def dns() -> Iterator[DemoDns]:
    with DemoDns() as server:
        yield server


def _group(
    client: Route53Client, zone_id: str, name: str, weights: tuple[int, int], rtype: str = "CNAME", **extra: Any
) -> None:
    """Create a weighted group ``name`` (set ids old/new with ``weights``) of CNAMEs (or ``extra`` fields)."""
    changes: list[Any] = []
    for set_id, weight in zip(("old", "new"), weights, strict=True):
        record: dict[str, Any] = {"Name": name, "Type": rtype, "SetIdentifier": set_id, "Weight": weight}
        record |= extra.get(set_id) or {"TTL": 60, "ResourceRecords": [{"Value": f"{set_id}-lb.{ZONE}"}]}
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def _records(client: Route53Client, zone_id: str) -> dict[tuple[str, str, str | None], Any]:
    listed = client.list_resource_record_sets(HostedZoneId=zone_id, MaxItems="300")["ResourceRecordSets"]
    return {(r["Name"], r["Type"], r.get("SetIdentifier")): r for r in listed}


def _shifter(dns: DemoDns, name: str, rtype: str = "CNAME", **options: Any) -> Route53Shifter:
    return Route53Shifter.from_settings(
        dns.zone_id, name, rtype, "old", "new", endpoint_url=dns.endpoint_url, session=demo_session(), **options
    )


# -- weights ---------------------------------------------------------------------------------------------------


def test_percent_maps_to_exact_integer_weights() -> None:
    assert route53_weights(0) == (0, 100)
    assert route53_weights(5) == (5, 95)
    assert route53_weights(100) == (100, 0)
    assert route53_weights(0.5) == (1, 199)
    assert route53_weights(2.5) == (5, 195)
    for bad in (33.3, 0.1, -1, 100.5):
        with pytest.raises(ShiftError):
            route53_weights(bad)


# -- against moto's server -------------------------------------------------------------------------------------


def test_demo_group_starts_all_old_and_shifts_both_records(dns: DemoDns) -> None:
    shifter: Shifter = dns.shifter(poll_s=0.01)  # mypy checks the Shifter protocol here
    client = dns.client()
    assert shifter.read() == 0.0
    _group(client, dns.zone_id, f"www.{ZONE}", (100, 0))  # another name, same set ids: never touched
    client.change_resource_record_sets(
        HostedZoneId=dns.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"{DEMO_RECORD}",
                        "Type": "TXT",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": '"not a weighted record"'}],
                    },
                }
            ]
        },
    )
    before = _records(client, dns.zone_id)
    try:
        shifter.apply(5)
        assert shifter.read() == 5.0
        after = _records(client, dns.zone_id)
        name = f"{DEMO_RECORD}."
        old, new = after[(name, "CNAME", DEMO_OLD_SET_ID)], after[(name, "CNAME", DEMO_NEW_SET_ID)]
        assert (old["Weight"], new["Weight"]) == (95, 5)
        for record in (old, new):  # everything but the weight kept
            was = before[(name, "CNAME", record["SetIdentifier"])]
            assert {k: v for k, v in record.items() if k != "Weight"} == {k: v for k, v in was.items() if k != "Weight"}
        untouched = [key for key in before if key[2] is None or key[0] != name]
        assert all(after[key] == before[key] for key in untouched)
        shifter.apply(0.5)
        assert shifter.read() == 0.5
        raw = _records(client, dns.zone_id)
        assert (raw[(name, "CNAME", "old")]["Weight"], raw[(name, "CNAME", "new")]["Weight"]) == (199, 1)
        with pytest.raises(ShiftError, match=r"33\.3 %"):
            shifter.apply(33.3)
        assert shifter.read() == 0.5  # refused before any change
        assert "'old'=199, 'new'=1" in shifter.describe(0.5)
        assert "\n" not in shifter.describe(33.3)
    finally:
        shifter.apply(0)


def test_alias_records_keep_their_target_and_health_check(dns: DemoDns) -> None:
    client = dns.client()
    name = f"alias.{ZONE}"
    alias = {
        side: {
            "AliasTarget": {
                "HostedZoneId": "Z2ABCDEFGHIJKL",
                "DNSName": f"{side}-lb.elb.test.",
                "EvaluateTargetHealth": True,
            },
            "HealthCheckId": f"hc-{side}",
        }
        for side in ("old", "new")
    }
    _group(client, dns.zone_id, name, (100, 0), rtype="A", **alias)
    shifter = _shifter(dns, name, "A", poll_s=0.01)
    shifter.apply(10)
    records = _records(client, dns.zone_id)
    for side, weight in (("old", 90), ("new", 10)):
        record = records[(f"{name}.", "A", side)]
        assert record["Weight"] == weight
        assert record["AliasTarget"]["DNSName"] == f"{side}-lb.elb.test."
        assert record["HealthCheckId"] == f"hc-{side}"
    assert shifter.read() == 10.0


def test_unknown_zone_missing_set_id_and_bad_groups_are_one_line_errors(dns: DemoDns) -> None:
    client = dns.client()
    wrong_zone = Route53Shifter.from_settings(
        "ZNOSUCHZONE00", DEMO_RECORD, "CNAME", "old", "new", endpoint_url=dns.endpoint_url, session=demo_session()
    )
    with pytest.raises(ShiftError, match="NoSuchHostedZone") as caught:
        wrong_zone.read()
    assert "zone_id" in caught.value.reason
    assert "\n" not in caught.value.reason

    missing = Route53Shifter.from_settings(
        dns.zone_id, DEMO_RECORD, "CNAME", "old", "green", endpoint_url=dns.endpoint_url, session=demo_session()
    )
    with pytest.raises(ShiftError, match="no weighted record 'green'"):
        missing.apply(5)
    assert dns.shifter().read() == 0.0  # nothing changed

    zero = f"zero.{ZONE}"
    _group(client, dns.zone_id, zero, (0, 0))
    with pytest.raises(ShiftError, match="weight 0"):
        _shifter(dns, zero).read()

    crowded = f"crowded.{ZONE}"
    _group(client, dns.zone_id, crowded, (90, 0))
    client.change_resource_record_sets(
        HostedZoneId=dns.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": crowded,
                        "Type": "CNAME",
                        "SetIdentifier": "canary",
                        "Weight": 10,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": f"canary.{ZONE}"}],
                    },
                }
            ]
        },
    )
    with pytest.raises(ShiftError, match="other weighted records with traffic: 'canary'"):
        _shifter(dns, crowded).apply(5)

    with pytest.raises(ShiftError, match="must differ"):
        Route53Shifter.from_settings(dns.zone_id, DEMO_RECORD, "CNAME", "old", "old", session=demo_session())


# -- a loopback server speaking Route 53's XML, for what moto cannot do -------------------------------------------


class FakeRoute53:
    """Route 53's REST-XML on 127.0.0.1 for one weighted CNAME group (old/new), one record per list page.

    ``error``: (status, code) answered to every request instead; ``pending``: GetChange answers PENDING that many
    times before INSYNC; ``ignore_changes``: accept changes without applying them; ``stall``: hold each answer
    until the server closes. ``requests``: (method, path, body) seen."""

    def __init__(self) -> None:
        self.weights = {"old": 100, "new": 0}
        self.error: tuple[int, str] | None = None
        self.change_error: tuple[int, str] | None = None  # answered to GetChange only
        self.pending = 0
        self.ignore_changes = False
        self.stall = False
        self.requests: list[tuple[str, str, str]] = []
        self.released = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.requests.append((self.command, self.path, body))
                if fake.stall:
                    fake.released.wait(30)
                    return
                error = fake.change_error if "/change/" in self.path else None
                if error is not None or fake.error is not None:
                    status, code = error or fake.error  # type: ignore[misc]
                    auth = self.headers.get("Authorization", "")
                    message = f"User is not authorized to perform this; request signed with {auth}"
                    self._send(status, _error_xml(code, message))
                    return
                self._send(200, fake.answer(self.command, self.path, body))

            do_GET = do_POST = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, method: str, path: str, body: str) -> str:
        if "/rrset" in path and method == "GET":
            start = re.search(r"identifier=([^&]+)", path)
            order = ["new", "old"]  # Route 53 lists a group's sets in its own order
            i = order.index(start.group(1)) if start else 0
            truncated = i + 1 < len(order)
            following = (
                f"<NextRecordName>api.{ZONE}.</NextRecordName><NextRecordType>CNAME</NextRecordType>"
                f"<NextRecordIdentifier>{order[i + 1]}</NextRecordIdentifier>"
                if truncated
                else ""
            )
            return (
                f'<?xml version="1.0"?><ListResourceRecordSetsResponse xmlns="{NS}"><ResourceRecordSets>'
                f"{_record_xml(order[i], self.weights[order[i]])}</ResourceRecordSets>"
                f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{following}<MaxItems>1</MaxItems>"
                "</ListResourceRecordSetsResponse>"
            )
        if "/rrset" in path and method == "POST":
            if not self.ignore_changes:
                for set_id, weight in re.findall(r"<SetIdentifier>(\w+)</SetIdentifier><Weight>(\d+)</Weight>", body):
                    self.weights[set_id] = int(weight)
            return _change_xml("ChangeResourceRecordSetsResponse", "PENDING" if self.pending else "INSYNC")
        if "/change/" in path:
            status = "PENDING" if self.pending > 0 else "INSYNC"
            self.pending -= 1
            return _change_xml("GetChangeResponse", status)
        return _error_xml("InvalidInput", f"unexpected {method} {path}")

    def shifter(self, **options: Any) -> Route53Shifter:
        session = demo_session(access_key_id=TEST_KEY_ID, secret_access_key="parity-test-secret")
        return Route53Shifter.from_settings(
            "ZFAKE", f"api.{ZONE}", "CNAME", "old", "new", endpoint_url=self.url, session=session, **options
        )


def _record_xml(set_id: str, weight: int) -> str:
    return (
        f"<ResourceRecordSet><Name>api.{ZONE}.</Name><Type>CNAME</Type><SetIdentifier>{set_id}</SetIdentifier>"
        f"<Weight>{weight}</Weight><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>{set_id}-lb.{ZONE}</Value>"
        "</ResourceRecord></ResourceRecords></ResourceRecordSet>"
    )


def _change_xml(root: str, status: str) -> str:
    return (
        f'<?xml version="1.0"?><{root} xmlns="{NS}"><ChangeInfo><Id>/change/C0PARITY</Id><Status>{status}</Status>'
        f"<SubmittedAt>2026-12-01T00:00:00Z</SubmittedAt></ChangeInfo></{root}>"
    )


def _error_xml(code: str, message: str) -> str:
    return (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>r-parity</RequestId></ErrorResponse>"
    )


@pytest.fixture
def fake() -> Iterator[FakeRoute53]:
    server = FakeRoute53()
    server.thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(5)


def test_one_batch_upserts_both_and_waits_for_insync(fake: FakeRoute53) -> None:
    fake.pending = 2
    slept: list[float] = []
    shifter = fake.shifter(poll_s=7.0)
    shifter = Route53Shifter(shifter.client, shifter.target, poll_s=7.0, sleep=slept.append)
    assert shifter.read() == 0.0  # both pages of the group were read
    shifter.apply(10)
    assert fake.weights == {"old": 90, "new": 10}
    posts = [body for method, _, body in fake.requests if method == "POST"]
    assert len(posts) == 1
    assert posts[0].count("<Action>UPSERT</Action>") == 2
    assert "<TTL>60</TTL>" in posts[0]
    assert "old-lb." in posts[0]
    assert "new-lb." in posts[0]
    # the change answered PENDING, GetChange PENDING twice, then INSYNC: three polls, each after poll_s
    assert sum("/change/" in path for _, path, _ in fake.requests) == 3
    assert slept == [7.0, 7.0, 7.0]


def test_insync_timeout_and_disagreeing_read_back_are_shift_errors(fake: FakeRoute53) -> None:
    fake.pending = 10**6
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    base = fake.shifter()
    shifter = Route53Shifter(base.client, base.target, insync_timeout_s=30, poll_s=5, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(ShiftError, match=r"C0PARITY is still PENDING after 30 s.*read the weights"):
        shifter.apply(5)
    assert fake.weights == {"old": 95, "new": 5}  # accepted: it applies even though INSYNC was not seen
    fake.pending = 0
    fake.ignore_changes = True
    with pytest.raises(ShiftError, match=r"read-back .* gives 5 % new after setting 50 %"):
        base.apply(50)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "Throttling", r"Throttling \(HTTP 400\).*after 2 attempts.*5 requests per second"),
        (403, "AccessDenied", r"AccessDenied \(HTTP 403\).*route53:ChangeResourceRecordSets"),
        (404, "NoSuchHostedZone", r"NoSuchHostedZone \(HTTP 404\).*zone_id"),
        (400, "InvalidChangeBatch", r"InvalidChangeBatch"),
        (503, "ServiceUnavailable", r"ServiceUnavailable \(HTTP 503\).*after 2 attempts"),
    ],
)
def test_aws_errors_are_one_line_without_credentials(fake: FakeRoute53, status: int, code: str, expected: str) -> None:
    fake.error = (status, code)
    with pytest.raises(ShiftError, match=expected) as caught:
        fake.shifter(total_attempts=2).apply(5)
    reason = caught.value.reason
    assert "\n" not in reason
    assert len(reason) < 600
    assert TEST_KEY_ID not in reason
    assert "parity-test-secret" not in reason
    assert "Credential=<redacted>" in reason or "Credential" not in reason
    assert "Signature=" not in reason or "Signature=<redacted>" in reason
    retried = code in {"Throttling", "ServiceUnavailable"}  # botocore's standard mode: throttling and 5xx
    assert len(fake.requests) == (2 if retried else 1)
    assert fake.weights == {"old": 100, "new": 0}


def test_endpoint_time_out_and_refused_connection(fake: FakeRoute53) -> None:
    fake.stall = True
    with pytest.raises(ShiftError, match=r"did not answer in time.*read the weights before acting"):
        fake.shifter(total_attempts=1, read_timeout_s=0.5).read()
    closed = Route53Shifter.from_settings(
        "ZFAKE", f"api.{ZONE}", "CNAME", "old", "new",
        endpoint_url=f"http://127.0.0.1:{free_port()}", session=demo_session(), total_attempts=1,
    )  # fmt: skip
    with pytest.raises(ShiftError, match="cannot reach the endpoint"):
        closed.read()


def test_no_credentials_from_the_chain_is_one_line(fake: FakeRoute53, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup off loopback
    shifter = Route53Shifter.from_settings("ZFAKE", f"api.{ZONE}", "CNAME", "old", "new", endpoint_url=fake.url)
    with pytest.raises(ShiftError, match="no usable AWS credentials"):
        shifter.read()
    assert fake.requests == []


def test_the_demo_talks_to_its_loopback_moto_directly_whatever_the_proxy_environment(
    dns: DemoDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user behind a proxy (HTTP_PROXY set, NO_PROXY without 127.0.0.1): botocore sends every request to the
    # proxy, so the demo's fake-keyed Route 53 calls would leave loopback, and fail when the proxy refuses them.
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert dns.shifter(total_attempts=1).read() == 0.0
    assert dns.client().get_hosted_zone(Id=dns.zone_id)["HostedZone"]["Name"] == f"{ZONE}."


def test_a_change_whose_status_cannot_be_read_says_it_was_accepted(fake: FakeRoute53) -> None:
    # The batch was accepted (PENDING), then GetChange is refused (an IAM policy without route53:GetChange): the
    # weights ARE changing. The line must not read as a change that did not happen (a "failed" rollback that ran).
    fake.pending = 1
    fake.change_error = (403, "AccessDenied")
    base = fake.shifter(total_attempts=1)
    shifter = Route53Shifter(base.client, base.target, poll_s=0.0)
    with pytest.raises(ShiftError, match=r"AccessDenied.*C0PARITY was accepted and will apply.*read the weights"):
        shifter.apply(5)
    assert fake.weights == {"old": 95, "new": 5}
