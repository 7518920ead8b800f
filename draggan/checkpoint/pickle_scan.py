"""An opcode-level scan of a pickle before it is unpickled: the sizes it would build, bounded before any is.

A pickle of a few bytes can make the unpickler allocate gigabytes or crash the process: a memo index of
2^26 makes the C unpickler size its memo table by it (1 GB), a count of 2^40 before a byte string makes it
read that much, a tuple nested a million deep used as a dict key makes the hash recurse in C until the
stack overflows. This scan walks the opcodes (their table is the standard library's `pickletools`),
stepping over the data of bytes and strings instead of reading it, and simulates the unpickler's stack and
memo with one integer per value, so that it costs little whatever the file claims. It refuses, with a
`CheckpointError`, a pickle in which

- a counted argument (bytes, strings, long integers, a frame) is longer than what is left of the data;
- a frame (protocol 4) begins before the previous one ended, or an opcode crosses a frame's end: the
  standard library's Python unpickler refuses both, and its C unpickler, which does not, then reads the
  stream at other offsets than this scan (a mutated file made it ask the file for gigabytes);
- a memo index is above the number of opcodes read so far (a real pickler numbers its memo from 0) or
  above `max_memo`;
- more than `max_objects` values are built;
- a value is nested more than `max_depth` levels deep;
- a list, dict, set or object is filled after it was placed into another value, or holds itself. Python's
  pickler fills every container before it places it anywhere, unless the data is recursive (which a
  network's weights never are); refusing the rest makes the depth counted here exact (every value's depth
  is known when it is built) and leaves no cycle;
- an opcode is unknown, or the stack or memo is used in a way the unpickler itself would refuse.

It runs no code and builds no object of the file: what the unpickler then builds is bounded by these
counts and by the size of the data.
"""

from __future__ import annotations

import pickletools
from array import array

from draggan import limits
from draggan.checkpoint.errors import CheckpointError

_MARK = -1  # the mark on the simulated stack; a value is a node id, 0 for any value that holds nothing
_LEAF = 0
_LEAF_KINDS = {"int_or_bool", "int", "bytes_or_str", "bytes", "bytearray", "None", "bool", "str", "float", "buffer"}
_LEAF_OPS = {"GLOBAL", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER"}  # names and ids, no children
_LENGTH = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
           pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}
_FILL = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # pop this many values into the container below them
_FILL_TO_MARK = ("APPENDS", "SETITEMS", "ADDITEMS")
_INDEXED = {"BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET", "PROTO", "FRAME"}  # fixed-width unsigned argument


def _opcode_table() -> dict[int, tuple]:
    """opcode byte -> (name, argument: ('fixed', width) | ('counted', width, signed) | ('lines', n) | None,
    values taken below a mark (None: no mark), values taken, pushes a value, the value holds nothing)."""
    table = {}
    for op in pickletools.opcodes:
        n = None if op.arg is None else op.arg.n
        if n is None:
            arg = None
        elif n in _LENGTH:
            arg = ("counted", *_LENGTH[n])
        elif n == pickletools.UP_TO_NEWLINE:
            arg = ("lines", 2 if op.name in ("GLOBAL", "INST") else 1)
        else:
            arg = ("fixed", n)
        before = [s.name for s in op.stack_before]
        below_mark = before.index("mark") if "mark" in before else None
        takes = len(before) if below_mark is None else below_mark
        pushes = bool(op.stack_after) and op.name not in ("DUP", "MEMOIZE")
        leaf = op.name in _LEAF_OPS or (pushes and op.stack_after[0].name in _LEAF_KINDS)
        table[op.code.encode("latin-1")[0]] = (op.name, arg, below_mark, takes, pushes, leaf)
    return table


_OPCODES = _opcode_table()


def scan_pickle(data, start: int = 0, *, source: str = "the pickle",
                max_objects: int = limits.MAX_PICKLE_OBJECTS,  # values built, all kinds together
                max_memo: int = limits.MAX_PICKLE_OBJECTS,  # highest memo index
                max_depth: int = limits.MAX_PICKLE_DEPTH,  # nesting of values
                ) -> dict[str, int]:
    """Scan the pickle that begins at `start` of `data` (bytes or an mmap) up to its STOP; raise a
    CheckpointError naming `source` if it breaks a bound. Returns {"objects", "memo", "depth", "end"} (`end`:
    the offset after the STOP, where a following pickle would begin)."""
    size = len(data)
    pos = start
    stack: list[int] = []
    memo: list[int] = []
    depth = array("l", [0])  # per node: how deep its value nests (node 0: values that hold nothing)
    inside = bytearray(1)  # per node: it was placed into another value
    objects = opcodes = 0
    frame_end = None  # where the current frame ends (None: outside any frame)

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{source}: {why} (at byte {pos}); not a network pickle")

    def cut(why: str) -> CheckpointError:
        return CheckpointError(f"{source}: the pickle is truncated or corrupt ({why}, at byte {pos})")

    def too_deep() -> CheckpointError:
        return CheckpointError(f"{source} nests values more than {max_depth} levels deep (a recursive or crafted "
                               "structure); not a network pickle")

    def pop(count: int) -> list[int]:
        if count > len(stack) or _MARK in stack[len(stack) - count:]:
            raise refuse("an opcode takes more values than the stack holds")
        items = stack[len(stack) - count:] if count else []
        del stack[len(stack) - count:]
        return items

    def pop_mark() -> list[int]:
        for at in range(len(stack) - 1, -1, -1):
            if stack[at] == _MARK:
                items = stack[at + 1:]
                del stack[at:]
                return items
        raise refuse("an opcode needs a mark that is not on the stack")

    while True:
        if pos >= size:
            raise cut("the pickle ends without its STOP opcode")
        entry = _OPCODES.get(data[pos])
        if entry is None:
            raise refuse(f"unknown opcode {bytes(data[pos:pos + 1])!r}")
        name, arg, below_mark, takes, pushes, leaf = entry
        if frame_end is not None and pos >= frame_end:
            frame_end = None
        if name == "FRAME" and frame_end is not None:
            raise cut(f"a frame begins {frame_end - pos} bytes before the previous one ends")
        opcode_start = pos
        pos += 1
        opcodes += 1
        argument = None
        if arg is not None:
            if arg[0] == "counted":
                width, signed = arg[1], arg[2]
                raw = bytes(data[pos:pos + width])
                length = int.from_bytes(raw, "little", signed=signed) if len(raw) == width else -1
                pos += width
                if length < 0 or length > size - pos:
                    raise cut(f"{name} claims {length} bytes, more than the data holds")
                pos += length
            elif arg[0] == "lines":
                first = pos
                for _ in range(arg[1]):
                    end = data.find(b"\n", pos)
                    if end < pos:
                        raise cut(f"{name} is cut short")
                    pos = end + 1
                if name in ("PUT", "GET"):
                    text = bytes(data[first:pos]).strip()
                    if not text.isdigit() or len(text) > 18:
                        raise refuse(f"{name} of a memo index {text[:20]!r}")
                    argument = int(text)
            else:
                width = arg[1]
                if pos + width > size:
                    raise cut(f"{name} is cut short")
                if name in _INDEXED:
                    argument = int.from_bytes(bytes(data[pos:pos + width]), "little")
                pos += width
        if frame_end is not None and pos > frame_end:
            raise cut(f"{name} at byte {opcode_start} crosses the end of its frame")
        if name == "STOP":
            if len(stack) != 1 or stack[0] == _MARK:
                raise refuse("the pickle stops with its stack not holding one value")
            break
        if name == "FRAME":
            if argument > size - pos:
                raise cut(f"a frame of {argument} bytes, more than the data holds")
            frame_end = pos + argument if argument else None
        elif name == "PROTO":
            if argument > 5:
                raise refuse(f"pickle protocol {argument}")
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = len(memo) if name == "MEMOIZE" else argument
            if not stack or stack[-1] == _MARK:
                raise refuse("a memo entry of an empty stack")
            if index > opcodes or index > max_memo:
                raise refuse(f"memo index {index} (a pickle numbers its memo from 0; at most {max_memo:,})")
            if index >= len(memo):
                memo.extend([_LEAF] * (index + 1 - len(memo)))
            memo[index] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if argument >= len(memo):
                raise refuse(f"memo index {argument} read before it was written")
            stack.append(memo[argument])
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "POP":
            if not stack:
                raise refuse("POP of an empty stack")
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.extend(pop(1) * 2)
        elif name in _FILL or name in _FILL_TO_MARK:
            items = pop(_FILL[name]) if name in _FILL else pop_mark()
            if not stack or stack[-1] == _MARK:
                raise refuse(f"{name} without its container")
            node = stack[-1]
            for child in items:
                if child == _LEAF:
                    continue
                if node == _LEAF or inside[node] or child == node:
                    raise CheckpointError(f"{source} fills a value after placing it into another, or puts a value "
                                          "into itself (a recursive or crafted structure); not a network pickle")
                inside[child] = 1
                if depth[child] + 1 > depth[node]:
                    depth[node] = depth[child] + 1
                    if depth[node] > max_depth:
                        raise too_deep()
        else:  # every other opcode takes its arguments (those above a mark, if it has one) and pushes a value
            popped = pop(takes) if below_mark is None else pop_mark() + pop(below_mark)
            if pushes:
                objects += 1
                if objects > max_objects:
                    raise refuse(f"more than {max_objects:,} values")
                if leaf:
                    stack.append(_LEAF)
                    continue
                node, nested = len(depth), 1
                for child in popped:
                    if child > 0:
                        inside[child] = 1
                        nested = max(nested, depth[child] + 1)
                if nested > max_depth:
                    raise too_deep()
                depth.append(nested)
                inside.append(0)
                stack.append(node)
    return {"objects": objects, "memo": len(memo), "depth": max(depth), "end": pos}
