"""Label Studio's brush RLE, in pure Python (no numpy: our lock has none).

Label Studio stores a BrushLabels region as `value.rle`: a list of byte values packing the region's
RGBA pixels (natural image size, row-major, 4 values per pixel) in the format of thi.ng's
`@thi.ng/rle-pack` (https://github.com/thi-ng/umbrella/blob/develop/packages/rle-pack/src/index.ts).
This module mirrors `label_studio_sdk/converter/brush.py` (`decode_rle`, `encode_rle`, `mask2rle`)
of label-studio-sdk 2.1.2, the SDK installed with label-studio 1.23.2; the tests compare both
directions byte for byte against that file run in Label Studio's own venv.

Why our own copy: `label-studio-sdk` cannot join our lock (it pins pyjwt<2.14, Airflow's lock has
2.15.1); the old standalone `label-studio-converter` 0.0.59 (2024, superseded by the SDK) pulls
pandas, nltk and ijson~=3.2, and `label-studio-brush-rle-rs` 0.1.1 needs numpy. None fits.

Bit stream, most significant bit first:
    32 bits   n, the number of values
     5 bits   word size - 1 (Label Studio: 8)
    4 x 4 bits  the four repeat-count widths - 1 (Label Studio: 3, 4, 8, 16)
    chunks until n values are out: 1 bit repeat flag, 2 bits width index w, widths[w] bits count - 1,
        then one word repeated `count` times (flag 1) or `count` literal words (flag 0)
    zero bits up to a whole byte (the SDK encoder always adds 1..8 of them).

What the browser saves (measured with Label Studio 1.23.2 in Chromium): every pixel's R, G, B and A
are equal to its alpha, 0..255, with anti-aliased stroke edges; `mask_from_rle` thresholds at 128.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

LS_WORD_SIZE = 8
LS_RLE_SIZES = (3, 4, 8, 16)
MASK_THRESHOLD = 128  # alpha at or above this is inside the brush region
_RUNS = re.compile(rb"(.)\1*", re.DOTALL)


class RleError(ValueError):
    """The RLE data is malformed or does not match the expected image size."""


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.total = len(data) * 8

    def read(self, bits: int) -> int:
        if bits == 0:
            return 0
        end = self.pos + bits
        if end > self.total:
            raise RleError(f"RLE data ends early (needs bit {end}, has {self.total})")
        first, last = self.pos >> 3, (end + 7) >> 3
        window = int.from_bytes(self.data[first:last], "big")
        self.pos = end
        return (window >> (last * 8 - end)) & ((1 << bits) - 1)


def decode(rle: list[int] | bytes) -> bytearray:
    """All values of an RLE stream (Label Studio: RGBA bytes), as `decode_rle` of the SDK returns them.

    Raises RleError for a truncated stream, bytes outside 0..255 or a word size above 8 bits.
    """
    try:
        data = bytes(rle)
    except (TypeError, ValueError) as exc:
        raise RleError(f"RLE must be a list of byte values 0..255: {exc}") from None
    bits = _BitReader(data)
    count = bits.read(32)
    word = bits.read(5) + 1
    if word > 8:
        raise RleError(f"RLE word size {word} bits: only byte values (<= 8 bits) are supported")
    sizes = [bits.read(4) + 1 for _ in range(4)]
    out = bytearray(count)
    i = 0
    while i < count:
        repeat = bits.read(1)
        j = i + 1 + bits.read(sizes[bits.read(2)])
        if j > count:
            raise RleError(f"RLE run past the declared {count} values")
        if repeat:
            out[i:j] = bytes((bits.read(word),)) * (j - i)
        else:
            for k in range(i, j):
                out[k] = bits.read(word)
        i = j
    return out


def _runs(values: bytes) -> Iterator[tuple[int, int]]:
    """(value, run length) of consecutive equal bytes."""
    for match in _RUNS.finditer(values):
        yield match.group()[0], match.end() - match.start()


def _encode_runs(count: int, runs: Iterator[tuple[int, int]]) -> list[int]:
    # Chunk by chunk as the SDK's encode_rle writes them (word size 8, widths 3, 4, 8, 16).
    parts = [f"{count:032b}", f"{LS_WORD_SIZE - 1:05b}", "".join(f"{s - 1:04b}" for s in LS_RLE_SIZES)]
    for value, length in runs:
        byte = f"{value:08b}"
        if length == 1:
            parts.append("000000" + byte)
        elif length <= 8:
            parts.append(f"100{length - 1:03b}{byte}")
        elif length <= 16:
            parts.append(f"101{length - 1:04b}{byte}")
        elif length <= 256:
            parts.append(f"110{length - 1:08b}{byte}")
        else:
            while length > 2**16:
                parts.append(f"111{2**16 - 1:016b}{byte}")
                length -= 2**16
            parts.append(f"111{length - 1:016b}{byte}")
    text = "".join(parts)
    text += "0" * (8 - len(text) % 8)  # the SDK pads 1..8 bits, a whole zero byte when aligned
    return list(int(text, 2).to_bytes(len(text) // 8, "big"))


def encode(values: bytes) -> list[int]:
    """RLE of byte values, identical to the SDK's `encode_rle(values)` (word size 8, widths 3, 4, 8, 16)."""
    return _encode_runs(len(values), _runs(bytes(values)))


def encode_mask(mask: bytes, width: int, height: int) -> list[int]:
    """Brush RLE of a one-value-per-pixel mask (0..255, row-major), identical to the SDK's `mask2rle`.

    Each pixel becomes four equal RGBA values, so a run of L pixels is a run of 4L values.
    Raises ValueError when the mask does not have width * height bytes.
    """
    if len(mask) != width * height:
        raise ValueError(f"mask: expected {width}x{height} = {width * height} bytes, got {len(mask)}")
    return _encode_runs(4 * len(mask), ((value, 4 * length) for value, length in _runs(bytes(mask))))


def mask_from_rle(rle: list[int] | bytes, width: int, height: int, threshold: int = MASK_THRESHOLD) -> bytearray:
    """1 where a brush region's alpha is >= threshold, else 0; width * height bytes, row-major.

    Raises RleError when the stream is malformed or does not hold width * height RGBA pixels.
    """
    values = decode(rle)
    if len(values) != width * height * 4:
        raise RleError(f"brush RLE holds {len(values)} values, expected {width}x{height}x4 = {width * height * 4}")
    inside = bytes(int(v >= threshold) for v in range(256))
    return bytearray(bytes(values[3::4]).translate(inside))
