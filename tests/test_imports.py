"""What a command imports: modules it does not need stay out of its start-up (issue 14: `parity compare` of big
request logs is timed against a plain pandas script, so every 0.1 s of imports counts).

One real ``parity compare`` of two small Locust request logs (with exception rows, which once made pyarrow
import pandas) in a child process, reporting its ``sys.modules`` at the end; and ``compare --help``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from parity.sources.locust_csv import COLUMNS

#: Runs the CLI in-process in the child and prints the top-level module names it imported (the exit code of the
#: verdict is expected: the logs differ).
_CHILD = """
import json, runpy, sys
sys.argv = ["parity", *sys.argv[1:]]
try:
    runpy.run_module("parity.cli", run_name="__main__")
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""
#: Never needed to compare two request logs (or to print help).
NOT_FOR_COMPARE = ("pandas", "locust", "gevent", "datadog_api_client", "jsonschema", "parity.demo.runner")


def _log(path: Path, slower: float) -> Path:
    rows = [
        f"{1_800_000_000 + i * 0.5:.6f},GET,/api/{i % 3}/{{id}},{(20 + i % 17) * slower:.2f},12,"
        + ("500,\"HTTPError('500, boom')\"" if i % 50 == 0 else "200,")
        for i in range(600)
    ]
    path.write_text("\n".join([",".join(COLUMNS), *rows]) + "\n", "utf-8")
    return path


def _modules(*args: str, cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, done.stderr[-2000:]
    return set(json.loads(line.removeprefix("MODULES ")))


def test_compare_of_request_logs_imports_only_what_it_needs(tmp_path: Path) -> None:
    a, b = _log(tmp_path / "a.csv", 1.0), _log(tmp_path / "b.csv", 1.5)
    out = tmp_path / "report"
    modules = _modules("compare", str(a), str(b), "--out", str(out), cwd=tmp_path)
    assert (out / "index.html").is_file()  # it did run to the end
    assert "pyarrow" in modules
    assert "jinja2" in modules
    assert not [m for m in NOT_FOR_COMPARE if m in modules]


def test_compare_help_imports_no_reader_and_no_template_engine(tmp_path: Path) -> None:
    modules = _modules("compare", "--help", cwd=tmp_path)
    assert "parity.report.write" in modules  # the command line's own imports did run
    assert not [m for m in (*NOT_FOR_COMPARE, "pyarrow", "jinja2") if m in modules]
