"""The CI examples (GitHub Actions, GitLab CI) are valid and their commands work as written.

Static: each file validates against its CI's JSON schema (SchemaStore's github-workflows and gitlab-ci schemas,
vendored offline by check-jsonschema; actionlint's binary cannot be installed offline here), every shell script in
it parses (``bash -n``), and the properties the examples promise hold: parity installed from a pinned ref, a
self-hosted runner, no ``|| true``, no evicting cache for the history, reports kept whatever the verdict.

Run: the scripts run as written with bash, in the order and under the conditions their CI would run them, against
two demo services on loopback (a concurrent A/B night of a few seconds). What only the CI provides is stood in for:
the ``parity`` on PATH is this checkout's; GitHub's ``origin`` is a bare repository in a temp dir (the history branch
is really pushed, and restored by a later run), GitLab's package registry a small HTTP server on loopback; ``uses:``
steps are not run (the artifact URL is made up), nor the install steps (checked statically instead).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.demo.processes import Service, running_servers
from tests.conftest import ROOT

WORKFLOW = ROOT / "examples" / "github" / ".github" / "workflows" / "nightly-parity.yml"
GITLAB = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
#: GitHub's `shell: bash` (the workflow names it in `defaults`: unnamed, GitHub's default has no pipefail); GitLab's
#: bash runs its script with errexit and pipefail too.
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
#: Seconds of replay per night in the run tests.
NIGHT_S = 2
SCRIPT_TIMEOUT_S = 180
ARTIFACT_URL = "https://github.com/acme/web/actions/runs/1/artifacts/2"
JOB_TOKEN = "job-token-123"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PINNED_REF = re.compile(r"v\d+\.\d+\.\d+|[0-9a-f]{40}")

Doc = dict[str, Any]


def load(path: Path) -> Doc:
    doc: Doc = yaml.safe_load(path.read_text())
    return doc


def schema_check(schema: str, path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def bash_parses(script: str, where: str) -> None:
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{where}: {done.stderr}"


# -- GitHub Actions: static ------------------------------------------------------------------------------


def steps() -> list[Doc]:
    found: list[Doc] = load(WORKFLOW)["jobs"]["parity"]["steps"]
    return found


def step(name_or_id: str) -> Doc:
    (found,) = [s for s in steps() if name_or_id in (s.get("id"), s.get("name"))]
    return found


def test_workflow_passes_the_schema_and_the_lint_rules() -> None:
    schema_check("vendor.github-workflows", WORKFLOW)
    text = WORKFLOW.read_text()
    doc: dict[Any, Any] = load(WORKFLOW)
    assert doc[True]["schedule"][0]["cron"] == "0 3 * * *"  # YAML reads the `on:` key as True
    ids: set[str] = set()
    for s in steps():
        where = s.get("name") or s.get("uses")
        # As actionlint: an expression referring to a step refers to an earlier step with that id.
        for expression in [*EXPRESSION.findall(yaml.safe_dump(s)), s.get("if", "")]:
            for ref in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", expression):
                assert ref in ids, f"{where}: steps.{ref} is not an earlier step"
        if "run" in s:
            # No expression inside a script (actionlint's script-injection rule): values come in through env.
            assert "${{" not in s["run"], f"{where}: an expression in run:, pass it through env: instead"
            bash_parses(s["run"], str(where))
        if "id" in s:
            ids.add(s["id"])
    assert "|| true" not in text
    assert "actions/cache" not in text, "the Actions cache is evicted: the history must not live there"
    assert doc["jobs"]["parity"]["runs-on"][0] == "self-hosted"
    # the steps run under BASH's flags only with the shell named (no step names another)
    assert doc["defaults"]["run"]["shell"] == "bash"
    assert all("shell" not in s for s in steps())


def test_workflow_installs_parity_pinned_and_keeps_reports_whatever_the_verdict() -> None:
    env = load(WORKFLOW)["env"]
    assert PINNED_REF.fullmatch(env["PARITY_REF"]), env["PARITY_REF"]
    assert "REPLACE-ME" in env["PARITY_REPO_URL"]  # an obvious placeholder, overridden by a variable
    assert "vars.PARITY_REPO_URL" in env["PARITY_REPO_URL"]
    install = step("Install parity (PARITY_REPO_URL at PARITY_REF)")["run"]
    assert '"parity @ git+${PARITY_REPO_URL}@${PARITY_REF}"' in install
    assert "pip install ." not in install
    for s in steps():
        if str(s.get("uses", "")).startswith("actions/upload-artifact@") or s.get("name") == "Step summary":
            assert s.get("if") == "always()", s
    summary = step("Step summary")
    assert summary["env"]["ARTIFACT_URL"] == "${{ steps.upload.outputs.artifact-url }}"
    assert "$GITHUB_STEP_SUMMARY" in summary["run"]
    nightly = step("parity")
    assert "secrets.DD_API_KEY" in nightly["env"]["DD_API_KEY"]
    assert "set +e" not in nightly["run"]  # its exit code is the step's, so the job's


# -- GitLab CI: static -----------------------------------------------------------------------------------


def gitlab_job() -> Doc:
    job: Doc = load(GITLAB)["parity-nightly"]
    return job


def test_gitlab_file_passes_the_schema_and_keeps_what_it_promises() -> None:
    schema_check("vendor.gitlab-ci", GITLAB)
    doc, job = load(GITLAB), gitlab_job()
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in job["rules"]
    assert "workflow" not in doc  # an include would impose it on the whole project's pipelines
    assert job["tags"] == ["parity"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "reports/nightly/*/junit.xml"
    assert "cache" not in job
    assert PINNED_REF.fullmatch(doc["variables"]["PARITY_REF"])
    assert "REPLACE-ME" in doc["variables"]["PARITY_REPO_URL"]
    assert '"parity @ git+${PARITY_REPO_URL}@${PARITY_REF}"' in "\n".join(job["before_script"])
    for part in ("before_script", "script"):
        bash_parses("\n".join(job[part]), part)
    assert "|| true" not in GITLAB.read_text()


# -- running the scripts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[str, str]]:
    with running_servers([Service("old"), Service("new")]) as (old, new):
        yield old, new


def write_service_repo(repo: Path, old: str, new: str) -> None:
    """The files of a service repository that adopts the example: parity.toml (history in the state dir)."""
    repo.mkdir(parents=True)
    shutil.copy(ROOT / "baselines" / "demo.json", repo / "baseline.json")
    (repo / "parity.toml").write_text(
        "[nightly]\n"
        'baseline = "baseline.json"\n'
        f'target = "{new}"\nold_target = "{old}"\n'
        f"duration_s = {NIGHT_S}\n"
        'history = ".parity-state/parity-history.sqlite"\n'
    )


def base_env(tmp: Path) -> dict[str, str]:
    """A CI job's environment: no Datadog keys, this checkout's parity first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "DATADOG_", "GITHUB_", "CI_"))}
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(tmp / "home")  # no user git config
    (tmp / "home").mkdir(exist_ok=True)
    return env


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class GitHubRun:
    """One job of the workflow in a checkout of ``origin``, run step by step as the runner would."""

    workspace: Path
    env: dict[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    failed: bool = False
    log: list[str] = field(default_factory=list)

    def expression(self, text: str) -> str:
        if text.startswith("secrets."):
            return ""
        if match := re.fullmatch(r"vars\.\w+ \|\| '([^']*)'", text):
            return match.group(1)
        if match := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
            return self.outputs.get(match.group(1), {}).get(match.group(2), "")
        if text == "env.PARITY_OUT":
            return self.env["PARITY_OUT"]
        if text in ("github.run_id", "github.run_attempt"):
            return "1"
        raise AssertionError(f"the test does not know the expression ${{{{ {text} }}}}")

    def substitute(self, env: Mapping[str, str]) -> dict[str, str]:
        return {k: EXPRESSION.sub(lambda m: self.expression(m.group(1)), str(v)) for k, v in env.items()}

    def should_run(self, s: Doc) -> bool:
        condition = s.get("if")
        if condition is None:
            return not self.failed
        ok = True
        for term in (t.strip() for t in condition.split("&&")):
            if term == "always()":
                continue
            match = re.fullmatch(r"steps\.([\w-]+)\.outcome == '(\w+)'", term)
            assert match, f"the test does not know the condition {term!r}"
            ok = ok and self.outcomes.get(match.group(1)) == match.group(2)
        return ok

    def run_step(self, s: Doc) -> None:
        output = self.workspace.parent / "github-output"
        output.write_text("")
        env = self.env | self.substitute(s.get("env", {})) | {"GITHUB_OUTPUT": str(output)}
        done = subprocess.run(
            [*BASH, "-c", s["run"]],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )
        self.log.append(f"--- {s.get('name')} exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        if "id" in s:
            self.outcomes[s["id"]] = "success" if done.returncode == 0 else "failure"
            pairs = (line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
            self.outputs[s["id"]] = dict(pairs)
        self.failed = self.failed or done.returncode != 0

    def run(self, only: tuple[str, ...] | None = None) -> None:
        for s in steps():
            if only is not None and s.get("name") not in only:
                continue
            if "uses" in s:
                if str(s["uses"]).startswith("actions/upload-artifact@") and self.should_run(s):
                    self.outcomes[s["id"]] = "success"
                    self.outputs[s["id"]] = {"artifact-url": ARTIFACT_URL}
                continue
            if s.get("name", "").startswith("Install parity"):
                continue  # PARITY_REPO_URL is a placeholder: this checkout's parity is on PATH instead
            if self.should_run(s):
                self.run_step(s)


def github_run(tmp: Path, origin: Path, name: str) -> GitHubRun:
    workspace = tmp / name
    git("clone", "--quiet", str(origin), str(workspace), cwd=tmp)
    runner_temp = tmp / f"{name}-runner-temp"
    runner_temp.mkdir()
    workflow_env = {k: str(v) for k, v in load(WORKFLOW)["env"].items()}
    env = base_env(tmp) | {
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_RUN_ID": "1",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_STEP_SUMMARY": str(tmp / f"{name}-summary.md"),
        "RUNNER_TEMP": str(runner_temp),
    }
    run = GitHubRun(workspace, env)
    run.env |= run.substitute(workflow_env)
    return run


@pytest.mark.e2e
def test_workflow_runs_as_written_and_carries_the_history(tmp_path: Path, targets: tuple[str, str]) -> None:
    old, new = targets
    seed = tmp_path / "service"
    write_service_repo(seed, old, new)
    git("init", "--quiet", "-b", "main", cwd=seed)
    git("add", ".", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "service", cwd=seed)
    origin = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(seed), str(origin), cwd=tmp_path)

    first = github_run(tmp_path, origin, "night1")
    first.run()
    log = "\n".join(first.log)
    night = next((first.workspace / "reports" / "nightly").iterdir())
    exit_code = int(yaml.safe_load((night / "nightly.json").read_text())["exit_code"])
    # The job's status is parity's exit code; reports, trend and history are kept whatever it is.
    assert first.outcomes["parity"] == ("success" if exit_code == 0 else "failure"), log
    assert first.failed is (exit_code != 0)
    assert (first.workspace / "reports" / "trend" / "trend.html").is_file(), log
    summary = Path(first.env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "Performance parity" in summary
    assert f"[Full HTML report]({ARTIFACT_URL})" in summary
    assert not re.search(r"\]\((?!https://)", summary), "a relative link is dead in a step summary"
    # The night was pushed to the state branch, and the next run restores it.
    store = first.workspace / ".parity-state" / "parity-history.sqlite"
    files = git("ls-tree", "-r", "--name-only", "parity-state", cwd=origin).splitlines()
    assert files == ["parity-history.sqlite"], files
    second = github_run(tmp_path, origin, "night2")
    second.run(only=("Restore the history store (branch PARITY_STATE_BRANCH)",))
    assert not second.failed, "\n".join(second.log)
    restored = second.workspace / ".parity-state" / "parity-history.sqlite"
    assert restored.read_bytes() == store.read_bytes()
    assert second.outputs["restore"]["parent"] == git("rev-parse", "parity-state", cwd=origin)


@pytest.mark.e2e
def test_workflow_refuses_a_history_it_would_not_carry(tmp_path: Path) -> None:
    repo = tmp_path / "service"
    write_service_repo(repo, "http://127.0.0.1:9", "http://127.0.0.1:9")
    config = repo / "parity.toml"
    config.write_text(config.read_text().replace(".parity-state/parity-history.sqlite", "reports/h.sqlite"))
    git("init", "--quiet", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "service", cwd=repo)
    origin = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(repo), str(origin), cwd=tmp_path)
    run = github_run(tmp_path, origin, "night")
    run.run()
    log = "\n".join(run.log)
    assert run.outcomes["restore"] == "failure"
    assert "set it to .parity-state/parity-history.sqlite" in log
    assert "parity" not in run.outcomes, "the night ran although its history would be lost"
    assert "No parity report was written" in Path(run.env["GITHUB_STEP_SUMMARY"]).read_text()
    assert git("branch", "--list", "parity-state", cwd=origin) == ""


class FakeRegistry(BaseHTTPRequestHandler):
    """GitLab's generic package registry, as far as the example uses it: PUT a file, GET the newest upload."""

    files: dict[str, bytes] = {}  # noqa: RUF012 (one registry per test, reset by the fixture)

    def do_GET(self) -> None:
        body = self.files.get(self.path) if self.headers.get("JOB-TOKEN") == JOB_TOKEN else None
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b'{"message":"404 Not Found"}')

    def do_PUT(self) -> None:
        if self.headers.get("JOB-TOKEN") != JOB_TOKEN:
            self.send_response(401)
            self.end_headers()
            return
        self.files[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.end_headers()
        self.wfile.write(b'{"message":"201 Created"}')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 (quiet: no request log on stderr)
        return


@pytest.fixture
def registry() -> Iterator[str]:
    FakeRegistry.files = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.e2e
def test_gitlab_job_runs_as_written(tmp_path: Path, targets: tuple[str, str], registry: str) -> None:
    old, new = targets
    project = tmp_path / "service"
    write_service_repo(project, old, new)
    env = base_env(tmp_path) | {k: str(v) for k, v in load(GITLAB)["variables"].items()}
    env |= {"CI_API_V4_URL": registry, "CI_PROJECT_ID": "7", "CI_JOB_TOKEN": JOB_TOKEN, "CI_JOB_URL": "https://x/j/1"}
    script = "\n".join(gitlab_job()["script"])  # before_script installs parity: this checkout's is on PATH

    def job() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BASH, "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    done = job()
    log = done.stdout[-4000:] + done.stderr[-4000:]
    night = next((project / "reports" / "nightly").iterdir())
    assert done.returncode == int(yaml.safe_load((night / "nightly.json").read_text())["exit_code"]), log
    assert (night / "junit.xml").is_file()
    assert (project / "reports" / "trend" / "trend.html").is_file(), log
    assert "no package parity-state yet" in done.stdout
    (path,) = FakeRegistry.files
    assert path == "/api/v4/projects/7/packages/generic/parity-state/1/state.tar.gz"
    with tarfile.open(fileobj=BytesIO(FakeRegistry.files[path])) as tar:
        names = {n.removeprefix("./") for n in tar.getnames()}
    assert "parity-history.sqlite" in names
    # The next night starts from the uploaded store (its replay is not run again: the restore is the first block).
    shutil.rmtree(project / ".parity-state")
    script = gitlab_job()["script"][0]
    restored = job()
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored .parity-state" in restored.stdout
    assert (project / ".parity-state" / "parity-history.sqlite").is_file()


def test_gitlab_restore_fails_on_a_state_it_cannot_unpack(tmp_path: Path, registry: str) -> None:
    """A download that is not the state archive (a proxy's page, a truncated file) stops the job: the night must not
    start a fresh history store and upload it as the newest state over the real one."""
    project = tmp_path / "service"
    project.mkdir()
    env = base_env(tmp_path) | {k: str(v) for k, v in load(GITLAB)["variables"].items()}
    env |= {"CI_API_V4_URL": registry, "CI_PROJECT_ID": "7", "CI_JOB_TOKEN": JOB_TOKEN}
    FakeRegistry.files["/api/v4/projects/7/packages/generic/parity-state/1/state.tar.gz"] = b"<html>not a tar</html>"
    restore = gitlab_job()["script"][0] + "\necho 'the night went on'"
    done = subprocess.run(
        [*BASH, "-c", restore], cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "the night went on" not in done.stdout
