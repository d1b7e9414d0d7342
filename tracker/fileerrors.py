"""A file the tracker cannot use at all, said in one line: the path and the fix."""

from __future__ import annotations

import errno
import os


def unusable(err: OSError) -> str:
    path = err.filename or "?"
    if err.errno == errno.EISDIR:
        fix = "it is a directory; point --root at the data root holding logs/ and controls/"
    elif err.errno == errno.ELOOP:
        fix = "its symbolic links form a loop; fix the link"
    elif err.errno in (errno.EACCES, errno.EPERM):
        fix = ("permission denied; give this user read access to the inputs and write "
               "access to logs/")
    elif err.errno == errno.ENOENT and os.path.islink(path):
        fix = f"a link to {os.readlink(path)!r}, which does not exist; fix the link"
    elif err.errno == errno.ENOTDIR:
        fix = "a part of the path is a file, not a directory; check --root"
    else:
        fix = f"{err.strerror or err}; check the path"
    return f"{path}: cannot use: {fix}"


def dangling(path: os.PathLike | str) -> str:
    """' (a link to ..., which does not exist; fix the link)' for a dangling link, else ''."""
    if os.path.islink(path) and not os.path.exists(path):
        return f" (a link to {os.readlink(path)!r}, which does not exist; fix the link)"
    return ""
