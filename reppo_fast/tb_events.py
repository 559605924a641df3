"""TensorBoard event files: read back their scalars, and cut them back to a step when a run resumes.

An event file is a sequence of TFRecords: uint64 little-endian length, uint32 masked CRC32C of the length
bytes, the serialized `Event`, uint32 masked CRC32C of it. A process killed mid-write leaves a truncated
final record; reading stops cleanly at the first record that is cut or fails its checksum, as TensorBoard's
own reader does, so everything after it is treated as never written.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event
from tensorboardX.record_writer import RecordWriter, masked_crc32c

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def event_files(tb_dir: Path | str) -> list[Path]:
    """The event files of `tb_dir` in name order, which is creation order (their names start with a
    timestamp) and the order TensorBoard reads them in."""
    tb_dir = Path(tb_dir)
    if not tb_dir.is_dir():
        return []
    return sorted(p for p in tb_dir.iterdir() if p.is_file() and "tfevents" in p.name)


def _crc_ok(data: bytes, crc: bytes) -> bool:
    return masked_crc32c(data) == _CRC.unpack(crc)[0]


def records(path: Path | str) -> Iterator[bytes]:
    """The payload of each intact record of one file, up to the first cut or corrupt one."""
    blob = Path(path).read_bytes()
    pos = 0
    while pos + _LENGTH.size + _CRC.size <= len(blob):
        length_bytes = blob[pos:pos + _LENGTH.size]
        length_crc = blob[pos + _LENGTH.size:pos + _LENGTH.size + _CRC.size]
        if not _crc_ok(length_bytes, length_crc):
            return
        (length,) = _LENGTH.unpack(length_bytes)
        start = pos + _LENGTH.size + _CRC.size
        end = start + length + _CRC.size
        if end > len(blob):
            return
        data = blob[start:start + length]
        if not _crc_ok(data, blob[start + length:end]):
            return
        yield data
        pos = end


def events(path: Path | str) -> Iterator[Event]:
    for data in records(path):
        yield Event.FromString(data)


def _scalar_value(value) -> float | None:
    """The number a `Summary.Value` holds if it is a scalar: tensorboardX writes `simple_value`; writers in
    TensorBoard's newer style write a one-element tensor."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return value.simple_value
    if kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
        numbers = list(value.tensor.float_val) or list(value.tensor.double_val)
        if len(numbers) == 1:
            return numbers[0]
    return None


def scalars(tb_dir: Path | str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar event of `tb_dir`: tag -> [(step, value)], in file order, files in name order."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in event_files(tb_dir):
        for event in events(path):
            for value in event.summary.value:
                number = _scalar_value(value)
                if number is not None:
                    out.setdefault(value.tag, []).append((event.step, number))
    return out


def _keep(event: Event, last_step: int) -> bool:
    # A file_version event is a header (each file's first record, or the one purge_step adds), not data:
    # kept whatever step it carries, so every file still opens with one.
    return bool(event.file_version) or event.step <= last_step


def truncate_events(tb_dir: Path | str, last_step: int) -> None:
    """Rewrite each event file of `tb_dir` to keep only events with step <= `last_step` (and its header),
    dropping a truncated final record. Atomic per file: a crash leaves each file either old or new."""
    for path in event_files(tb_dir):
        all_records = list(records(path))
        kept = [data for data in all_records if _keep(Event.FromString(data), last_step)]
        intact = sum(_LENGTH.size + 2 * _CRC.size + len(data) for data in all_records)
        if len(kept) == len(all_records) and intact == path.stat().st_size:
            continue  # nothing to drop: leave the file (and its mtime) alone
        _rewrite(path, kept)


def _rewrite(path: Path, payloads: list[bytes]) -> None:
    # The temporary name lacks "tfevents", so neither TensorBoard nor event_files() reads one a crash left.
    tmp = path.with_name("." + path.name.replace("tfevents", "truncating"))
    writer = RecordWriter(str(tmp))
    try:
        for data in payloads:
            writer.write(data)
        writer.flush()  # flushes and fsyncs, so the replace below never exposes a half-written file
    finally:
        writer.close()
    os.replace(tmp, path)
