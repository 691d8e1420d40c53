"""Writing files so that a crash, a kill or a full disk leaves the old or the new
complete file (reliability D1), with a typed error that says what to do."""
from __future__ import annotations

import errno
import math
import os
import secrets
import stat

from .errors import FileWriteError

_WRITE_HINTS = {errno.ENOSPC: "free some space on that disk", errno.EDQUOT: "free some of your disk quota",
                errno.EFBIG: "the file is beyond the file size limit (ulimit -f) or the file system's",
                errno.EACCES: "check the folder's permissions", errno.EPERM: "check the folder's permissions",
                errno.EROFS: "the file system is read-only", errno.ENOENT: "create the folder first"}


def _write_error(path: str, e: OSError) -> FileWriteError:
    kept = "the previous file is unchanged" if os.path.lexists(path) else "nothing was written"
    hint = _WRITE_HINTS.get(e.errno, "check the path")
    error = FileWriteError(f"{path}: cannot write the file ({e.strerror or e}); {kept}. {hint.capitalize()}, "
                           "then write it again")
    error.errno = e.errno       # not strerror / filename: OSError's str() would then drop the message
    return error


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file, fsync, os.replace: a crash, a kill or a full disk leaves
    the old or the new complete file (D1); a failed write raises FileWriteError.
    A kill can leave the temp file (.NAME.HEX.tmp) behind, never under NAME."""
    path = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) and not stat.S_ISDIR(os.stat(path).st_mode):
            # A FIFO, a device, a socket: replacing it is not what anyone asking to write a file means.
            raise FileWriteError(f"{path}: exists and is not a regular file (a FIFO or a device?); nothing was "
                                 "written. Choose another path")
    except (FileNotFoundError, NotADirectoryError, ValueError):
        pass
    except OSError as e:
        raise _write_error(path, e) from None
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any new file
    # (tempfile.mkstemp would leave the model readable by its owner only).
    fd = None
    try:
        # Opened inside the try: an interrupt raised as the open returns (before fd
        # is even assigned) still removes the file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if not (fd is None and isinstance(e, FileExistsError)):     # O_EXCL: then the name is not ours
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:     # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(dir_fd)    # make the rename itself durable
    finally:
        os.close(dir_fd)


def json_ready(value):
    """value with every non-finite float as None and keys as strings: JSON a strict reader takes
    (an exact match's PSNR is inf, which JSON cannot spell)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
