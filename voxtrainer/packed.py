"""Per-file columns of a list held in a few numpy arrays rather than one Python object per file.

A forked DataLoader worker that reads a Python list of str raises each string's reference count,
which writes to the page holding it: over an epoch every worker copies the whole list
(copy-on-write), about half a GB per worker for VoxCeleb2's million files. Reading these columns
writes nothing the parent owns, so workers share them with the parent for the whole epoch."""

from collections.abc import Sequence

import numpy

ENCODING, ERRORS = "utf-8", "surrogateescape"  # round-trips any name os.listdir or a list gave us


class PackedStrings(Sequence):
    """Strings as one UTF-8 byte buffer and the offsets of their ends; indexing with an int gives
    a new str, with an array of indexes a PackedStrings of those strings."""

    def __init__(self, strings=(), buffer=None, ends=None):
        if buffer is None:
            encoded = [text.encode(ENCODING, ERRORS) for text in strings]
            ends = numpy.cumsum([len(item) for item in encoded], dtype=numpy.int64)
            buffer = numpy.frombuffer(b"".join(encoded), dtype=numpy.uint8)
        self.buffer, self.ends = buffer, ends

    def __len__(self):
        return len(self.ends)

    def _bounds(self, index):
        end = int(self.ends[index])
        return (int(self.ends[index - 1]) if index > 0 else 0), end

    def __getitem__(self, index):
        if isinstance(index, (int, numpy.integer)):
            if index < 0:
                index += len(self)
            if not 0 <= index < len(self):
                raise IndexError("PackedStrings index %d out of range" % index)
            start, end = self._bounds(index)
            return self.buffer[start:end].tobytes().decode(ENCODING, ERRORS)
        return self.take(numpy.arange(len(self))[index] if isinstance(index, slice) else index)

    def take(self, indexes):
        """The strings at `indexes`, in that order, packed anew (vectorised: no str is made)."""
        indexes = numpy.asarray(indexes, dtype=numpy.int64).reshape(-1)
        ends = self.ends[indexes]
        starts = numpy.where(indexes > 0, self.ends[numpy.maximum(indexes - 1, 0)], 0)
        lengths = ends - starts
        new_ends = numpy.cumsum(lengths, dtype=numpy.int64)
        # Byte i of the result comes from starts[item] + (i - first byte of item in the result).
        item_of_byte = numpy.repeat(numpy.arange(len(indexes)), lengths)
        source = starts[item_of_byte] + numpy.arange(int(new_ends[-1]) if len(indexes) else 0) \
            - (new_ends - lengths)[item_of_byte]
        return PackedStrings(buffer=self.buffer[source], ends=new_ends)

    def __iter__(self):
        data = self.buffer.tobytes()  # one copy of the buffer, for this loop only
        start = 0
        for end in self.ends.tolist():
            yield data[start:end].decode(ENCODING, ERRORS)
            start = end

    def __eq__(self, other):
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self):
        return "PackedStrings(%d strings)" % len(self)


class IntColumn(Sequence):
    """Integers in one numpy array, read as Python ints; `numpy.asarray` gives the array itself."""

    def __init__(self, values):
        self.array = numpy.asarray(values, dtype=numpy.int64)

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        if isinstance(index, (int, numpy.integer)):
            return int(self.array[index])
        return IntColumn(self.array[index])

    def __iter__(self):
        return iter(self.array.tolist())

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def __eq__(self, other):
        if not isinstance(other, (Sequence, numpy.ndarray)) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and bool(numpy.array_equal(self.array, numpy.asarray(other)))

    def __repr__(self):
        return "IntColumn(%r)" % self.array.tolist()[:8]
