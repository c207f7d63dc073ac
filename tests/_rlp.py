"""Just enough RLP to take signed envelopes apart in tests."""

from __future__ import annotations

Item = bytes | list["Item"]


def encode(item: Item) -> bytes:
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _prefix(len(item), 0x80) + item
    payload = b"".join(encode(i) for i in item)
    return _prefix(len(payload), 0xC0) + payload


def _prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(raw)]) + raw


def decode(data: bytes) -> Item:
    item, rest = _decode(data)
    if rest:
        raise ValueError("trailing bytes")
    return item


def split(data: bytes) -> list[bytes]:
    """The raw encodings of the items concatenated in ``data`` (a chain.rlp of blocks)."""
    out = []
    while data:
        _, rest = _decode(data)
        out.append(data[: len(data) - len(rest)])
        data = rest
    return out


def _decode(data: bytes) -> tuple[Item, bytes]:
    b = data[0]
    if b < 0x80:
        return data[:1], data[1:]
    if b < 0xB8:
        n = b - 0x80
        return data[1 : 1 + n], data[1 + n :]
    if b < 0xC0:
        k = b - 0xB7
        n = int.from_bytes(data[1 : 1 + k], "big")
        return data[1 + k : 1 + k + n], data[1 + k + n :]
    if b < 0xF8:
        n, start = b - 0xC0, 1
    else:
        k = b - 0xF7
        n, start = int.from_bytes(data[1 : 1 + k], "big"), 1 + k
    payload, rest = data[start : start + n], data[start + n :]
    items: list[Item] = []
    while payload:
        item, payload = _decode(payload)
        items.append(item)
    return items, rest


def to_int(raw: Item) -> int:
    assert isinstance(raw, bytes)
    return int.from_bytes(raw, "big")


def from_int(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
