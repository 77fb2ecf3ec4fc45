"""Where a zstd frame ends, read off its block headers as its bytes stream past.

python-zstandard's fast streaming decoders (``read_to_iter``, ``stream_reader``) stop
quietly when their input runs out mid-frame: a cut object would decode as a shorter one.
``FrameWalk`` follows the frame's layout (RFC 8878, section 3.1.1) without decoding it:
a few bytes of header per block of up to 128 KiB, skipped over in Python at no real cost,
so the decoder can run at C speed and a cut or padded stream is still caught.
"""

from __future__ import annotations

from workers.core.errors import IntegrityError

MAGIC = b"\x28\xb5\x2f\xfd"
_FRAME, _FRAME_REST, _BLOCK, _LAST, _DONE = range(5)
_FCS_BYTES = (0, 2, 4, 8)
_DICT_BYTES = (0, 1, 2, 4)
_RLE, _RESERVED = 1, 3


class FrameWalk:
    """Feed it every byte of one zstd frame, in order; ``ended`` once the frame is whole."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.need = 5  # the magic number and the frame header descriptor
        self.state = _FRAME
        self.skip = 0
        self.checksum = False
        self.trailing = 0
        """Bytes seen after the frame's end."""

    @property
    def ended(self) -> bool:
        """Whether the frame (its last block and its checksum) has passed in full."""
        return self.state == _DONE

    def feed(self, data: bytes) -> None:
        """Follow the next bytes of the stream."""
        view = memoryview(data)
        at, end = 0, len(view)
        while at < end:
            if self.state == _DONE:
                self.trailing += end - at
                return
            if self.skip:
                step = min(self.skip, end - at)
                self.skip -= step
                at += step
            elif self.state == _LAST:
                self.state = _DONE
            else:
                take = min(self.need - len(self.head), end - at)
                self.head += view[at : at + take]
                at += take
                if len(self.head) == self.need:
                    self._parse()
        if self.state == _LAST and not self.skip:
            self.state = _DONE

    def _parse(self) -> None:
        head = self.head
        if self.state == _FRAME:
            if head[:4] != MAGIC:
                raise IntegrityError("compressed stream is damaged: it is not a zstd frame")
            descriptor = head[4]
            single_segment = bool(descriptor & 0x20)
            self.checksum = bool(descriptor & 0x04)
            fcs = _FCS_BYTES[descriptor >> 6] or (1 if single_segment else 0)
            rest = (0 if single_segment else 1) + _DICT_BYTES[descriptor & 0x03] + fcs
            if rest:
                self.state, self.need = _FRAME_REST, 5 + rest
                return
        elif self.state == _BLOCK:
            header = int.from_bytes(head, "little")
            kind, size = (header >> 1) & 0x03, header >> 3
            if kind == _RESERVED:
                raise IntegrityError("compressed stream is damaged: a reserved block type")
            self.skip = 1 if kind == _RLE else size
            if header & 0x01:  # the last block: then the checksum, if the frame has one
                self.skip += 4 if self.checksum else 0
                self.state = _LAST
                head.clear()
                return
        head.clear()
        self.state, self.need = _BLOCK, 3
