"""Per-file columns of a list held in a few numpy arrays rather than one Python object per file.

A forked DataLoader worker that reads a Python list of str raises each string's reference count,
which writes to the page holding it: over an epoch every worker copies the whole list
(copy-on-write), so each worker grows with the list's size. Reading these columns writes nothing
the parent owns, so workers share them with the parent for the whole epoch."""

import os
from collections.abc import Sequence

import numpy

ENCODING, ERRORS = "utf-8", "surrogateescape"  # round-trips any name os.listdir or a list gave us


class PackedStrings(Sequence):
    """Strings (or paths: os.fspath) as one UTF-8 byte buffer, NUL-separated, and the offsets where
    each starts and ends; indexing with an int gives a new str, with an array of indexes a
    PackedStrings of those strings (sharing the buffer). No string may hold a NUL (no file name
    can)."""

    def __init__(self, strings=(), buffer=None, starts=None, ends=None):
        if buffer is None:
            strings = [os.fspath(text) for text in strings]
            buffer, starts, ends = pack_text("\0".join(strings), len(strings))
        self.buffer, self.starts, self.ends = buffer, starts, ends

    @classmethod
    def from_text(cls, text, count):
        """The `count` strings of `text`, NUL-separated (built without a str per string)."""
        buffer, starts, ends = pack_text(text, count)
        return cls(buffer=buffer, starts=starts, ends=ends)

    def __len__(self):
        return len(self.ends)

    def __getitem__(self, index):
        if isinstance(index, (int, numpy.integer)):
            if index < 0:
                index += len(self)
            if not 0 <= index < len(self):
                raise IndexError("PackedStrings index %d out of range" % index)
            return self.buffer[int(self.starts[index]):int(self.ends[index])].tobytes().decode(ENCODING, ERRORS)
        return self.take(numpy.arange(len(self))[index] if isinstance(index, slice) else index)

    def take(self, indexes):
        """The strings at `indexes`, in that order (the same buffer; no str is made)."""
        indexes = numpy.asarray(indexes, dtype=numpy.int64).reshape(-1)
        return PackedStrings(buffer=self.buffer, starts=self.starts[indexes], ends=self.ends[indexes])

    def __iter__(self):
        if not len(self):
            return
        first = int(self.starts.min())
        data = self.buffer[first:int(self.ends.max())].tobytes()  # the span these strings use, once
        for start, end in zip((self.starts - first).tolist(), (self.ends - first).tolist()):
            yield data[start:end].decode(ENCODING, ERRORS)

    def __eq__(self, other):
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self):
        return "PackedStrings(%d strings)" % len(self)


def pack_text(text, count):
    """(buffer, starts, ends) of the `count` NUL-separated strings of `text`; ValueError when it
    holds another number of them (a string with a NUL)."""
    buffer = numpy.frombuffer(text.encode(ENCODING, ERRORS), dtype=numpy.uint8)
    if count == 0:
        return buffer[:0], numpy.zeros(0, numpy.int64), numpy.zeros(0, numpy.int64)
    separators = numpy.flatnonzero(buffer == 0)
    if len(separators) != count - 1:
        raise ValueError("%d strings expected, %d found: a string holds a NUL" % (count, len(separators) + 1))
    starts = numpy.concatenate([[0], separators + 1]).astype(numpy.int64)
    ends = numpy.concatenate([separators, [len(buffer)]]).astype(numpy.int64)
    return buffer, starts, ends


def joined_paths(prefix, names):
    """PackedStrings of os.path.join(prefix, name) for every name (a list of str): one string
    operation when no name is absolute, where os.path.join would return the name itself."""
    text = "\0".join(names)
    if names and not text.startswith(os.sep) and ("\0" + os.sep) not in text:
        prefix = os.path.join(prefix, "")
        return PackedStrings.from_text(prefix + text.replace("\0", "\0" + prefix), len(names))
    return PackedStrings(os.path.join(prefix, name) for name in names)


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
