"""A Route 53 API on loopback for the cutover demo and the tests: moto's server plus a demo zone.

:class:`DemoDns` starts moto's threaded server (``moto.server.ThreadedMotoServer``, the ``demo`` extra) on
127.0.0.1 at a free port, creates the hosted zone ``DEMO_ZONE`` and the weighted group ``DEMO_RECORD`` (CNAME,
set ids ``old`` → weight 100 and ``new`` → weight 0, TTL ``ttl_s``), and hands out boto3 sessions and
:class:`~parity.cutover.route53.Route53Shifter` s that talk to it with the real boto3 calls.

Credentials: the demo's sessions carry fixed fake keys (:data:`DEMO_ACCESS_KEY_ID`) set on their own botocore
session, whose config and credentials files are ``os.devnull`` and whose profile is unset: nothing reads or
changes the user's AWS environment variables, ``~/.aws`` files or instance role, and no request leaves
loopback (the sessions' clients ignore ``HTTP_PROXY`` / ``HTTPS_PROXY``). moto keeps its state in this
process (its backends are module-global): every :class:`DemoDns` makes its own zone, so two at once do not see
each other's records.

moto answers every change ``INSYNC`` at once (``moto/route53/responses.py``: ``get_change`` and
``change_resource_record_sets`` return ``Status: INSYNC``) and stores weighted records by name, type and
``SetIdentifier`` (``FakeZone.upsert_rrset``); it does not check credentials.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config

from parity.cutover.route53 import Route53Shifter

if TYPE_CHECKING:
    from types_boto3_route53.client import Route53Client

__all__ = [
    "DEMO_ACCESS_KEY_ID",
    "DEMO_NEW_SET_ID",
    "DEMO_OLD_SET_ID",
    "DEMO_RECORD",
    "DEMO_REGION",
    "DEMO_ZONE",
    "DemoDns",
    "demo_session",
]

#: Fake credentials of the demo's own sessions (moto accepts any; these are no AWS account's).
DEMO_ACCESS_KEY_ID = "parity-demo-key"
DEMO_SECRET_ACCESS_KEY = "parity-demo-secret"
#: Region the demo's sessions sign for (Route 53 is global; its endpoint signs for us-east-1).
DEMO_REGION = "us-east-1"
#: The demo's hosted zone (``.test`` is reserved for testing, RFC 2606) and its weighted name.
DEMO_ZONE = "parity-demo.test"
DEMO_RECORD = f"api.{DEMO_ZONE}"
DEMO_OLD_SET_ID = "old"
DEMO_NEW_SET_ID = "new"
#: TTL (s) of the demo's weighted records.
DEMO_TTL_S = 1


def demo_session(
    region: str = DEMO_REGION,
    *,
    access_key_id: str = DEMO_ACCESS_KEY_ID,
    secret_access_key: str = DEMO_SECRET_ACCESS_KEY,
) -> boto3.Session:
    """A boto3 session with fake keys (the demo's by default) that reads no AWS configuration: its config and
    credentials files are ``os.devnull``, its profile unset (an ``AWS_PROFILE`` of the user is not consulted)
    and its credentials set explicitly (the credential chain never runs); its clients use no proxy (an
    ``HTTP_PROXY`` of the user would take the loopback calls off loopback)."""
    core = botocore.session.Session()
    # The config store's overrides win over instance variables, the environment and the files alike (a None
    # instance variable would fall through to AWS_PROFILE).
    store = core.get_component("config_store")
    store.set_config_variable("config_file", os.devnull)
    store.set_config_variable("credentials_file", os.devnull)
    store.set_config_variable("profile", None)
    core.set_credentials(access_key_id, secret_access_key)
    # Never via a proxy: botocore takes HTTP(S)_PROXY from the environment unless NO_PROXY names the host, and the
    # demo's moto is on loopback (an explicit empty proxy map wins; a client's own config merges over it).
    core.set_default_client_config(Config(proxies={}))
    return boto3.Session(botocore_session=core, region_name=region)


@dataclass(frozen=True)
class _Zone:
    zone_id: str
    name: str


class DemoDns:
    """moto's Route 53 on 127.0.0.1 with the demo's weighted group (old 100 / new 0). Use as a context manager
    or call :meth:`start` and :meth:`close`. ``ttl_s``: the records' TTL in seconds."""

    def __init__(self, *, ttl_s: int = DEMO_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._server: Any = None
        self._zone: _Zone | None = None
        self.endpoint_url = ""

    def start(self) -> DemoDns:
        """Start the server on a free loopback port and create the zone and the two weighted records."""
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO on stderr unless its logger has a level: the demo stays quiet.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        try:
            self._zone = self._create_zone()
        except BaseException:
            self.close()
            raise
        return self

    def _create_zone(self) -> _Zone:
        client = self.client()
        zone = client.create_hosted_zone(Name=DEMO_ZONE, CallerReference=f"parity-demo-{uuid.uuid4()}")
        zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
        client.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Comment": "parity demo: the weighted group of the cutover",
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": DEMO_RECORD,
                            "Type": "CNAME",
                            "SetIdentifier": set_id,
                            "Weight": weight,
                            "TTL": self.ttl_s,
                            "ResourceRecords": [{"Value": f"{set_id}.{DEMO_ZONE}"}],
                        },
                    }
                    for set_id, weight in ((DEMO_OLD_SET_ID, 100), (DEMO_NEW_SET_ID, 0))
                ],
            },
        )
        return _Zone(zone_id, DEMO_ZONE)

    @property
    def zone_id(self) -> str:
        """The demo zone's id (without the ``/hostedzone/`` prefix)."""
        if self._zone is None:
            raise RuntimeError("DemoDns is not started")
        return self._zone.zone_id

    def client(self) -> Route53Client:
        """A boto3 Route 53 client of a demo session for this server."""
        return demo_session().client("route53", endpoint_url=self.endpoint_url)

    def shifter(self, **options: Any) -> Route53Shifter:
        """A Route53Shifter of the demo's weighted group, through a demo session (``options``: the other
        keywords of :meth:`Route53Shifter.from_settings`, e.g. ``poll_s``)."""
        return Route53Shifter.from_settings(
            self.zone_id,
            DEMO_RECORD,
            "CNAME",
            DEMO_OLD_SET_ID,
            DEMO_NEW_SET_ID,
            region=DEMO_REGION,
            endpoint_url=self.endpoint_url,
            session=demo_session(),
            **options,
        )

    def settings(self) -> dict[str, str]:
        """The ``[cutover.shifter]`` keys of this demo group (kind route53) as the driver's settings read them."""
        return {
            "kind": "route53",
            "zone_id": self.zone_id,
            "record_name": DEMO_RECORD,
            "record_type": "CNAME",
            "old_set_id": DEMO_OLD_SET_ID,
            "new_set_id": DEMO_NEW_SET_ID,
            "region": DEMO_REGION,
            "endpoint_url": self.endpoint_url,
        }

    def close(self) -> None:
        """Stop the server (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> DemoDns:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
