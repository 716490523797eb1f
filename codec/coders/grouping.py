"""`qgroup`: a chunk's small code streams packed into one zstd frame when that is smaller.

One entropy table instead of many, and no per-stream frame header or descriptor entry:
+1% (rel) to +9% (pwrel) on 1M dimuons, more on small or wide tables. Version 1 packs the
model-free columns' codes; version 2 (feature grouped-residuals) also the predicted
columns' residual codes and flags, since the lean physics decoder made their ~18 tiny
streams a visible share of small files (docs/FORMAT.md, "Grouped codes").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..packing import PCODEC_HEADS, SMALL_STREAM, pack_group, zstd_part
from .wiremodes import WIRE_MODES

GROUP_BYTES = 4 << 20  # chunks whose codes fit this may pack them in one frame
CHEAP_GROUP_BYTES = 512 << 10  # without --effort exhaustive: stored bytes of chunks that try it
ZSTD_GROUP_BYTES = 64 << 10  # ... and that also try every member as zstd codes in the frame
ENTRY_BYTES = 24  # a separate stream's descriptor entry, as the choice estimates it

Member = tuple[str, tuple[int, bytes] | None, bytes]  # stream id, (head, raw codes), stored


def group_members(modes: Sequence[str], version: int) -> list[tuple[int, str]]:
    """What a `qgroup` of this version holds, in order: (column, role) per packed stream."""
    out: list[tuple[int, str]] = []
    for j, letter in enumerate(modes):
        mode = WIRE_MODES[letter]
        if mode.grouped_in and mode.grouped_in <= version:
            out += [(j, role) for role in mode.roles]
    return out


def choose_grouping(modes: Sequence[str], member: Callable[[int, str, bool], Member],
                    level: int, exhaustive: bool = False
                    ) -> tuple[int, bytes | None, list[Member]]:
    """The smallest of separate streams and the group versions: (version, frame, members
    it packs); version 0 means separate streams (frame None, every member returned).
    `member(j, role, with_part)`: the raw part may be left out (None) when not asked for.

    By default only chunks whose separate streams total at most CHEAP_GROUP_BYTES try one
    frame (the version with most members): on larger chunks the descriptor entries a
    group saves are noise and the trial frame costs a zstd pass over the chunk's codes;
    there no raw part is asked for (a mode s column's flags are coded as codes only for
    a group)."""
    if not exhaustive:
        stored = [member(j, role, False) for j, role in group_members(modes, 2)]
        if sum(len(m[2]) + ENTRY_BYTES for m in stored) > CHEAP_GROUP_BYTES:
            return 0, None, [member(j, role, False) for j, role in group_members(modes, 1)]
    every = [member(j, role, True) for j, role in group_members(modes, 2)]
    v1 = [member(j, role, True) for j, role in group_members(modes, 1)]
    separate = sum(len(m[2]) + ENTRY_BYTES for m in every)
    candidates = ([(2, every)] if len(every) > len(v1) else []) + [(1, v1)]
    if not exhaustive:
        candidates = candidates[:1]
    best: tuple[int, int, bytes, list[Member]] | None = None
    for version, members in candidates:
        small = exhaustive or separate <= CHEAP_GROUP_BYTES
        if members and small and sum(len(m[1][1]) for m in members) <= GROUP_BYTES:
            frame = pack_group([m[1] for m in members], level if exhaustive else
                               _frame_level(members, level))
            if (exhaustive or separate <= ZSTD_GROUP_BYTES) and any(
                    m[1][0] in PCODEC_HEADS for m in members):  # or every member as zstd codes
                zparts = [zstd_part(m[1]) for m in members]
                alt = pack_group(zparts, level)
                if len(alt) < len(frame):
                    frame, members = alt, [(m[0], z, m[2]) for m, z in zip(members, zparts,
                                                                          strict=True)]
            size = len(frame) + separate - sum(len(m[2]) + ENTRY_BYTES for m in members)
            if best is None or size < best[0]:
                best = (size, version, frame, members)
    if best is None or best[0] >= separate:
        return 0, None, v1
    return best[1], best[2], best[3]


def _frame_level(members: list[Member], level: int) -> int:
    """zstd level of a group frame: the file's, unless pcodec payloads (already entropy
    coded: the frame only saves their descriptor entries) make up 90% of a frame larger
    than SMALL_STREAM (a smaller one costs little at any level)."""
    pc = sum(len(m[1][1]) for m in members if m[1][0] in PCODEC_HEADS)
    total = sum(len(m[1][1]) for m in members)
    return 1 if pc >= 0.9 * total and total > SMALL_STREAM else level
