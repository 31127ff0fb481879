"""Dataset file access: local paths through the OS (fast, with fsync), anything
with a scheme (``gs://``, ``hdfs://``, ``ram://``, ``s3://``) through
``tf.io.gfile`` — so no code assumes a dataset is on a local disk."""

from __future__ import annotations

import os
import posixpath
from typing import IO


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(*parts: str) -> str:
    first = str(parts[0])
    if is_remote(first):
        return posixpath.join(first, *map(str, parts[1:]))
    return os.path.join(first, *map(str, parts[1:]))


def exists(path: str) -> bool:
    if is_remote(path):
        import tensorflow as tf

        return bool(tf.io.gfile.exists(path))
    return os.path.exists(path)


def makedirs(path: str) -> None:
    if is_remote(path):
        import tensorflow as tf

        tf.io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    if is_remote(path):
        import tensorflow as tf

        return sorted(n.rstrip("/") for n in tf.io.gfile.listdir(path))
    return sorted(os.listdir(path))


def remove(path: str) -> None:
    if is_remote(path):
        import tensorflow as tf

        tf.io.gfile.remove(path)
    else:
        os.remove(path)


def rename(src: str, dst: str) -> None:
    """Move ``src`` over ``dst`` (atomic on a local filesystem)."""
    if is_remote(src):
        import tensorflow as tf

        tf.io.gfile.rename(src, dst, overwrite=True)
    else:
        os.replace(src, dst)


def size(path: str) -> int:
    if is_remote(path):
        import tensorflow as tf

        return int(tf.io.gfile.stat(path).length)
    return os.path.getsize(path)


def open_file(path: str, mode: str = "rb") -> IO:
    """An open file, to use in ``with`` or to close yourself: a plain object
    rather than a generator, so a close that fails (a full disk) raises where
    it is called, not later from the garbage collector."""
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: a reader (or a crash) sees the
    old content or the new, never a mix. Local writes are fsynced, file and
    directory, before this returns."""
    tmp = path + ".tmp"
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(data)
        tf.io.gfile.rename(tmp, path, overwrite=True)
        return
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def fsync_dir(path: str) -> None:
    if is_remote(path):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
