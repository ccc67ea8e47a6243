"""The Route 53 shifter: the cutover's weights as two weighted records of one name, changed through boto3.

A weighted-DNS migration serves one name (``api.example.com``) from two weighted record sets that differ only
by their ``SetIdentifier`` (say ``old`` and ``new``): a resolver's answer is picked with probability weight /
sum of the weights of the name's records. :class:`Route53Shifter` reads and sets the NEW environment's share
of that group in percent.

Weights: Route 53 weights are integers 0-255. A whole percent ``w`` is written as new ``w`` / old ``100 - w``
(out of 100, readable in the console); a fractional percent out of 200 (0.5 % → 1 / 199, 2.5 % → 5 / 195),
else out of the smallest exact total from 100 to 255 (12.4 % → 31 / 219, out of 250); a percent no total can
express exactly (33.3 %) is refused
(:class:`ShiftError`) rather than rounded, since the gate would judge a split it did not ask for. Reading
gives ``100 × new / (sum of the group's weights)``; a group whose weights are all 0 (Route 53 then answers
every record with equal probability) or that holds other weighted sets with a non-zero weight is refused.

``apply`` sends ONE change batch that UPSERTs both records (Route 53 applies a batch atomically, so no
instant has both changed halves or only one), each record copied as listed (TTL, ResourceRecords or
AliasTarget, HealthCheckId, ...) with only its ``Weight`` replaced; waits for the change to be ``INSYNC``
(``get_change`` every ``poll_s``, bounded by ``insync_timeout_s``); then reads the records back and checks the
weights. UPSERT is idempotent, so botocore's retry of a timed-out change cannot change anything twice; the batch
is sent even when the weights already read as asked (a resumed step whose change was listed but not yet
INSYNC then waits for INSYNC again instead of trusting the listing).

AWS access: the standard credential chain (environment, shared files, SSO, instance or task role) of a
boto3 session; nothing here reads, prints or stores a credential. botocore retries in its ``standard`` mode
(throttling, ``PriorRequestNotComplete``, 5xx and connection errors) at most ``TOTAL_ATTEMPTS`` times with
jittered exponential back-off (1 s base for throttling, capped at 20 s), each attempt bounded by
``CONNECT_TIMEOUT_S`` / ``READ_TIMEOUT_S``. Every failure becomes one :class:`ShiftError` line naming the AWS
error code and what to check, with anything that looks like a credential or a signature removed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from parity.cutover.model import ShiftError

if TYPE_CHECKING:
    from types_boto3_route53.client import Route53Client
    from types_boto3_route53.type_defs import ChangeTypeDef, ResourceRecordSetOutputTypeDef

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_INSYNC_TIMEOUT_S",
    "DEFAULT_POLL_S",
    "MAX_WEIGHT",
    "READ_TIMEOUT_S",
    "TOTAL_ATTEMPTS",
    "Route53Shifter",
    "WeightedTarget",
    "route53_weights",
]

#: Route 53's largest record weight.
MAX_WEIGHT = 255
#: Seconds to wait for a change to be INSYNC by default (AWS documents propagation "generally within 60 s").
DEFAULT_INSYNC_TIMEOUT_S = 300.0
#: Seconds between two ``get_change`` calls while a change is PENDING.
DEFAULT_POLL_S = 5.0
#: Attempts per API call, the first included (botocore ``total_max_attempts``, standard retry mode).
TOTAL_ATTEMPTS = 5
#: Seconds to open a connection to the Route 53 endpoint, per attempt.
CONNECT_TIMEOUT_S = 10.0
#: Seconds to wait for an answer once connected, per attempt.
READ_TIMEOUT_S = 20.0
#: Characters of an AWS error message kept in a ShiftError.
MESSAGE_CHARS = 200
#: Records listed per ListResourceRecordSets page.
PAGE_ITEMS = "100"

# An access key id (AKIA... long-term, ASIA... temporary), a SigV4 credential scope or signature.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b"),
    re.compile(r"(Credential=)[^,\s\"'<]+"),
    re.compile(r"(Signature=)[0-9a-fA-F]+"),
    re.compile(r"(X-Amz-Security-Token[=:]\s*)[^\s&\"'<]+", re.IGNORECASE),
)
# What to check for an AWS error code (IAM actions the shifter needs: list, change, get change).
_HINTS: Mapping[str, str] = {
    "AccessDenied": "the credentials need route53:ListResourceRecordSets, route53:ChangeResourceRecordSets and "
    "route53:GetChange on the hosted zone",
    "AccessDeniedException": "the credentials need route53:ListResourceRecordSets, "
    "route53:ChangeResourceRecordSets and route53:GetChange on the hosted zone",
    "NoSuchHostedZone": "check [cutover.shifter] zone_id (the hosted zone's id, e.g. Z0123456789ABC)",
    "InvalidChangeBatch": "Route 53 refused the change batch: check the two records of the group",
    "InvalidInput": "Route 53 refused the request as invalid",
    "NoSuchChange": "Route 53 does not know the change id any more",
    "Throttling": "Route 53 allows 5 requests per second per account: another tool may be calling it; retry later",
    "ThrottlingException": "Route 53 allows 5 requests per second per account: another tool may be calling it",
    "PriorRequestNotComplete": "an earlier change of this zone is still being applied; retry later",
    "InvalidClientTokenId": "the access key id is not valid (AWS credentials chain)",
    "SignatureDoesNotMatch": "the secret access key does not match (AWS credentials chain)",
    "ExpiredToken": "the session credentials have expired: log in again (e.g. aws sso login)",
    "UnrecognizedClientException": "the credentials are not valid (AWS credentials chain)",
}


def _redact(text: str) -> str:
    """``text`` on one line, at most MESSAGE_CHARS characters, without key ids, credential scopes,
    signatures or session tokens."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "<redacted>", text)
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= MESSAGE_CHARS else one_line[: MESSAGE_CHARS - 1] + "…"


def _aws_failure(doing: str, exc: BaseException) -> ShiftError:
    """One ShiftError line for a boto3/botocore failure while ``doing`` (e.g. "reading the weighted records")."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "unknown error")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = _redact(str(error.get("Message") or ""))
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        parts = [f"Route 53 {doing} failed: {code}" + (f" (HTTP {status})" if status else "")]
        if message:
            parts.append(message)
        if attempts:
            parts.append(f"after {int(attempts) + 1} attempts")
        hint = _HINTS.get(code)
        if hint:
            parts.append(hint)
        return ShiftError("; ".join(parts))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ShiftError(
            f"Route 53 {doing} failed: no usable AWS credentials (standard chain: AWS_* environment, "
            "~/.aws files, SSO, instance or task role)"
        )
    if isinstance(exc, ProfileNotFound):
        return ShiftError(f"Route 53 {doing} failed: {_redact(str(exc))} (AWS_PROFILE / ~/.aws/config)")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return ShiftError(
            f"Route 53 {doing} failed: the endpoint did not answer in time after {TOTAL_ATTEMPTS} attempts "
            f"({_redact(str(exc))}); the change may or may not have been applied: read the weights before acting"
        )
    if isinstance(exc, ConnectionError):
        return ShiftError(f"Route 53 {doing} failed: cannot reach the endpoint ({_redact(str(exc))})")
    if isinstance(exc, BotoCoreError):
        return ShiftError(f"Route 53 {doing} failed: {_redact(str(exc))}")
    return ShiftError(f"Route 53 {doing} failed: {type(exc).__name__}: {_redact(str(exc))}")


def route53_weights(weight_pct: float) -> tuple[int, int]:
    """``(new, old)`` Route 53 weights (integers 0-255) whose share of the new side is exactly ``weight_pct``
    percent: out of 100 for a whole percent, else out of 200 (half percents), else out of the smallest total
    from 100 to 255 that is exact.
    Raises :class:`ShiftError` for a percent outside [0, 100] or that no total ≤ 255 expresses exactly."""
    if not 0.0 <= weight_pct <= 100.0:
        raise ShiftError(f"a weight of {weight_pct:g} % is outside 0-100")
    share = Fraction(weight_pct).limit_denominator(10**6) / 100
    if abs(float(share) * 100 - weight_pct) > 1e-9:
        raise ShiftError(f"a weight of {weight_pct!r} % cannot be written as Route 53 weights")
    totals = (100, 200, *range(share.denominator, MAX_WEIGHT + 1, share.denominator))
    total = next((t for t in totals if t >= 100 and (share * t).denominator == 1), None)
    if total is None:
        raise ShiftError(
            f"a weight of {weight_pct:g} % cannot be written exactly as Route 53 weights (integers 0-{MAX_WEIGHT}); "
            "choose a step such as 0.5, 1, 2.5 or 5 %"
        )
    new = int(share * total)
    return new, total - new


def _normalise_name(name: str) -> str:
    r"""A DNS name as Route 53 compares it: lower case, no trailing dot, ``\052``-style octal escapes decoded."""
    decoded = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name)
    return decoded.rstrip(".").lower()


@dataclass(frozen=True)
class WeightedTarget:
    """The weighted group the shifter moves: the records named ``record_name`` of ``record_type`` in hosted
    zone ``zone_id``, the old side's record ``old_set_id`` and the new side's ``new_set_id``."""

    zone_id: str
    record_name: str
    record_type: str
    old_set_id: str
    new_set_id: str

    def __post_init__(self) -> None:
        if self.old_set_id == self.new_set_id:
            raise ShiftError(f"old_set_id and new_set_id are both {self.old_set_id!r}: they must differ")


def _client_config(total_attempts: int, connect_timeout_s: float, read_timeout_s: float) -> Config:
    """botocore's client settings: standard retries, ``total_attempts`` per call, bounded time-outs (s)."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": total_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )


@dataclass(frozen=True)
class Route53Shifter:
    """:class:`parity.cutover.model.Shifter` over one weighted group of Route 53 (see the module docstring).

    ``client``: a boto3 Route 53 client (build one with :meth:`from_settings`). ``insync_timeout_s``: seconds
    ``apply`` waits for INSYNC; ``poll_s``: seconds between two ``get_change`` calls; ``clock``/``sleep``:
    monotonic seconds and waiting, injectable."""

    client: Route53Client
    target: WeightedTarget
    insync_timeout_s: float = DEFAULT_INSYNC_TIMEOUT_S
    poll_s: float = DEFAULT_POLL_S
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @classmethod
    def from_settings(
        cls,
        zone_id: str,
        record_name: str,
        record_type: str,
        old_set_id: str,
        new_set_id: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        insync_timeout_s: float = DEFAULT_INSYNC_TIMEOUT_S,
        poll_s: float = DEFAULT_POLL_S,
        *,
        session: boto3.Session | None = None,
        total_attempts: int = TOTAL_ATTEMPTS,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> Route53Shifter:
        """A shifter with its own boto3 client: credentials from ``session`` (default: a new
        ``boto3.Session()``, the standard chain), ``region`` (default: the session's, else us-east-1, where
        Route 53's global endpoint signs), ``endpoint_url`` (a VPC endpoint, or moto in tests).
        Credentials are resolved at the first call, not here. Raises :class:`ShiftError` on bad settings."""
        target = WeightedTarget(zone_id, record_name, record_type.upper(), old_set_id, new_set_id)
        try:
            chosen = session if session is not None else boto3.Session()
            client = chosen.client(
                "route53",
                region_name=region or chosen.region_name or "us-east-1",
                endpoint_url=endpoint_url,
                config=_client_config(total_attempts, connect_timeout_s, read_timeout_s),
            )
        except (BotoCoreError, ValueError) as exc:
            raise _aws_failure("client set-up", exc) from None
        return cls(client, target, insync_timeout_s=insync_timeout_s, poll_s=poll_s)

    # -- reading ---------------------------------------------------------------------------------------------

    def _group(self) -> list[ResourceRecordSetOutputTypeDef]:
        """Every record set of the target's name and type (all set ids), in Route 53's order."""
        name, rtype = self.target.record_name, self.target.record_type
        wanted = _normalise_name(name)
        found: list[ResourceRecordSetOutputTypeDef] = []
        start: dict[str, Any] = {"StartRecordName": name, "StartRecordType": rtype}
        try:
            while True:
                page = self.client.list_resource_record_sets(
                    HostedZoneId=self.target.zone_id, MaxItems=PAGE_ITEMS, **start
                )
                for record in page["ResourceRecordSets"]:
                    if _normalise_name(record["Name"]) != wanted or record["Type"] != rtype:
                        return found
                    found.append(record)
                if not page.get("IsTruncated"):
                    return found
                start = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]}
                if page.get("NextRecordIdentifier"):
                    start["StartRecordIdentifier"] = page["NextRecordIdentifier"]
        except (ClientError, BotoCoreError) as exc:
            raise _aws_failure("reading the weighted records", exc) from None

    def _pair(self) -> tuple[ResourceRecordSetOutputTypeDef, ResourceRecordSetOutputTypeDef]:
        """The old and the new weighted record as listed. Raises ShiftError when either is missing, is not
        weighted, or the group holds other weighted records with traffic."""
        t = self.target
        group = self._group()
        by_id = {record.get("SetIdentifier"): record for record in group}
        where = f"{t.record_name} {t.record_type} in zone {t.zone_id}"
        missing = [set_id for set_id in (t.old_set_id, t.new_set_id) if set_id not in by_id]
        if missing:
            listed = ", ".join(sorted(str(r.get("SetIdentifier")) for r in group)) or "none"
            raise ShiftError(
                f"Route 53 has no weighted record {' or '.join(map(repr, missing))} for {where} "
                f"(set ids found: {listed}); check [cutover.shifter] old_set_id / new_set_id / record_name"
            )
        old, new = by_id[t.old_set_id], by_id[t.new_set_id]
        for record in (old, new):
            if "Weight" not in record:
                raise ShiftError(f"the record {record.get('SetIdentifier')!r} of {where} is not a weighted record")
            if "TrafficPolicyInstanceId" in record:
                raise ShiftError(
                    f"the record {record.get('SetIdentifier')!r} of {where} is managed by a traffic policy: "
                    "change the policy instead"
                )
        others = [r for r in group if r.get("SetIdentifier") not in (t.old_set_id, t.new_set_id)]
        busy = [f"{r.get('SetIdentifier')!r} (weight {r.get('Weight', 0)})" for r in others if r.get("Weight", 0)]
        if busy:
            raise ShiftError(
                f"{where} has other weighted records with traffic: {', '.join(busy)}; the gate would not control "
                "the split"
            )
        return old, new

    @staticmethod
    def _share(old: ResourceRecordSetOutputTypeDef, new: ResourceRecordSetOutputTypeDef, where: str) -> float:
        """The new side's percent from the two records' weights; ShiftError when both are 0."""
        old_w, new_w = int(old.get("Weight", 0)), int(new.get("Weight", 0))
        if old_w + new_w == 0:
            raise ShiftError(
                f"both weighted records of {where} have weight 0: Route 53 then splits evenly, which is no "
                "cutover step; set the weights first"
            )
        return 100.0 * new_w / (old_w + new_w)

    def _where(self) -> str:
        t = self.target
        return f"{t.record_name} {t.record_type} in zone {t.zone_id}"

    def read(self) -> float:
        """The live percent of the group's weight on the new record. Raises ShiftError (AWS failure, a
        missing record, other weighted records with traffic, both weights 0)."""
        old, new = self._pair()
        return self._share(old, new, self._where())

    # -- changing --------------------------------------------------------------------------------------------

    def describe(self, weight_pct: float) -> str:
        """One line: the change batch ``apply(weight_pct)`` sends (or why it cannot)."""
        t = self.target
        try:
            new_w, old_w = route53_weights(weight_pct)
        except ShiftError as exc:
            return f"Route 53: cannot set {weight_pct:g} %: {exc.reason}"
        return (
            f"Route 53 zone {t.zone_id}: UPSERT {t.record_name} {t.record_type} weights "
            f"{t.old_set_id!r}={old_w}, {t.new_set_id!r}={new_w} ({weight_pct:g} % new), one batch, wait INSYNC"
        )

    def apply(self, weight_pct: float) -> None:
        """Set the new record's weight to ``weight_pct`` percent of the group and the old one's to the rest in
        one change batch, wait until INSYNC, read back and verify. Raises ShiftError (the weights are then
        unknown only when the message says so: read them before acting)."""
        new_w, old_w = route53_weights(weight_pct)
        old, new = self._pair()
        changes: list[ChangeTypeDef] = [
            {"Action": "UPSERT", "ResourceRecordSet": {**old, "Weight": old_w}},
            {"Action": "UPSERT", "ResourceRecordSet": {**new, "Weight": new_w}},
        ]
        try:
            answer = self.client.change_resource_record_sets(
                HostedZoneId=self.target.zone_id,
                ChangeBatch={
                    "Comment": f"parity cutover: {weight_pct:g} % to {self.target.new_set_id}",
                    "Changes": changes,
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise _aws_failure("change of the weights", exc) from None
        info = answer["ChangeInfo"]
        self._wait_insync(info["Id"], info["Status"])
        live = self.read()
        if abs(live - weight_pct) > 1e-9:
            raise ShiftError(
                f"Route 53 read-back of {self._where()} gives {live:g} % new after setting {weight_pct:g} % "
                "(another change may have raced this one)"
            )

    def _wait_insync(self, change_id: str, status: str) -> None:
        """Poll ``get_change`` every poll_s until INSYNC; ShiftError after insync_timeout_s seconds, or when the
        status cannot be read (both say the change was accepted: the weights are changing)."""
        deadline = self.clock() + self.insync_timeout_s
        while status != "INSYNC":
            if self.clock() >= deadline:
                raise ShiftError(
                    f"Route 53 change {change_id} is still {status} after {self.insync_timeout_s:g} s; it was "
                    "accepted and will apply: read the weights before resuming"
                )
            self.sleep(self.poll_s)
            try:
                status = self.client.get_change(Id=change_id)["ChangeInfo"]["Status"]
            except (ClientError, BotoCoreError) as exc:
                failure = _aws_failure(f"status of change {change_id}", exc)
                raise ShiftError(
                    f"{failure.reason}; change {change_id} was accepted and will apply: read the weights before acting"
                ) from None
