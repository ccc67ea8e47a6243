"""Traffic shifters of ``parity cutover`` other than Route 53: the user's ``command`` and ``manual``.

Both implement :class:`parity.cutover.model.Shifter`. Weights are percent of traffic to the NEW environment;
``{weight}`` is filled in as the new side's percent and ``{old_weight}`` as ``100 - weight`` (``%g``: 5, 2.5).
:func:`make_shifter` builds the configured one (``route53`` from ``parity.cutover.route53``).
"""

from __future__ import annotations

import math
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from parity.cutover.model import Shifter, ShiftError
from parity.cutover.settings import ShifterSettings
from parity.errors import BadInput

__all__ = ["CommandShifter", "ManualShifter", "format_weight", "make_shifter", "parse_weight"]

#: Characters of a failed command's output kept in the ShiftError (its last line).
_OUTPUT_CHARS = 200
#: Two weights closer than this (percent) are the same weight.
WEIGHT_EPS = 1e-6


def format_weight(weight_pct: float) -> str:
    """A weight as the command and the person see it: ``%g`` (5, 2.5, 100)."""
    return f"{weight_pct:g}"


def parse_weight(text: str, what: str) -> float:
    """A percentage from 0 to 100 written by a command or a person; ValueError (one line) otherwise."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise ValueError(f"{what}: expected a percentage from 0 to 100, got {text.strip()[:_OUTPUT_CHARS]!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ValueError(f"{what}: expected a percentage from 0 to 100, got {value:g}")
    return value


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:_OUTPUT_CHARS] if lines else ""


@dataclass(frozen=True)
class CommandShifter:
    """Runs ``command`` (no shell: split like a shell would, then ``{weight}``/``{old_weight}`` filled in per
    argument) to set the weights; ``read_command`` (optional) prints the live new weight, and is read back
    after every change to verify it. Each run is bounded by ``timeout_s``. A non-zero exit, a time-out, a
    read-back that disagrees or prints no percentage: :class:`ShiftError`."""

    command: str
    read_command: str | None = None
    timeout_s: float = 120.0

    def _argv(self, template: str, weight_pct: float) -> list[str]:
        values = {"weight": format_weight(weight_pct), "old_weight": format_weight(100.0 - weight_pct)}
        return [part.format(**values) for part in shlex.split(template)]

    def _run(self, argv: list[str], what: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ShiftError(f"{what} did not finish within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise ShiftError(f"{what} could not run: {exc.strerror or exc}") from None
        if done.returncode != 0:
            said = _last_line(done.stderr) or _last_line(done.stdout)
            raise ShiftError(f"{what} exited with {done.returncode}" + (f": {said}" if said else ""))
        return done.stdout

    def describe(self, weight_pct: float) -> str:
        return f"run: {shlex.join(self._argv(self.command, weight_pct))}"

    def read(self) -> float | None:
        if self.read_command is None:
            return None
        out = self._run(self._argv(self.read_command, 0.0), "the read_command")
        try:
            return parse_weight(_last_line(out), "the read_command's output")
        except ValueError as exc:
            raise ShiftError(str(exc)) from None

    def apply(self, weight_pct: float) -> None:
        self._run(self._argv(self.command, weight_pct), f"the shift command (weight {format_weight(weight_pct)}%)")
        live = self.read()
        if live is not None and abs(live - weight_pct) > WEIGHT_EPS:
            raise ShiftError(
                f"read back {format_weight(live)}% after setting {format_weight(weight_pct)}%: "
                "the change is not in effect"
            )


def _no_ask(prompt: str) -> str:
    raise EOFError(prompt)


@dataclass(frozen=True)
class ManualShifter:
    """A person makes each change: ``say`` shows it, ``ask`` waits for the answer (``yes`` when it is in
    effect). ``read()`` is None (the driver asks the person for the live weight when it needs it)."""

    say: Callable[[str], None] = field(default=print)
    ask: Callable[[str], str] = field(default=_no_ask)

    def describe(self, weight_pct: float) -> str:
        return (
            f"a person sets the weights: new environment {format_weight(weight_pct)}%, "
            f"old environment {format_weight(100.0 - weight_pct)}%"
        )

    def read(self) -> float | None:
        return None

    def apply(self, weight_pct: float) -> None:
        self.say(f"change the weights now: {self.describe(weight_pct)}")
        try:
            answer = self.ask("type 'yes' once the change is in effect (anything else: it was not made): ")
        except EOFError:
            raise ShiftError(f"no confirmation of the change to {format_weight(weight_pct)}% (no input)") from None
        if answer.strip().lower() not in ("yes", "y"):
            raise ShiftError(
                f"the change to {format_weight(weight_pct)}% was not confirmed (answer {answer.strip()[:40]!r})"
            )


def make_shifter(
    settings: ShifterSettings, *, say: Callable[[str], None] = print, ask: Callable[[str], str] = _no_ask
) -> Shifter:
    """The configured shifter. ``route53`` is built by ``parity.cutover.route53.Route53Shifter.from_settings``
    (boto3: credentials from the standard AWS chain); BadInput when it cannot be built."""
    if settings.kind == "command":
        assert settings.command is not None  # checked when the settings were read
        return CommandShifter(settings.command, settings.read_command, settings.timeout_s)
    if settings.kind == "manual":
        return ManualShifter(say=say, ask=ask)
    from parity.cutover.route53 import Route53Shifter  # boto3: imported only when used

    zone_id, record_name = settings.zone_id, settings.record_name
    old_set_id, new_set_id = settings.old_set_id, settings.new_set_id
    if zone_id is None or record_name is None or old_set_id is None or new_set_id is None:
        raise BadInput("cutover.shifter: route53 needs zone_id, record_name, old_set_id and new_set_id")
    try:
        shifter: Shifter = Route53Shifter.from_settings(
            zone_id,
            record_name,
            settings.record_type,
            old_set_id,
            new_set_id,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
            insync_timeout_s=settings.insync_timeout_s,
        )
    except ShiftError as exc:
        raise BadInput(f"cutover.shifter: {exc.reason}") from None
    return shifter
