"""TFRecord files and ``tf.train.Example`` messages without importing TensorFlow.

Importing TensorFlow costs ~2.5 s and ~600 MB of resident memory per process,
more than the whole sharder may use. The formats are small and stable, so the
writers speak them directly; TensorFlow (``tf.data.TFRecordDataset``,
``tf.train.Example``) reads what they write byte for byte — the tests check it.

A TFRecord file is a sequence of::

    uint64 length (little endian)
    uint32 masked crc32c of the length bytes
    bytes  data
    uint32 masked crc32c of the data

and a compressed file is that whole sequence as one gzip (``GZIP``) or zlib
(``ZLIB``) DEFLATE stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from typing import IO, Any

import google_crc32c
from isal import isal_zlib

from kartdata import fs

#: DEFLATE level (ISA-L's scale, 0-3). Records hold JPEG bytes, which barely
#: compress: level 1 keeps nearly all of zlib level 6's saving. ISA-L writes
#: the same standard stream as zlib (any reader takes it) ~7x faster: 0.02
#: against 0.16 ms a 640x480 frame's record, an eighth of the sharder's
#: per-frame floor (docs/benchmarks.md, "Sharding at the per-frame floor").
COMPRESSION_LEVEL = 1
#: zlib ``wbits`` for each TFRecord compression type.
_WBITS = {"GZIP": 16 + zlib.MAX_WBITS, "ZLIB": zlib.MAX_WBITS}
_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")


class TFRecordError(ValueError):
    """A TFRecord file that does not parse; the message says where."""


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def check_compression(compression: str) -> str:
    if compression not in ("GZIP", "ZLIB", ""):
        raise ValueError(f"compression {compression!r} is not one of GZIP, ZLIB or '' (none)")
    return compression


class TFRecordWriter:
    """Writes records to a local file or ``tf.io.gfile`` path; tracks the bytes
    and sha256 of what lands on disk, so nothing has to be read back."""

    def __init__(self, path: str, compression: str = "GZIP") -> None:
        self.path = path
        self.compression = check_compression(compression)
        self._f: IO[bytes] = fs.open_file(path, "wb")
        self._z = (
            isal_zlib.compressobj(COMPRESSION_LEVEL, isal_zlib.DEFLATED, _WBITS[compression])
            if compression
            else None
        )
        self._sha = hashlib.sha256()
        self.records = 0
        #: Bytes of records before compression (the size target counts these).
        self.raw_bytes = 0
        #: Bytes written to the file so far.
        self.bytes = 0
        self._closed = False

    def write(self, data: bytes) -> None:
        header = _LEN.pack(len(data))
        frame = b"".join((header, _CRC.pack(masked_crc(header)), data, _CRC.pack(masked_crc(data))))
        self.raw_bytes += len(frame)
        self.records += 1
        self._emit(self._z.compress(frame) if self._z else frame)

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self._sha.update(chunk)
            self.bytes += len(chunk)
            self._f.write(chunk)

    def close(self, *, sync: bool = True) -> str:
        """Finish the stream (and fsync a local file); returns the sha256 hex."""
        if not self._closed:
            try:
                if self._z:
                    self._emit(self._z.flush())
                self._f.flush()
                if sync and not fs.is_remote(self.path):
                    os.fsync(self._f.fileno())
            except BaseException:
                self.abort()
                raise
            self._f.close()
            self._closed = True
        return self._sha.hexdigest()

    def abort(self) -> None:
        """Close without finishing; the file is garbage and a failing flush of
        its buffer (the disk that is full) is not news."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._f.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str, compression: str = "GZIP", *, verify: bool = True) -> Iterator[bytes]:
    """Each record's bytes, checking both checksums; :class:`TFRecordError`
    naming the file and the record number on anything truncated or corrupt."""
    with fs.open_file(path, "rb") as f:
        yield from iter_records(f, compression, where=path, verify=verify)


def iter_records(
    f: Any, compression: str = "GZIP", *, where: str = "", verify: bool = True
) -> Iterator[bytes]:
    """:func:`read_records` over an open binary file (anything with ``read``)."""
    check_compression(compression)
    path = where or str(getattr(f, "name", "<stream>"))
    buf = bytearray()
    z = zlib.decompressobj(_WBITS[compression]) if compression else None
    n = 0
    eof = False
    while True:
        while len(buf) < 12 and not eof:
            eof = not _fill(f, z, buf, path)
        if not buf and eof:
            return
        if len(buf) < 12:
            raise TFRecordError(f"{path}: record {n}: truncated length header")
        (length,) = _LEN.unpack_from(buf, 0)
        if verify and _CRC.unpack_from(buf, 8)[0] != masked_crc(bytes(buf[:8])):
            raise TFRecordError(f"{path}: record {n}: corrupt length header (crc mismatch)")
        need = 12 + length + 4
        while len(buf) < need and not eof:
            eof = not _fill(f, z, buf, path)
        if len(buf) < need:
            raise TFRecordError(f"{path}: record {n}: truncated ({len(buf)} of {need} bytes)")
        data = bytes(buf[12 : 12 + length])
        if verify and _CRC.unpack_from(buf, 12 + length)[0] != masked_crc(data):
            raise TFRecordError(f"{path}: record {n}: corrupt data (crc mismatch)")
        del buf[:need]
        n += 1
        yield data


def _fill(f: Any, z: Any, buf: bytearray, path: str) -> bool:
    """Append the next chunk to ``buf``; False at the end of the file."""
    chunk = f.read(1 << 20)
    if not chunk:
        if z is not None:
            if not z.eof:
                raise TFRecordError(f"{path}: compressed stream ends early (truncated file)")
            buf.extend(z.flush())
        return False
    if z is None:
        buf.extend(chunk)
        return True
    try:
        buf.extend(z.decompress(chunk))
    except zlib.error as e:
        raise TFRecordError(f"{path}: corrupt compressed stream ({e})") from None
    if z.unused_data:
        raise TFRecordError(f"{path}: data after the end of the compressed stream")
    return True


# ---------------------------------------------------------------------------
# tf.train.Example, built from its descriptor (wire-identical to TensorFlow's)
# ---------------------------------------------------------------------------


def _example_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="kartkit/tensorflow_example.proto", package="tensorflow", syntax="proto3"
    )

    def message(name: str) -> Any:
        m = fdp.message_type.add()
        m.name = name
        return m

    def add(m: Any, name: str, number: int, type_: int, label: int = F.LABEL_OPTIONAL, **kw: Any):
        f = m.field.add()
        f.name, f.number, f.type, f.label = name, number, type_, label
        for k, v in kw.items():
            setattr(f, k, v)
        return f

    rep = F.LABEL_REPEATED
    add(message("BytesList"), "value", 1, F.TYPE_BYTES, rep)
    add(message("FloatList"), "value", 1, F.TYPE_FLOAT, rep).options.packed = True
    add(message("Int64List"), "value", 1, F.TYPE_INT64, rep).options.packed = True
    feature = message("Feature")
    feature.oneof_decl.add().name = "kind"
    for i, (name, type_name) in enumerate(
        (("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")),
        start=1,
    ):
        add(
            feature,
            name,
            i,
            F.TYPE_MESSAGE,
            type_name=f".tensorflow.{type_name}",
            oneof_index=0,
        )
    features = message("Features")
    entry = features.nested_type.add()
    entry.name = "FeatureEntry"
    entry.options.map_entry = True
    add(entry, "key", 1, F.TYPE_STRING)
    add(entry, "value", 2, F.TYPE_MESSAGE, type_name=".tensorflow.Feature")
    add(features, "feature", 1, F.TYPE_MESSAGE, rep, type_name=".tensorflow.Features.FeatureEntry")
    add(message("Example"), "features", 1, F.TYPE_MESSAGE, type_name=".tensorflow.Features")

    # A private pool: TensorFlow's own Example may be loaded in the same process.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


_EXAMPLE: Any = None


def example_class() -> Any:
    """The ``tensorflow.Example`` protobuf message class (built once per process)."""
    global _EXAMPLE
    if _EXAMPLE is None:
        _EXAMPLE = _example_class()
    return _EXAMPLE
