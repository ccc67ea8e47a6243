"""Outputs that cannot mislead: a partial run says so first in every output, hostile endpoint names are
neutralised everywhere, and report sets are replaced as a whole (also when the writer is SIGKILLed)."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
import xmlschema

from parity import measurement_json
from parity.datadog import parity_event, parity_series
from parity.judge.compare import compare
from parity.judge.result import ParityResult, Verdict
from parity.model import Endpoint, EndpointStats, Measurement
from parity.report import write
from parity.report.ci import junit_xml, parity_json, summary_md
from parity.report.context import RunMeta
from parity.report.html import render_html
from parity.report.terminal import terminal_summary
from parity.report.text import MAX_NAME_CHARS, ZWSP, no_mentions, one_line
from parity.report.write import REPORT_FILES, write_reports
from tests.conftest import lognormal_side

META = RunMeta("0.1.0-test", "0123abc", datetime(2026, 3, 1, 12, tzinfo=UTC), None, "parity compare a b")
SCHEMA = Path(__file__).resolve().parent / "fixtures" / "junit.xsd"


def _partial_pass() -> ParityResult:
    side = lognormal_side({"GET /a": 20, "GET /b": 5})
    stopped = replace(side, labels={"complete": "no", "stopped": "SIGTERM"})
    return compare(side, stopped, names=("base.json", "cand.json"))


def _partial_fail() -> ParityResult:
    base = lognormal_side({"GET /a": 20, "GET /b": 5}, seed=1)
    cand = lognormal_side({"GET /a": 40, "GET /b": 5}, seed=2)
    return compare(base, replace(cand, labels={"aborted": "error rate 9% over 5%"}), names=("base.json", "cand.json"))


# --- a partial run says so first, everywhere ------------------------------------------------------------


@pytest.mark.parametrize(("make", "verdict"), [(_partial_pass, "INCONCLUSIVE"), (_partial_fail, "FAIL")])
def test_every_output_leads_with_a_partial_run(make: object, verdict: str) -> None:
    result = make()  # type: ignore[operator]
    assert result.verdict.value.upper() == verdict
    words = "partial run: the candidate (cand.json) is partial: "

    first = terminal_summary(result).splitlines()[0]
    assert first.startswith(f"parity: {verdict} (PARTIAL RUN) - {words}")

    md = summary_md(result, META).splitlines()
    assert md[0] == f"## Performance parity: **{verdict}** (partial run)"
    assert md[2].startswith(f"- {words}")

    doc = parity_json(result, META)
    assert list(doc)[:5] == ["format", "version", "verdict", "complete", "partial"]
    assert doc["complete"] is False
    assert doc["partial"][0]["side"] == "candidate"
    assert doc["reasons"][0].startswith(words)

    text = junit_xml(result)
    xmlschema.XMLSchema(SCHEMA).validate(text)
    suite = ET.fromstring(text).find("testsuite")
    assert suite is not None
    assert suite.get("errors") == "1"
    first_case = suite.find("testcase")
    assert first_case is not None
    assert first_case.get("name") == "run complete"
    error = first_case.find("error")
    assert error is not None
    assert error.get("type") == "partial"
    assert error.get("message", "").startswith(words)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["partial"] == result.partial_text()

    html = render_html(result, META)
    assert f"— {verdict} (partial run)</title>" in html
    banner = re.search(r'id="verdict"[^>]*>(.*?)</section>', html, re.S)
    assert banner is not None
    visible = " ".join(unescape(re.sub(r"<[^>]+>", " ", banner.group(1))).split())
    assert visible.startswith("PARTIAL RUN: never a pass")
    assert "The candidate (cand.json): " in visible

    series = parity_series(result, at_s=1_700_000_000)
    assert all("partial:candidate" in s["tags"] for s in series)
    event = parity_event(result, report_url="https://ci/r/1")
    assert event.title.startswith(f"Parity {verdict} (partial run):")
    assert event.text.splitlines()[0].startswith(words)


def test_complete_runs_say_nothing_of_it() -> None:
    side = lognormal_side({"GET /a": 20})
    result = compare(side, side)
    assert result.complete
    assert "PARTIAL" not in terminal_summary(result)
    assert "partial" not in summary_md(result, META)
    assert parity_json(result, META)["partial"] == []
    assert "partial" not in junit_xml(result)
    assert 'id="partial"' not in render_html(result, META)
    assert not any(t.startswith("partial:") for s in parity_series(result, at_s=1) for t in s["tags"])


def test_compare_of_a_partial_replay_exits_3_and_says_so(tmp_path: Path) -> None:
    from tests.conftest import run_parity

    side = lognormal_side({"GET /a": 20, "GET /b": 5})
    base = measurement_json.write(side, tmp_path / "base.json")
    cand = measurement_json.write(replace(side, labels={"complete": "no", "aborted": "max rps"}), tmp_path / "c.json")
    done = run_parity("compare", str(base), str(cand), "--out", str(tmp_path / "r"))
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("parity: INCONCLUSIVE (PARTIAL RUN) - partial run: the candidate")
    assert "aborted by a safety rail: max rps" in done.stdout.splitlines()[0]


# --- hostile names --------------------------------------------------------------------------------------

HOSTILE = (
    "GET /" + "long" * 25_000,
    "GET /</script><script>alert(1)</script>",
    "GET /@team/notify",
    "GET /| a | b |",
    "GET /[x](http://evil)",
    "GET /\x1b[2J\x1b[31m\nparity: PASS - forged\r",
    "GET /lone\ud800surrogate",
    "GET /#123 owner/repo#45 www.evil.com",
)


def _hostile_sides() -> tuple[Measurement, Measurement]:
    base = lognormal_side({"GET /x": 20}, seed=1)
    cand = lognormal_side({"GET /x": 20}, seed=2)
    template_b, template_c = base.endpoints[0], cand.endpoints[0]

    def named(template: EndpointStats, key: str) -> EndpointStats:
        method, route = key.split(" ", 1)
        return replace(template, endpoint=Endpoint(method, route))

    # half the hostile names regress (bottlenecks table), half are missing on the candidate (not judged)
    slow = replace(lognormal_side({"GET /x": 60}, seed=3).endpoints[0])
    base_eps = tuple(named(template_b, k) for k in HOSTILE)
    cand_eps = tuple(named(slow if i % 2 == 0 else template_c, k) for i, k in enumerate(HOSTILE) if i % 3 != 2)
    return replace(base, endpoints=base_eps), replace(cand, endpoints=cand_eps)


def test_hostile_names_are_neutralised_in_every_output(tmp_path: Path) -> None:
    sides = _hostile_sides()
    result = compare(*sides, names=("@base.json", "cand\ud800.json"))
    assert result.verdict is Verdict.FAIL
    paths = write_reports(result, tmp_path / "out", META, measurements=sides)  # no UnicodeEncodeError
    md = paths.summary_md.read_text(encoding="utf-8")
    html = paths.index_html.read_text(encoding="utf-8")
    junit = paths.junit_xml.read_text(encoding="utf-8")
    doc = json.loads(paths.parity_json.read_text(encoding="utf-8"))

    # summary.md: nobody notified, nothing linked, no markup, the table intact, short enough for a PR comment
    assert not re.search(r"(?<![\w\u200b])@(?=\w)", md.replace(f"@{ZWSP}", "")), "an @mention survived"
    assert f"@{ZWSP}team" in md  # listed as not judged
    assert f"@{ZWSP}base.json" in md
    assert "(http://evil)" not in md
    assert "http://" not in md.replace(f":{ZWSP}//", "")
    assert "<script>" not in md
    assert "</script>" not in md
    assert "\x1b" not in md
    assert "\r" not in md
    assert "\ud800" not in md
    assert "\n| parity: PASS" not in md
    assert "\nparity: PASS" not in md
    for row in (line for line in md.splitlines() if re.match(r"\| \d+ \|", line)):
        assert len(re.findall(r"(?<!\\)\|", row)) == 7, row
    assert len(md) < 65_536
    assert "long" * 25_000 not in md
    assert ("long" * 40)[: MAX_NAME_CHARS - 10] in md

    # HTML: escaped markup, the data block cannot be closed, the names survive as data
    assert "<script>alert(1)" not in html
    assert len(re.findall(r"<script\b", html)) == 3
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    keys = {row["k"] for row in data["rows"]}
    assert "GET /</script><script>alert(1)</script>" in keys
    assert "GET /lone\ufffdsurrogate" in keys

    # JUnit: parses, validates, control characters and surrogates replaced
    xmlschema.XMLSchema(SCHEMA).validate(junit)
    names = [c.get("name") for c in ET.fromstring(junit).iter("testcase")]
    assert "GET /lone\ufffdsurrogate" in names
    assert "GET /| a | b |" in names

    # parity.json keeps the names as data (a surrogate, which UTF-8 cannot hold, as U+FFFD)
    assert "GET /@team/notify" in {e["endpoint"] for e in doc["endpoints"]}

    # terminal: one line per line, no escape sequences, no forged verdict line, printable
    text = terminal_summary(result, paths.index_html)
    assert "\x1b" not in text
    assert "\r" not in text
    assert [line for line in text.splitlines() if line.startswith("parity:")] == [text.splitlines()[0]]
    text.encode("utf-8")
    assert max(len(line) for line in text.splitlines()) <= 4000

    # the Datadog event notifies nobody
    event = parity_event(result, report_url="https://ci/r/1")
    assert "@team" not in event.text
    assert "@base" not in event.title
    event.text.encode("utf-8")


def test_text_helpers() -> None:
    assert no_mentions("@a @b-c me@x.org #1 a#2 http://h www.h.io ok@") == (
        f"@{ZWSP}a @{ZWSP}b-c me@{ZWSP}x.org #{ZWSP}1 a#{ZWSP}2 http:{ZWSP}//h www{ZWSP}.h.io ok@"
    )
    assert one_line("a\nb\x1b[0m\ud800\u2028c") == "a\ufffdb\ufffd[0m\ufffd\ufffdc"


# --- report sets: replaced as a whole -------------------------------------------------------------------


def _names_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _result(seed: int = 2) -> ParityResult:
    return compare(lognormal_side({"GET /a": 20}), lognormal_side({"GET /a": 20}, seed=seed))


def _night(tmp_path: Path) -> Path:
    """A night directory of typical content: Measurements, a Locust log, a server-side/ report set."""
    out = tmp_path / "night"
    (out / "server-side").mkdir(parents=True)
    (out / "locust.log").write_text("log", encoding="utf-8")
    (out / "candidate.measurement.json").write_text("{}", encoding="utf-8")
    (out / "server-side" / "index.html").write_text("server", encoding="utf-8")
    (out / "server-side" / "deep").mkdir()
    (out / "server-side" / "deep" / "x.txt").write_text("x", encoding="utf-8")
    (out / "latest").symlink_to("server-side")
    (out / "server-side").chmod(0o750)
    return out


def _plain_set(out: Path) -> None:
    for f in REPORT_FILES:
        assert (out / f).is_file()
        assert not (out / f).is_symlink()


def test_other_files_and_directories_are_carried_over_by_hard_links(tmp_path: Path) -> None:
    out = _night(tmp_path)
    inodes = {p: (out / p).lstat().st_ino for p in ("locust.log", "server-side/index.html", "server-side/deep/x.txt")}
    dir_inode = out.stat().st_ino
    paths = write_reports(_result(), out, META)
    assert paths.whole_set
    assert out.stat().st_ino != dir_inode  # the directory itself was swapped
    _plain_set(out)
    assert _names_in(out) == {"locust.log", "candidate.measurement.json", "server-side", "latest", *REPORT_FILES}
    assert {p: (out / p).lstat().st_ino for p in inodes} == inodes  # same files, no copy
    assert (out / "latest").readlink() == Path("server-side")
    assert (out / "server-side").stat().st_mode & 0o777 == 0o750
    assert _names_in(tmp_path) == {"night"}  # no temporary sibling left


def test_a_file_created_between_linking_and_the_swap_is_not_lost(tmp_path: Path) -> None:
    out = _night(tmp_path)
    (out / "nightly.json").write_text("before", encoding="utf-8")
    rendered = {f: f"new {f}" for f in REPORT_FILES}
    staged = write._stage(out, rendered)  # the steps of write_reports, in order
    (out / "late.txt").write_text("created in the window", encoding="utf-8")
    (out / "server-side" / "late.txt").write_text("also", encoding="utf-8")
    (out / "nightly.json.tmp").write_text("after", encoding="utf-8")
    (out / "nightly.json.tmp").replace(out / "nightly.json")  # replaced in the window: the newer one wins
    old = write._swap(staged)
    assert old is not None
    assert not (out / "late.txt").exists()  # the swap alone would lose it...
    write._settle(staged, old)
    assert (out / "late.txt").read_text(encoding="utf-8") == "created in the window"  # ...the settling does not
    assert (out / "server-side" / "late.txt").read_text(encoding="utf-8") == "also"
    assert (out / "nightly.json").read_text(encoding="utf-8") == "after"
    assert (out / "parity.json").read_text(encoding="utf-8") == "new parity.json"
    assert _names_in(tmp_path) == {"night"}


def test_a_symlinked_directory_stays_a_link_to_the_updated_directory(tmp_path: Path) -> None:
    real = _night(tmp_path)
    link = tmp_path / "latest-night"
    link.symlink_to("night")
    write_reports(_result(), link, META)
    assert link.is_symlink()
    assert link.readlink() == Path("night")
    _plain_set(real)
    assert json.loads((link / "parity.json").read_text(encoding="utf-8"))["verdict"] == "pass"
    assert (real / "locust.log").read_text(encoding="utf-8") == "log"
    assert _names_in(tmp_path) == {"night", "latest-night"}


def test_leftovers_of_killed_writers_are_cleaned_after_their_own_entries_are_saved(tmp_path: Path) -> None:
    out = _night(tmp_path)
    # killed before the swap: a half-built tree (hard links, a half-written report)
    new = tmp_path / f".night{write.NEW_TAG}0123456789abcdef"
    new.mkdir()
    os.link(out / "locust.log", new / "locust.log")
    (new / "index.html").write_text("half", encoding="utf-8")
    # killed after the swap: the old tree, holding a file created in the window and an old report
    old = tmp_path / f".night{write.OLD_TAG}fedcba9876543210"
    (old / "server-side").mkdir(parents=True)
    (old / "parity.json").write_text("old set", encoding="utf-8")
    (old / "orphan.txt").write_text("must survive", encoding="utf-8")
    (old / "server-side" / "late.txt").write_text("must survive too", encoding="utf-8")
    (old / "locust.log").write_text("an older log: DIR's wins", encoding="utf-8")
    (out / ".index.html.x1y2.tmp").write_text("half", encoding="utf-8")  # an older version's temporary file
    (tmp_path / ".other.parity-new-1").mkdir()  # another directory's: not ours to clean
    write_reports(_result(), out, META)
    assert _names_in(tmp_path) == {"night", ".other.parity-new-1"}
    assert (out / "orphan.txt").read_text(encoding="utf-8") == "must survive"
    assert (out / "server-side" / "late.txt").read_text(encoding="utf-8") == "must survive too"
    assert (out / "locust.log").read_text(encoding="utf-8") == "log"
    assert json.loads((out / "parity.json").read_text(encoding="utf-8"))["verdict"] == "pass"
    assert not [n for n in _names_in(out) if n.endswith(".tmp")]


def test_a_directory_of_the_symlink_layout_gets_plain_files(tmp_path: Path) -> None:
    out = tmp_path / "r"
    (out / ".parity-report-0123456789abcdef").mkdir(parents=True)
    for f in REPORT_FILES:
        (out / ".parity-report-0123456789abcdef" / f).write_text(f"old {f}", encoding="utf-8")
        (out / f).symlink_to(f".parity-report/{f}")
    (out / ".parity-report").symlink_to(".parity-report-0123456789abcdef")
    (out / ".parity-report.tmp-deadbeef").symlink_to(".parity-report-0123456789abcdef")
    (out / ".parity-report-mine").mkdir()  # the user's, by that prefix but holding other files: kept
    (out / ".parity-report-mine" / "notes.txt").write_text("keep", encoding="utf-8")
    (out / "locust.log").write_text("log", encoding="utf-8")
    write_reports(_result(), out, META)
    _plain_set(out)
    assert _names_in(out) == {"locust.log", ".parity-report-mine", *REPORT_FILES}
    assert (out / ".parity-report-mine" / "notes.txt").read_text(encoding="utf-8") == "keep"
    assert json.loads((out / "parity.json").read_text(encoding="utf-8"))["verdict"] == "pass"


def test_when_the_system_refuses_the_exchange_each_file_is_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _night(tmp_path)
    (out / "index.html").symlink_to(".parity-report/index.html")  # the symlink layout, migrated here too
    (out / ".parity-report").symlink_to(".parity-report-0123456789abcdef")
    dir_inode = out.stat().st_ino

    def refuse(a: bytes, b: bytes) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(write, "_libc_exchange", refuse)  # the OS edge only, e.g. a filesystem without it
    paths = write_reports(_result(), out, META)
    assert not paths.whole_set
    assert out.stat().st_ino == dir_inode  # written in place
    _plain_set(out)
    assert _names_in(out) == {"locust.log", "candidate.measurement.json", "server-side", "latest", *REPORT_FILES}
    assert _names_in(tmp_path) == {"night"}
    assert json.loads((out / "parity.json").read_text(encoding="utf-8"))["verdict"] == "pass"


def test_a_directory_with_many_other_entries_gets_the_per_file_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _night(tmp_path)  # four entries besides the reports (one a directory holding a file)
    monkeypatch.setattr(write, "MAX_CARRIED", 2)  # the limit, lowered: a tree of 10,000 files would cost seconds
    dir_inode = out.stat().st_ino
    paths = write_reports(_result(), out, META)
    assert not paths.whole_set
    assert out.stat().st_ino == dir_inode
    _plain_set(out)
    assert _names_in(tmp_path) == {"night"}  # the partial tree is gone


def test_the_exchange_is_available_here() -> None:
    """The swap is what this machine's tests exercise (Linux, glibc >= 2.28, tmpfs/ext4 allow it)."""
    assert write._renameat2() is not None


def test_a_report_name_that_is_a_directory_is_an_oserror_and_the_old_set_stays(tmp_path: Path) -> None:
    out = tmp_path / "r"
    write_reports(_result(), out, META)
    before = (out / "parity.json").read_text(encoding="utf-8")
    (out / "junit.xml").unlink()
    (out / "junit.xml").mkdir()
    with pytest.raises(IsADirectoryError):
        write_reports(_partial_pass(), out, META)
    assert (out / "parity.json").read_text(encoding="utf-8") == before


CAND_NAMES = ("cand-one.json", "cand-two.json")


def _set_of(out: Path) -> str | None:
    """Which candidate the report set in ``out`` was written for (None: no set yet); asserts every one of the
    four files names the same one."""
    found: set[str | None] = set()
    for f in REPORT_FILES:
        path = out / f
        if not path.exists():
            found.add(None)
            continue
        text = path.read_text(encoding="utf-8")
        found |= {n for n in CAND_NAMES if n in text} or {"neither"}
    assert len(found) == 1, f"a mix of report sets: {found}"
    (which,) = found
    assert which != "neither"
    return which


@pytest.mark.e2e
def test_a_compare_killed_while_writing_leaves_one_whole_set_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    """Real ``parity compare`` processes SIGKILLed at random moments — most of them just after the new tree
    appears next to the report directory (mid-write) — over a bounded number of attempts: the directory always
    holds plain files of one whole set (every file names the same candidate) and its other files, and the next
    complete run leaves no leftover sibling or temporary file."""
    keys = {f"GET /api/r{i:03d}/{{id}}": 10.0 + i for i in range(40)}
    side = lognormal_side(keys, n=300)
    work = tmp_path / "in"
    work.mkdir()
    base = measurement_json.write(side, work / "base.json")
    cands = [
        measurement_json.write(lognormal_side(keys, n=300, seed=2 + i), work / n) for i, n in enumerate(CAND_NAMES)
    ]
    out = tmp_path / "out"
    (out / "server-side").mkdir(parents=True)
    (out / "locust.log").write_text("keep me", encoding="utf-8")
    (out / "server-side" / "notes.txt").write_text("keep me too", encoding="utf-8")

    def siblings() -> set[str]:
        return _names_in(tmp_path) - {"in", "out"}

    rng = random.Random(12)
    command = [sys.executable, "-m", "parity.cli", "compare", str(base)]
    killed_mid_write = 0
    deadline = time.monotonic() + 60
    for attempt in range(6):
        if time.monotonic() > deadline:
            break
        cand = cands[attempt % 2]
        before = siblings()
        child = subprocess.Popen([*command, str(cand), "--out", str(out)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            if attempt % 3 == 2:  # now and then at a random moment of the whole run
                time.sleep(rng.uniform(0.2, 2.0))
            else:  # mostly as soon as the new tree appears, after a random few hundred microseconds
                give_up = time.monotonic() + 30
                while child.poll() is None and time.monotonic() < give_up:
                    if siblings() - before:
                        time.sleep(rng.uniform(0, 0.003))
                        break
                    time.sleep(0.0005)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        killed_mid_write += bool(siblings() - before)
        _set_of(out)  # one whole set (or none yet), never a mix
        if (out / "parity.json").exists():
            _plain_set(out)
        assert (out / "locust.log").read_text(encoding="utf-8") == "keep me"
        assert (out / "server-side" / "notes.txt").read_text(encoding="utf-8") == "keep me too"
    done = subprocess.run([*command, str(cands[0]), "--out", str(out)], capture_output=True, timeout=60, check=False)
    assert done.returncode in (0, 3), done.stderr
    assert _set_of(out) == CAND_NAMES[0]
    _plain_set(out)
    assert siblings() == set()  # whatever the kills left is gone
    assert _names_in(out) == {"locust.log", "server-side", *REPORT_FILES}
    assert _names_in(out / "server-side") == {"notes.txt"}
    print(f"kills that left a half-written tree behind: {killed_mid_write}")
