"""The byte encoder: a program -> bytes that fuzz/decoder.py decodes back to the same ops.

Every corpus file seeds the fuzzer this way. The encoder replays the decoder's
tracked state (``_Track``) op by op, and writes each argument as the first
*clustered* slot byte that decodes to it (so libFuzzer's byte mutations of a seed
land on nearby clustered choices), else as ESC plus a literal varint. Each record
is then decoded back and compared, so a mismatch is reported at once, never a
silently different seed. Comments and expectations are not encoded.
"""
from __future__ import annotations

from mmdiff.fuzz import decoder as D
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.text import format_op
from mmdiff.reference.ops import Op


def _varint(x: int) -> bytes:
    """LEB128 of x, at most decoder.MAX_VARINT bytes (the last byte keeps 8 bits)."""
    out = bytearray()
    for _ in range(D.MAX_VARINT - 1):
        if x < 0x80:
            out.append(x)
            return bytes(out)
        out.append(0x80 | (x & 0x7F))
        x >>= 7
    if x > 0xFF:
        raise OverflowError("literal too wide")
    out.append(x)
    return bytes(out)


def _slot_bytes(t: D._Track, vals: dict, slot: D._Slot, want) -> tuple[int, bytes]:
    """(slot byte, extension) that make `slot` decode to `want` given the earlier vals."""
    for b in range(D.ESC):
        if slot.dec(t, vals, b, 0) == want:
            return b, b""
    x = slot.lit(t, vals, want)
    if x is None or x < 0:
        raise ValueError(f"{want!r} does not exist (or already exists) at this line")
    return D.ESC, _varint(x)


def _encode_op(t: D._Track, op: Op, index: int) -> bytes:
    cls = type(op)
    if D._needs(cls, t, D.ESC) is not None:
        raise ValueError(f"op {index + 1} '{format_op(op)}': names a pin, subscription, file "
                         f"or vm before any exists; fix the program (text.parse rejects it)")
    if D.walk_too_long(t, op):
        raise ValueError(f"op {index + 1} '{format_op(op)}': populates more than "
                         f"{D.POPULATE_MAX} pages; decode never emits that (it would stall "
                         f"the fuzzer): shrink the range")
    sel = D.SELECTOR.index(cls)
    slot_bytes = bytearray(D.NSLOTS)
    ext = bytearray()
    vals: dict = {}
    for i, (field, slot) in enumerate(D._SPECS[cls]):
        want = getattr(op, field) if isinstance(field, str) \
            else tuple(getattr(op, f) for f in field)
        try:
            b, extra = _slot_bytes(t, vals, slot, want)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"op {index + 1} '{format_op(op)}': field {field}: {e}; "
                             f"fix the program (text.parse rejects it too)") from None
        slot_bytes[i] = b
        ext += extra
        if isinstance(field, str):
            vals[field] = want
        else:
            vals.update(zip(field, want))
    if D._needs(cls, t, slot_bytes[0]) is not None:
        # a clustered slot 0 would make decode substitute another op (_needs): literal
        # (an op without slots, ksm_scan, just gets ESC there: unused, no varint)
        if D._SPECS[cls]:
            field, slot = D._SPECS[cls][0]
            ext = bytearray(_varint(slot.lit(t, {}, getattr(op, field)))) + ext
        slot_bytes[0] = D.ESC
    record = bytes([sel]) + bytes(slot_bytes) + bytes(ext)
    got, end = D._decode_record(t, cls, record, 0, len(record))
    if got != op or end != len(record):
        # Only ops text.parse rejects get here (e.g. `vm V START` without N); if
        # parse accepts this one, it is an encoder bug (record printed for that).
        raise ValueError(f"op {index + 1} '{format_op(op)}' is not expressible in the byte "
                         f"format: it decodes back as '{format_op(got) if got else None}' "
                         f"(record {record.hex()})")
    D._apply(t, got)
    return record


def encode(prog: Prog) -> bytes:
    """Bytes with ``decode(encode(prog)).ops() == prog.ops()``; ValueError if inexpressible.

    Inexpressible: more than decoder.MAX_OPS ops, a name used before it exists (or a
    file/vm defined twice: programs text.parse rejects), or a populate walking more
    than decoder.POPULATE_MAX pages (decoder.walk_too_long).
    """
    ops = prog.ops()
    if len(ops) > D.MAX_OPS:
        raise ValueError(f"{prog.source}: {len(ops)} ops, the byte format holds at most "
                         f"{D.MAX_OPS}; split the program")
    t = D._Track()
    out = bytearray()
    for i, op in enumerate(ops):
        out += _encode_op(t, op, i)
    return bytes(out)
