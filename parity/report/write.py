"""``write_reports(result, out_dir, meta, measurements=None)``: the one function of ``parity.report`` that
touches the disk.

Writes ``index.html``, ``parity.json``, ``junit.xml`` and ``summary.md`` into ``out_dir`` (created if
needed) as **plain files** and **as one set**: a reader of ``out_dir`` finds either the whole previous set or
the whole new one, never a mix of the two and never half a file, whenever the writer is killed (SIGKILL, power
loss after the fsyncs).

How: the whole directory is swapped. ``out_dir`` is resolved to its real path ``DIR`` first (a symbolic link
to a directory stays a link; its target is updated). Every report is rendered in memory, then a sibling
``<parent>/.<name>.parity-new-<id>/`` is built holding the four new files (fsynced) and every other entry of
``DIR`` carried over without copying data: files (and symbolic links) hard-linked, directories recreated
recursively with their modes. One ``renameat2(RENAME_EXCHANGE)`` swaps the two names atomically — the only
step a reader can see. The old tree, now under the temporary name (renamed ``.<name>.parity-old-<id>``),
is then reconciled before it is removed: an entry created in ``DIR`` between the hard-linking and the swap is
moved into the new ``DIR``, and one replaced in that window (a new inode under the same name) replaces our
link of its predecessor (an entry changed on both sides is kept as ``<name>.parity-kept-<id>``) — a file
is never lost. A ``DIR`` that does not exist yet is built the same way and
renamed into place.

Weaker guarantee (the fallback): when the exchange is impossible — no ``renameat2`` in the C library, the
filesystem refuses it (EINVAL, ENOSYS), ``DIR`` is a mount point or holds one, ``DIR`` is (or contains) the
current directory of a process we can see, or is not owned by us, its parent is not writable, a hard link
is refused, or it holds more than ``MAX_CARRIED`` other entries (an ``--out`` pointed at a big tree) — the four files
are written one by one, each atomically (temporary sibling, fsync, rename). Each file is then whole and
nothing else in ``DIR`` is touched, but a kill between two renames leaves a mix of old and new files.
:func:`write_reports` says which way it wrote in :attr:`ReportPaths.whole_set`.

Writers of one ``DIR`` take turns: each holds an exclusive ``flock`` on ``DIR``'s parent directory for the
whole write (so writers of sibling directories take turns too; the lock dies with its process; the parent
must be readable). Each first
cleans what a killed writer left: ``.<name>.parity-new-*`` / ``.<name>.parity-old-*`` siblings (after moving
into ``DIR`` every entry of theirs that is not a report file and is absent from ``DIR``), and inside ``DIR``
the per-file temporaries ``.<file>.*.tmp`` and the leftovers of the former symbolic-link layout
(``.parity-report``, ``.parity-report.tmp-*`` links, ``.parity-report-*`` directories holding nothing but
report files); a directory written in that layout gets plain files again.

Limits: a process holding an open descriptor of the old ``DIR`` (an ``openat`` base, a shell whose current
directory we cannot see because it belongs to another user) keeps the old tree, and whatever it creates there
after the reconciliation is removed with it; hard links share their inode, so the new tree's files are the
old files (no copy, same content, same owner); ACLs and extended attributes of recreated directories are not
copied. Linux/POSIX only (``flock``; ``renameat2`` is Linux, glibc >= 2.28).

:func:`write_atomic` writes one file the same way (temporary sibling, fsync, rename).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.report.ci import junit_xml, parity_json, summary_md
from parity.report.context import RunMeta, without_body
from parity.report.text import encodable

__all__ = ["FILE_MODE", "NEW_TAG", "OLD_TAG", "REPORT_FILES", "ReportPaths", "write_atomic", "write_reports"]

#: Permissions of written reports (a temporary file starts as owner-only).
FILE_MODE = 0o644
#: The four files of a report set, in the order they are written.
REPORT_FILES = ("index.html", "parity.json", "junit.xml", "summary.md")
#: ``<parent>/.<name>`` + these + ``<id>``: the tree being built, and the old tree being removed.
NEW_TAG = ".parity-new-"
OLD_TAG = ".parity-old-"
#: The former symbolic-link layout's pointer (and the prefixes of its sets and temporary links).
_LEGACY = ".parity-report"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
#: A directory holding more entries than this (files and links, at any depth) is not rebuilt by hard links: an
#: ``--out`` pointed by mistake at a home or project directory gets the per-file fallback, not a walk of the tree.
MAX_CARRIED = 10_000
#: errno values of an exchange that cannot be done here (then the per-file fallback).
_CANNOT_EXCHANGE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EBUSY, errno.EXDEV, errno.EPERM, errno.ENOTSUP})


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_reports` put each report. ``whole_set``: True when the set replaced the previous one
    as a whole (the directory swap), False when the fallback wrote the files one by one (see the module)."""

    index_html: Path
    parity_json: Path
    junit_xml: Path
    summary_md: Path
    whole_set: bool = field(default=True, compare=False)


class _CannotSwap(Exception):
    """The directory cannot be swapped here (the reason is the message); the per-file fallback applies."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8; a lone surrogate, which UTF-8 cannot hold, as U+FFFD) to ``path`` via a temporary
    sibling and a rename; on any error the temporary file is removed and ``path`` is left as it was."""
    text = encodable(text)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(FILE_MODE)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` (released when the process dies, however it dies)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- the exchange ---------------------------------------------------------------------------------------


def _renameat2() -> Callable[..., int] | None:
    """The C library's ``renameat2`` (glibc >= 2.28), None when it has none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "renameat2", None)


def _libc_exchange(a: bytes, b: bytes) -> None:
    """``renameat2(a, b, RENAME_EXCHANGE)``: the two paths swap names atomically. OSError(ENOSYS) when the C
    library has no ``renameat2``; OSError(errno) when the kernel or the filesystem refuses."""
    call = _renameat2()
    if call is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if call(_AT_FDCWD, a, _AT_FDCWD, b, ctypes.c_uint(_RENAME_EXCHANGE)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


# --- what is ours ---------------------------------------------------------------------------------------


def _only_report_files(path: Path) -> bool:
    return all(p.name in REPORT_FILES and p.is_file() and not p.is_symlink() for p in path.iterdir())


def _is_debris(directory: Path, name: str) -> bool:
    """An entry of ``directory`` (a report directory) that a writer of ours left and nobody else needs: the
    former layout's pointer and temporary links, its set directories holding only report files, per-file
    temporaries. Never carried into a new tree; removed."""
    path = directory / name
    if name == _LEGACY or name.startswith(_LEGACY + ".tmp-"):
        return path.is_symlink()
    if name.startswith(_LEGACY + "-"):
        return not path.is_symlink() and path.is_dir() and _only_report_files(path)
    if name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in REPORT_FILES):
        return path.is_file() and not path.is_symlink()
    return False


def _leftover_trees(real: Path) -> list[Path]:
    """``real``'s sibling trees of killed writers (``.<name>.parity-new-*``, ``.<name>.parity-old-*``)."""
    prefixes = (f".{real.name}{NEW_TAG}", f".{real.name}{OLD_TAG}")
    return [p for p in real.parent.iterdir() if p.name.startswith(prefixes) and p.is_dir() and not p.is_symlink()]


# --- building, swapping, reconciling --------------------------------------------------------------------


@dataclass(frozen=True)
class _Staged:
    """A new tree built next to ``real``: its path, and the inode each carried-over entry had when linked
    (relative path → inode; the reconciliation tells a replaced entry from ours by it)."""

    real: Path
    tree: Path
    linked: dict[str, int]


def _same_owner(st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise _CannotSwap("a directory is owned by another user")


def _link_entries(src: Path, dst: Path, dev: int, rel: str, linked: dict[str, int], top: bool) -> None:
    """Carry every entry of ``src`` into the existing ``dst``: hard links (symbolic links as they are),
    directories recreated with their mode. _CannotSwap on a mount point or a refused hard link."""
    for entry in os.scandir(src):
        name = entry.name
        if top and (name in REPORT_FILES or _is_debris(src, name)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone meanwhile
        key = f"{rel}/{name}"
        if st.st_dev != dev:
            raise _CannotSwap(f"{src / name} is on another filesystem")
        if stat.S_ISDIR(st.st_mode):
            _same_owner(st)
            if (src / name).is_mount():
                raise _CannotSwap(f"{src / name} is a mount point")
            (dst / name).mkdir(0o700)
            if os.lstat(dst / name).st_gid != st.st_gid:
                try:
                    os.chown(dst / name, -1, st.st_gid)
                except OSError:
                    raise _CannotSwap("a directory's group cannot be kept") from None
            (dst / name).chmod(stat.S_IMODE(st.st_mode))
            _link_entries(src / name, dst / name, dev, key, linked, top=False)
            continue
        try:
            os.link(src / name, dst / name, follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if not stat.S_ISLNK(st.st_mode):
                raise _CannotSwap(f"{src / name}: hard link refused ({exc.strerror})") from None
            (dst / name).symlink_to((src / name).readlink())
        linked[key] = st.st_ino
        if len(linked) > MAX_CARRIED:
            raise _CannotSwap(f"{dst.parent} holds more than {MAX_CARRIED} entries besides the reports")


def _cwd_inside(real: Path) -> bool:
    """Whether a process we can see (ours, and any whose ``/proc/<pid>/cwd`` we may read) works in ``real`` or
    below it: swapping would leave it in the removed old tree."""
    inside = str(real).rstrip("/") + "/"
    cwds = [str(Path.cwd())]
    try:
        pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            cwds.append(str(Path(f"/proc/{pid}/cwd").readlink()))
        except OSError:
            continue  # gone, or another user's
    return any((cwd.rstrip("/") + "/").startswith(inside) for cwd in cwds)


def _write_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(encodable(text))
        f.flush()
        os.fsync(f.fileno())
    path.chmod(FILE_MODE)


def _fsync_tree(path: Path) -> None:
    for root, _dirs, _files in os.walk(path, topdown=False):
        _fsync_dir(Path(root))


def _stage(real: Path, rendered: dict[str, str]) -> _Staged:
    """Build the new tree next to ``real`` (see the module docstring); _CannotSwap when it cannot be swapped
    in (then the partial tree is removed)."""
    tree = real.parent / f".{real.name}{NEW_TAG}{uuid.uuid4().hex[:16]}"
    linked: dict[str, int] = {}
    if real.exists():
        _same_owner(real.stat())
        if real.is_mount():
            raise _CannotSwap(f"{real} is a mount point")
        if _cwd_inside(real):
            raise _CannotSwap(f"{real} is a process's current directory")
    try:
        tree.mkdir(0o700 if real.exists() else 0o777)  # a new DIR: the umask decides, as for mkdir
    except PermissionError:
        raise _CannotSwap(f"{real.parent} is not writable") from None
    try:
        if real.exists():
            st = real.stat()
            if os.lstat(tree).st_gid != st.st_gid:
                os.chown(tree, -1, st.st_gid)
            tree.chmod(stat.S_IMODE(st.st_mode))
            _link_entries(real, tree, st.st_dev, "", linked, top=True)
        for name, text in rendered.items():
            _write_file(tree / name, text)
        _fsync_tree(tree)
    except BaseException:
        shutil.rmtree(tree, ignore_errors=True)
        raise
    return _Staged(real, tree, linked)


def _swap(staged: _Staged) -> Path | None:
    """Put the new tree at ``staged.real``: exchange (the old tree then sits at ``.<name>.parity-old-<id>``,
    returned) or, when ``real`` does not exist yet, a plain rename (None). _CannotSwap when the system
    refuses the exchange (the new tree is removed)."""
    real, tree = staged.real, staged.tree
    if not real.exists():
        tree.rename(real)
        _fsync_dir(real.parent)
        return None
    try:
        _libc_exchange(os.fsencode(tree), os.fsencode(real))
    except OSError as exc:
        shutil.rmtree(tree, ignore_errors=True)
        if exc.errno in _CANNOT_EXCHANGE:
            raise _CannotSwap(f"the system refused the exchange ({exc.strerror})") from None
        raise
    old = real.parent / tree.name.replace(NEW_TAG, OLD_TAG, 1)
    tree.rename(old)
    _fsync_dir(real.parent)
    return old


def _move_back(old: Path, new: Path, linked: dict[str, int] | None, rel: str = "") -> None:
    """Move into ``new`` every entry of the tree ``old`` that ``new`` lacks (directories merged recursively);
    at the top, report files and our debris stay behind. With ``linked`` (the inodes :func:`_stage` linked),
    an entry of ``old`` that is not the inode we linked under its name, while ``new`` still holds our link,
    was replaced after the linking: it replaces our link. Without ``linked`` (a killed writer's tree) an
    existing name in ``new`` wins."""
    for entry in os.scandir(old):
        name = entry.name
        if not rel and (name in REPORT_FILES or _is_debris(old, name)):
            continue
        key = f"{rel}/{name}"
        src, dst = old / name, new / name
        st = entry.stat(follow_symlinks=False)
        try:
            dst_st = os.lstat(dst)
        except FileNotFoundError:
            src.rename(dst)
            continue
        if stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(dst_st.st_mode):
            _move_back(src, dst, linked, key)
        elif linked is None or (not stat.S_ISDIR(st.st_mode) and st.st_ino == linked.get(key)):
            continue  # the name in ``new`` wins / ours, unchanged
        elif not stat.S_ISDIR(dst_st.st_mode) and dst_st.st_ino == linked.get(key, -1):
            if stat.S_ISDIR(st.st_mode):  # our link of what was replaced in the window: the replacement wins
                dst.unlink()
                src.rename(dst)
            else:
                src.replace(dst)
        else:  # changed on both sides (or a directory became a file): keep both
            src.rename(new / f"{name}.parity-kept-{uuid.uuid4().hex[:8]}")


def _settle(staged: _Staged, old: Path | None) -> None:
    """After the swap: reconcile the old tree into the new ``DIR``, then remove it."""
    if old is None:
        return
    _move_back(old, staged.real, staged.linked)
    shutil.rmtree(old, ignore_errors=True)


def _clean(real: Path) -> None:
    """Remove what killed writers left (see the module docstring), never an entry ``real`` lacks."""
    for tree in _leftover_trees(real):
        if real.is_dir():
            _move_back(tree, real, None)
        elif not all(p.name in REPORT_FILES for p in tree.iterdir()):
            continue  # no DIR to move its entries into: kept
        shutil.rmtree(tree, ignore_errors=True)
    if real.is_dir():
        for name in (p.name for p in real.iterdir()):
            if _is_debris(real, name):
                path = real / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def _write_each(real: Path, rendered: dict[str, str]) -> None:
    """The fallback: each file atomically, one after the other (whole files, not a whole set)."""
    real.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        write_atomic(real / name, text)
    _fsync_dir(real)


def write_reports(
    result: ParityResult,
    out_dir: Path,
    meta: RunMeta,
    *,
    measurements: tuple[Measurement, Measurement] | None = None,
    explanations: Mapping[str, Mapping[str, Any]] | None = None,
) -> ReportPaths:
    """Render every report for ``result`` and replace ``out_dir``'s set with them as a whole (see the module
    docstring: a reader sees the old set or the new one, never a mix; the fallback's weaker guarantee is
    reported by ``whole_set=False``); returns their paths (under ``out_dir`` as given).

    ``measurements`` = (baseline, candidate), the Measurements ``result`` compared: with them the HTML
    report also charts each endpoint's latency distribution and its latency and request rate over time
    (without them it renders all the rest). The Markdown summary links to ``index.html`` next to it.
    ``explanations`` (endpoint key → entry of an explain.json, :mod:`parity.report.explain`): the HTML endpoint
    details and bottleneck table and summary.md show them; an explain.json in ``out_dir`` is kept as any other file.
    Raises OSError when the directory cannot be written (or a report name in it is a directory: left as is).
    """
    from parity.report.html import render_html  # jinja2 (~35 ms): not for commands that only import this module

    rendered = {
        "index.html": render_html(result, meta, measurements, explanations),
        "parity.json": json.dumps(parity_json(result, meta), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        "junit.xml": junit_xml(result, explanations),
        "summary.md": summary_md(
            result,
            meta,
            report_link="index.html",
            without_body=without_body(measurements),
            explanations=explanations,
        ),
    }
    real = Path(os.path.realpath(out_dir))
    real.parent.mkdir(parents=True, exist_ok=True)
    whole = True
    with _locked(real.parent):
        _clean(real)
        for name in REPORT_FILES:
            if (real / name).is_dir() and not (real / name).is_symlink():
                raise IsADirectoryError(errno.EISDIR, "a report name is a directory", str(real / name))
        try:
            staged = _stage(real, rendered)
            _settle(staged, _swap(staged))
        except _CannotSwap:
            whole = False
            _write_each(real, rendered)
            _clean(real)
    index, data, junit, md = (out_dir / f for f in REPORT_FILES)
    return ReportPaths(index, data, junit, md, whole_set=whole)
