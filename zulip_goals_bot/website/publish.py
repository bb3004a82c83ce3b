"""Putting a built site in place so that a reader never sees half of it.

The files are written to a new folder beside the output, which then takes the output's place:
on Linux with one ``renameat2(RENAME_EXCHANGE)`` (the two folders swap in a single step), elsewhere
with two renames (the output is missing for that instant, never half written).  The old folder
is then removed.  Entries of the old folder whose names start with a dot (``.git``) and a
``CNAME`` file are moved into the new one first, so a site kept in git or published with a
custom domain keeps working.  A folder that holds other files and was not made by a build is
never replaced: a typo in ``--output`` must not wipe someone's home directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from zulip_goals_bot.website.content import SiteError

# Kept from the old folder when a new build replaces it: version control, dot files, and the
# custom domain file of GitHub Pages.
KEPT_NAMES = frozenset({"CNAME"})
# Prefix of the folders a build writes before swapping them in; leftovers of a crash are removed.
WORK_PREFIX = ".building-"
OLD_PREFIX = ".replaced-"
# renameat2 flag that swaps two paths atomically (linux/fs.h).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _kept(name: str) -> bool:
    return name.startswith(".") or name in KEPT_NAMES


@lru_cache(maxsize=1)
def _renameat2() -> object | None:
    """libc's renameat2, when this system has it (Linux with glibc 2.28 or later)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step; False when the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    result = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)  # type: ignore[operator]
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EXDEV, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def check_output(output: Path, marker: str) -> None:
    """Refuse an output that is a file, or a folder with files not made by a build."""
    if output.exists() and not output.is_dir():
        raise SiteError(f"{output} is a file; the site needs a folder (new, empty or built before)")
    if output.is_dir() and not (output / marker).exists():
        foreign = sorted(p.name for p in output.iterdir() if not _kept(p.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise SiteError(
                f"{output} already holds files that a site build did not make ({shown}); "
                "choose a new or empty folder, so that nothing of yours is replaced"
            )
    if not output.parent.is_dir():
        raise SiteError(f"{output}: the folder {output.parent} does not exist")


def _clean_leftovers(parent: Path, name: str) -> None:
    for stale in parent.glob(f"{WORK_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in parent.glob(f"{OLD_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def publish(files: Iterable[tuple[str, bytes]], output: Path, marker: str) -> int:
    """Write ``files`` (relative paths and their bytes) as the folder ``output``, replacing it
    whole; returns how many files were written."""
    output = output.absolute()
    check_output(output, marker)
    parent, name = output.parent, output.name
    _clean_leftovers(parent, name)
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{name}-", dir=parent))
    moved: list[str] = []  # kept entries taken from the old folder, given back on failure
    written = 0
    try:
        for rel, data in files:
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written += 1
        # A web server (or a person) must be able to read what mkdtemp made private.
        os.chmod(work, 0o755)
        if not output.exists():
            work.rename(output)
            return written
        for entry in sorted(output.iterdir()):
            if _kept(entry.name) and not (work / entry.name).exists():
                entry.rename(work / entry.name)
                moved.append(entry.name)
        if _exchange(work, output):
            moved.clear()  # they are in place; ``work`` now holds the old site
        else:
            old = Path(tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{name}-", dir=parent))
            old.rmdir()
            output.rename(old)
            try:
                work.rename(output)
            except OSError:
                old.rename(output)
                raise
            moved.clear()
            work = old
    except BaseException as exc:  # a full disk, or the composition failing half way
        for kept in moved:
            if (work / kept).exists() and output.is_dir():
                (work / kept).rename(output / kept)
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError):
            raise SiteError(f"{output}: cannot write the site ({exc.strerror or exc})") from exc
        raise
    shutil.rmtree(work, ignore_errors=True)
    return written
