"""Hypothesis strategies for ops and whole programs of the `.mmd` language (SPEC §3).

Addresses cluster on a small window that straddles the 512-page boundary at
0x200 (PMD_SIZE: where page tables and, later, huge pages split), so that ops
collide: COW chains, partial munmap/mprotect, MAP_FIXED replacement, fault-around
clipped at the table boundary. A few draws in each field are edge values (0,
below mmap_min_addr, TASK_SIZE, 2^52 wrap) to exercise errno paths; every edge
branch shrinks back toward the common one.

Kinds are weighted toward the ops the models support (issue-3 scope, see
reference/machine.py, then issue 6: pins and poke, device mirrors and
device-exclusive access, folio locks, pageout and KSM), but every op kind of
reference/ops.py can be drawn: ops outside the scope must return ENOSYS in both
models, and that is checked too. Pins and mirrors land on the same window, so
they meet fork, CPU writes, munmap, mprotect and poke of the pages they hold or
watch.

THP and dirty tracking (issue 5, spec/cow-thp.md): ``huge_mmap_ops`` maps whole
512-page blocks of private anon memory at 512-aligned addresses (0x200 itself: the
window's upper half lies inside that block, so the window's ops cut it), mostly
followed by ``madvise hugepage`` or under ``set thp always`` (``thp_ops``); reads,
writes, pins, pokes, mprotect, munmap, dontneed and pageout then aim at the blocks'
first and last pages and single pages inside (``block_ops``; a partial range splits
the huge PMD), ``split`` and ``madvise collapse`` at the blocks; ``set`` draws thp
modes and thp_zero, rarely thp_alloc fail (``programs()`` then sets it back to ok
within a few ops) and max_ptes_none. ``dirty_ops``: clear_refs, and
wp_range / clean_record over the pgoffs the window's shared file mappings map.

Device memory (issue 5, devmem.md): ``devmem_file_ops`` defines buffer objects of
whole 512-page blocks (sometimes small), ``pfnmap_ops`` maps them ``shared,pfnmap``
mostly at the block starts 0x200 / 0x400 (or 0: the model picks) with a 512-aligned
offset, so the first fault inserts a special PMD; sometimes an unaligned VPN or
offset, a range past the BO's end or private (EINVAL). The block-aimed ops
(``block_ops``, ``split``) then hit those PMDs; ``pfn_ops`` adds reads and writes
at block pages, wp_range / clean_record over the BO (dirty tracking on: later huge
faults fall back to PTEs) and fread / fwrite of BO pages.

Per-op strategies take names as a plain string or a strategy of names, so a
user's own test can write ``write_ops("p0")`` or ``write_ops(st.sampled_from(
["p0", "p1"]))``. ``programs()`` tracks which names exist at each line (a
``Scope``), so every program it draws prints with ``format_prog`` and parses back.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Callable, Optional, TypeVar, Union

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from mmdiff.fuzz.prog import Prog
from mmdiff.reference import ops as O

T = TypeVar("T")
NameArg = Union[str, SearchStrategy[str]]

# --- fields ---------------------------------------------------------------------------

WINDOW_BASE = 0x1f8            # 8 pages below the 512-page (PMD) boundary at 0x200
WINDOW_PAGES = 24              # pages 0x1f8..0x20f: 8 below the boundary, 16 above
DEVICES = ("d0", "d1", "d2")   # dN needs no creation (SPEC §3)

# Edge addresses (pages): 0 asks mmap to pick; below MMAP_MIN_PAGES is EPERM for a
# fixed mmap; the last page before TASK_SIZE; 2^52 - 1 makes any range wrap.
EDGE_VPNS = (0, 1, O.MMAP_MIN_PAGES - 1, O.MMAP_MIN_PAGES, O.HPAGE_PMD_NR,
             O.TASK_SIZE_PAGES - 1, O.TASK_SIZE_PAGES, O.ADDR_LIMIT_PAGES - 1)
# Edge counts safe for mmap: MAP_POPULATE and madvise(populate) walk page by page,
# so a mapping stays small enough to populate in a test.
EDGE_MAP_PAGES = (0, O.HPAGE_PMD_NR, O.HPAGE_PMD_NR + 1)
# Edge counts for range ops (munmap/mprotect/madvise), which walk VMAs, not pages.
EDGE_RANGE_PAGES = EDGE_MAP_PAGES + (O.TASK_SIZE_PAGES, O.ADDR_LIMIT_PAGES)
POPULATE_ADVICE = (O.Advice.POPULATE_READ, O.Advice.POPULATE_WRITE)
ISSUE3_ADVICE = (O.Advice.DONTNEED, O.Advice.DONTFORK, O.Advice.DOFORK,
                 O.Advice.WIPEONFORK, O.Advice.KEEPONFORK, O.Advice.POPULATE_READ,
                 O.Advice.POPULATE_WRITE)
SWAP_KSM_ADVICE = (O.Advice.PAGEOUT, O.Advice.MERGEABLE, O.Advice.UNMERGEABLE)
SUPPORTED_ADVICE = ISSUE3_ADVICE + SWAP_KSM_ADVICE

_F = O.MapFlag
ANON_FLAGS = (frozenset({_F.PRIVATE, _F.ANON}), frozenset({_F.SHARED, _F.ANON}),
              frozenset({_F.PRIVATE, _F.ANON, _F.POPULATE}),
              frozenset({_F.SHARED, _F.ANON, _F.POPULATE}))
# Draw weights: private anon (COW, AnonExclusive, anon_vma) is half of the mappings.
_ANON_FLAG_DRAWS = ANON_FLAGS + ANON_FLAGS[:1] * 2
FILE_FLAGS = (frozenset({_F.PRIVATE}), frozenset({_F.SHARED}),
              frozenset({_F.PRIVATE, _F.POPULATE}), frozenset({_F.SHARED, _F.POPULATE}))
# do_mmap's EINVAL/ENOSYS checks: no or both of private/shared, anon with a file
# or neither, pfnmap (out of scope).
BAD_FLAGS = (frozenset(), frozenset({_F.ANON}), frozenset({_F.PRIVATE, _F.SHARED, _F.ANON}),
             frozenset({_F.PRIVATE, _F.ANON, _F.PFNMAP}), frozenset({_F.SHARED, _F.PFNMAP}))


def _mostly(common: SearchStrategy[T], rare: SearchStrategy[T], one_in: int = 8
            ) -> SearchStrategy[T]:
    """``common``, except one draw in ``one_in`` from ``rare``; shrinks toward ``common``."""
    return st.integers(0, one_in - 1).flatmap(lambda k: rare if k == one_in - 1 else common)


def _names(x: NameArg) -> SearchStrategy[str]:
    return x if isinstance(x, SearchStrategy) else st.just(x)


@cache
def vpns() -> SearchStrategy[int]:
    """A page number in the window, sometimes an edge address."""
    return _mostly(st.integers(WINDOW_BASE, WINDOW_BASE + WINDOW_PAGES - 1),
                   st.sampled_from(EDGE_VPNS))


@cache
def mmap_vpns() -> SearchStrategy[int]:
    """mmap's VPN: like ``vpns()``, plus 0 (the model picks the address) more often."""
    return _mostly(vpns(), st.just(0), one_in=6)


@cache
def page_counts(huge: bool = False) -> SearchStrategy[int]:
    """A length in pages, mostly 1..8; ``huge`` allows TASK_SIZE-sized ranges too.
    Edges are rare (1 in 16): a 513-page mapping costs 513 faults and snapshot rows."""
    return _mostly(st.integers(1, 8), st.sampled_from(EDGE_RANGE_PAGES if huge
                                                      else EDGE_MAP_PAGES), one_in=16)


@cache
def values() -> SearchStrategy[int]:
    """Page contents: small distinct numbers, sometimes 0, 1, 2 (equal pages for
    ksm_scan to merge) or the largest u64."""
    return _mostly(st.integers(1, 0xff), st.sampled_from((0, 1, 2, O.U64_MASK)))


_NOT_SWAP_KSM = [a for a in O.Advice if a not in SWAP_KSM_ADVICE]


@cache
def prots() -> SearchStrategy[O.Prot]:
    """rw half the time (writable mappings are where COW happens); rw first so that
    shrinking ends on it."""
    return st.sampled_from((O.Prot.RW, O.Prot.R, O.Prot.RW, O.Prot.NONE))


@cache
def advices() -> SearchStrategy[O.Advice]:
    """The issue-3 advices; one draw in 8 any other but pageout and KSM ones (ENOSYS):
    those have their own strategy (swap_ksm_advices), kind and machine rules."""
    return _mostly(st.sampled_from(ISSUE3_ADVICE), st.sampled_from(_NOT_SWAP_KSM))


@cache
def swap_ksm_advices() -> SearchStrategy[O.Advice]:
    """pageout and mergeable (unmergeable one draw in 4)."""
    return _mostly(st.sampled_from(SWAP_KSM_ADVICE[:2]), st.just(O.Advice.UNMERGEABLE),
                   one_in=4)


@cache
def anon_map_flags() -> SearchStrategy[frozenset]:
    return _mostly(st.sampled_from(_ANON_FLAG_DRAWS), st.sampled_from(BAD_FLAGS), one_in=12)


@cache
def file_map_flags() -> SearchStrategy[frozenset]:
    # An anon flag together with file= is do_mmap's EINVAL.
    return _mostly(st.sampled_from(FILE_FLAGS), st.sampled_from(BAD_FLAGS + ANON_FLAGS[:1]),
                   one_in=12)


PIN_MAX_PAGES = 1 << 18        # a longer pin fails before any walk (io_uring's 1 GiB)
# Edge pin lengths: 0 and past PIN_MAX_PAGES fail at once; PIN_MAX_PAGES and a PMD are
# valid and walk until the first page without a VMA (the window's mappings are small).
EDGE_PIN_PAGES = (0, O.HPAGE_PMD_NR, PIN_MAX_PAGES, PIN_MAX_PAGES + 1, O.U64_MASK)


@cache
def pin_counts() -> SearchStrategy[int]:
    """A pin length: 1..4 pages mostly (the window's mappings are 1..8 pages)."""
    return _mostly(st.integers(1, 4), st.sampled_from(EDGE_PIN_PAGES), one_in=12)


@cache
def pin_modes() -> SearchStrategy[O.PinMode]:
    """All four modes; rw first so that shrinking ends on the writable pin."""
    return st.sampled_from((O.PinMode.RW, O.PinMode.R, O.PinMode.RW_LONGTERM,
                            O.PinMode.R_LONGTERM))


@cache
def pin_indexes() -> SearchStrategy[int]:
    """An index into a pin: 0..3 (inside a pin of pin_counts() pages, mostly), one draw
    in 8 far past any pin (EINVAL)."""
    return _mostly(st.integers(0, 3), st.sampled_from((8, O.HPAGE_PMD_NR, O.U64_MASK)))


# Edge mirror ranges: empty and one page past 2^52 are EOVERFLOW; [0, 2^52) watches
# the whole address space (every invalidation of the process reaches it).
EDGE_MIRROR_RANGES = ((0, O.ADDR_LIMIT_PAGES), (WINDOW_BASE, 0),
                      (O.ADDR_LIMIT_PAGES - 1, 2), (WINDOW_BASE, O.ADDR_LIMIT_PAGES))


@cache
def mirror_ranges() -> SearchStrategy[tuple[int, int]]:
    """(vpn, npages) of a mirror: the whole window mostly (device accesses anywhere in
    it are covered), else part of it, one draw in 8 an edge range."""
    return _mostly(st.one_of(st.just((WINDOW_BASE, WINDOW_PAGES)),
                             st.tuples(vpns(), page_counts())),
                   st.sampled_from(EDGE_MIRROR_RANGES))


@cache
def file_pages() -> SearchStrategy[int]:
    """A file offset or size in pages: within the window's size, sometimes 0 or past it."""
    return _mostly(st.integers(0, WINDOW_PAGES), st.sampled_from((0, O.HPAGE_PMD_NR)))


HPAGE = O.HPAGE_PMD_NR
# 512-aligned block starts: 0x200 (the window's upper half is inside it) and the next
# one; 0 lets the model pick (it aligns a private anon multiple of 512).
BLOCK_STARTS = (HPAGE, HPAGE, 2 * HPAGE, 0)
BLOCK_LENGTHS = (HPAGE, HPAGE, 2 * HPAGE)
# Pages of the block at 0x200 (and the next one): first, second, a single page in the
# middle, last; the first and last page of the next block.
BLOCK_PAGES = (HPAGE, HPAGE + 1, HPAGE + 0x100, 2 * HPAGE - 1, 2 * HPAGE, 3 * HPAGE - 1)
THP_ADVICE = (O.Advice.HUGEPAGE, O.Advice.COLLAPSE, O.Advice.NOHUGEPAGE)
_PRIVATE_ANON = ANON_FLAGS[0]


@cache
def block_vpns() -> SearchStrategy[int]:
    """A page of a 512-aligned block (BLOCK_PAGES), one draw in 4 a window page (the
    window's pages from 0x200 on are inside the first block too)."""
    return _mostly(st.sampled_from(BLOCK_PAGES), vpns(), one_in=4)


@cache
def block_ranges() -> SearchStrategy[tuple[int, int]]:
    """(vpn, npages) of a range op on a block: a whole block, a single page (at its
    start, end or inside: the huge PMD is split), the block's second half, or a
    range running from inside it past its end."""
    return st.sampled_from((
        (HPAGE, HPAGE), (HPAGE, 1), (2 * HPAGE - 1, 1), (HPAGE + 0x100, 1),
        (HPAGE + 0x100, 0x100), (HPAGE + 0x1f0, 0x20), (HPAGE, 2 * HPAGE), (HPAGE + 1, 4)))


@cache
def thp_modes() -> SearchStrategy[str]:
    """`set thp` values: always first (shrinks there: every eligible fault a THP)."""
    return st.sampled_from(("always", "madvise", "never"))


def _thp_set_ops() -> SearchStrategy[O.Set]:
    """thp mostly, thp_zero, rarely thp_alloc (fail is reset by programs()) and
    max_ptes_none."""
    return _mostly(
        st.one_of(st.builds(O.Set, st.just(O.SetKey.THP), thp_modes()),
                  st.builds(O.Set, st.just(O.SetKey.THP_ZERO), st.sampled_from(("1", "0")))),
        st.one_of(st.builds(O.Set, st.just(O.SetKey.THP_ALLOC), st.sampled_from(("fail", "ok"))),
                  _set_ops(O.SetKey.MAX_PTES_NONE)), one_in=6)


# --- one op each --------------------------------------------------------------------------

def mmap_ops(proc: NameArg, file: Optional[NameArg] = None) -> SearchStrategy[O.Mmap]:
    """Anonymous mmaps, or mmaps of ``file`` (at offset ``file_pages()``) when given."""
    if file is None:
        return st.builds(O.Mmap, _names(proc), mmap_vpns(), page_counts(), prots(),
                         anon_map_flags())
    return st.builds(O.Mmap, _names(proc), mmap_vpns(), page_counts(), prots(),
                     file_map_flags(), _names(file), file_pages())


def munmap_ops(proc: NameArg) -> SearchStrategy[O.Munmap]:
    return st.builds(O.Munmap, _names(proc), vpns(), page_counts(huge=True))


def mprotect_ops(proc: NameArg) -> SearchStrategy[O.Mprotect]:
    return st.builds(O.Mprotect, _names(proc), vpns(), page_counts(huge=True), prots())


@cache
def madvise_ranges() -> SearchStrategy[tuple[int, O.Advice]]:
    """(npages, advice): populate advices fault page by page, so they get mmap-sized
    counts (at most 513 pages; the decoder's encode refuses longer walks), the
    other advices TASK_SIZE-sized ranges too."""
    return advices().flatmap(lambda a: st.tuples(
        page_counts(huge=a not in POPULATE_ADVICE), st.just(a)))


def madvise_ops(proc: NameArg) -> SearchStrategy[O.Madvise]:
    return st.builds(lambda p, v, na: O.Madvise(p, v, *na), _names(proc), vpns(),
                     madvise_ranges())


def swap_ksm_ops(proc: NameArg) -> SearchStrategy[O.Madvise]:
    """madvise pageout / mergeable / unmergeable over part of the window (or all of it)."""
    return st.builds(O.Madvise, _names(proc), vpns(),
                     _mostly(page_counts(), st.just(WINDOW_PAGES), one_in=3),
                     swap_ksm_advices())


def read_ops(proc: NameArg) -> SearchStrategy[O.Read]:
    return st.builds(O.Read, _names(proc), vpns())


def write_ops(proc: NameArg) -> SearchStrategy[O.Write]:
    return st.builds(O.Write, _names(proc), vpns(), values())


def fork_ops(proc: NameArg) -> SearchStrategy[O.Fork]:
    return st.builds(O.Fork, _names(proc))


def exit_ops(proc: NameArg) -> SearchStrategy[O.Exit]:
    return st.builds(O.Exit, _names(proc))


def huge_mmap_ops(proc: NameArg) -> SearchStrategy[O.Mmap]:
    """Whole 512-page blocks at 512-aligned addresses, private anon (one draw in 8
    populated: faulted in at once, or shared anon: no THP, collapse is ENOSYS)."""
    flags = _mostly(st.just(_PRIVATE_ANON), st.sampled_from((ANON_FLAGS[2], ANON_FLAGS[1])))
    return st.builds(O.Mmap, _names(proc), block_starts(),
                     _mostly(st.just(HPAGE), st.just(2 * HPAGE), one_in=4), prots(), flags)


@cache
def block_starts() -> SearchStrategy[int]:
    """0x200 mostly (the window's writes land in it), else 0x400 or 0 (model picks)."""
    return _mostly(st.just(HPAGE), st.sampled_from((2 * HPAGE, 0)), one_in=4)


def thp_ops(proc: NameArg) -> SearchStrategy[O.Op]:
    """madvise hugepage / collapse / nohugepage over a block (or the window), split or
    split_folio at a block page, or a THP setting."""
    madv = st.builds(lambda p, r, a: O.Madvise(p, r[0], r[1], a), _names(proc),
                     _mostly(st.sampled_from(((HPAGE, HPAGE), (HPAGE, 2 * HPAGE))),
                             st.tuples(vpns(), page_counts(huge=True)), one_in=4),
                     st.sampled_from(THP_ADVICE))
    split = st.builds(lambda cls, p, v: cls(p, v), st.sampled_from((O.Split, O.SplitFolio)),
                      _names(proc), block_vpns())
    return st.one_of(madv, split, _thp_set_ops())


@cache
def _block_kinds() -> SearchStrategy[str]:
    return st.sampled_from(("write", "read", "mprotect", "munmap", "dontneed", "pin",
                            "poke", "pageout", "write", "read"))


def block_ops(proc: NameArg) -> SearchStrategy[O.Op]:
    """CPU accesses and range ops aimed at blocks: a read, write, poke or 1-page rw
    pin of a block page; mprotect, munmap, dontneed or pageout of a block range
    (whole, a single page, half: a partial range splits the huge PMD)."""
    def build(p, kind, vpn, rng, value, prot):
        if kind == "write":
            return O.Write(p, vpn, value)
        if kind == "read":
            return O.Read(p, vpn)
        if kind == "poke":
            return O.Poke(p, vpn, value)
        if kind == "pin":
            return O.Pin(p, vpn, 1, O.PinMode.RW)
        if kind == "mprotect":
            return O.Mprotect(p, *rng, prot)
        if kind == "munmap":
            return O.Munmap(p, *rng)
        return O.Madvise(p, *rng, O.Advice.DONTNEED if kind == "dontneed"
                         else O.Advice.PAGEOUT)
    return st.builds(build, _names(proc), _block_kinds(), block_vpns(), block_ranges(),
                     values(), prots())


def clear_refs_ops(proc: NameArg) -> SearchStrategy[O.ClearRefs]:
    return st.builds(O.ClearRefs, _names(proc))


@cache
def file_spans() -> SearchStrategy[tuple[int, int]]:
    """(pgoff, npages) of wp_range / clean_record: the file's first pages (what the
    window's shared mappings at offset file_pages() map), the whole window-sized
    file, one page, sometimes empty or far past the end."""
    return _mostly(st.one_of(st.tuples(st.integers(0, 8), st.integers(1, 8)),
                             st.just((0, WINDOW_PAGES))),
                   st.sampled_from(((0, 0), (WINDOW_PAGES, 4), (0, O.HPAGE_PMD_NR))))


def dirty_ops(file: NameArg) -> SearchStrategy[O.Op]:
    """wp_range or clean_record of ``file``."""
    return st.builds(lambda f, kind, span: kind(f, *span), _names(file),
                     st.sampled_from((O.CleanRecord, O.WpRange)), file_spans())


def file_ops(name: NameArg) -> SearchStrategy[O.File]:
    """Defines file ``name``; one in 16 is a devmem file (ENOSYS in this scope)."""
    return st.builds(O.File, _names(name), file_pages(),
                     _mostly(st.just(False), st.just(True), one_in=16))


# devmem BO sizes: whole blocks mostly (the block starts 0x200 / 0x400 map them at
# offset 0 or 512), sometimes small or one page more than a block.
DEVMEM_PAGES = (2 * HPAGE, HPAGE, 4 * HPAGE, 3 * HPAGE)
DEVMEM_ODD_PAGES = (4, HPAGE + 1, 1)
PFNMAP_FLAGS = frozenset({_F.SHARED, _F.PFNMAP})
# pfnmap block starts: 0x400 mostly (the window's faults leave a PTE table in the block
# at 0x200, where no special PMD can go), 0x200, 0 (the model picks); their pages.
PFN_STARTS = (2 * HPAGE, 2 * HPAGE, HPAGE, 0)
PFN_PAGES = (2 * HPAGE, 2 * HPAGE + 1, 2 * HPAGE + 0x100, 3 * HPAGE - 1, 3 * HPAGE,
             4 * HPAGE - 1, HPAGE, HPAGE + 0x100)


@cache
def pfn_vpns() -> SearchStrategy[int]:
    """A page of a pfnmap block (PFN_PAGES), one draw in 4 a THP block page."""
    return _mostly(st.sampled_from(PFN_PAGES), block_vpns(), one_in=4)


def devmem_file_ops(name: NameArg) -> SearchStrategy[O.File]:
    """Defines ``name`` as a devmem buffer object (DEVMEM_PAGES; one in 6 odd sizes)."""
    return st.builds(O.File, _names(name), _mostly(st.sampled_from(DEVMEM_PAGES),
                                                   st.sampled_from(DEVMEM_ODD_PAGES), one_in=6),
                     st.just(True))


@cache
def pfnmap_shapes() -> SearchStrategy[tuple]:
    """(vpn, npages, off, flags) of a pfnmap: a 512-aligned VPN (or 0) over one or two
    whole blocks at a 512-aligned offset mostly; one draw in 4 an unaligned VPN or
    offset, a small mapping, a range past any BO's end, or private (EINVAL)."""
    good = st.tuples(st.sampled_from(PFN_STARTS), st.sampled_from((HPAGE, HPAGE, 2 * HPAGE)),
                     st.sampled_from((0, 0, 0, HPAGE)), st.just(PFNMAP_FLAGS))
    odd = st.one_of(
        st.tuples(vpns(), st.sampled_from((1, 4, HPAGE)), st.sampled_from((0, 1, HPAGE)),
                  st.just(PFNMAP_FLAGS)),
        st.tuples(st.sampled_from(PFN_STARTS), st.just(HPAGE), st.sampled_from((1, 0x100)),
                  st.just(PFNMAP_FLAGS)),
        st.tuples(st.sampled_from(PFN_STARTS), st.just(5 * HPAGE), st.just(0),
                  st.just(PFNMAP_FLAGS)),
        st.tuples(st.sampled_from(PFN_STARTS), st.just(HPAGE), st.just(0),
                  st.sampled_from((frozenset({_F.PRIVATE, _F.PFNMAP}), FILE_FLAGS[1]))))
    return _mostly(good, odd, one_in=4)


def pfnmap_ops(proc: NameArg, file: NameArg) -> SearchStrategy[O.Mmap]:
    """mmap ``file`` (a devmem BO) shared,pfnmap, rw or r (pfnmap_shapes)."""
    return st.builds(lambda p, f, shape, prot: O.Mmap(p, shape[0], shape[1], prot, shape[3],
                                                      f, shape[2]),
                     _names(proc), _names(file), pfnmap_shapes(),
                     _mostly(st.just(O.Prot.RW), st.just(O.Prot.R), one_in=4))


def pfn_ops(proc: NameArg, file: NameArg) -> SearchStrategy[O.Op]:
    """Ops on a BO and its pfnmaps at the block starts: a read, write or split of a
    block page (a special PMD, or PTEs once tracked), munmap / mprotect of a block
    range at 0x400 (a partial one zaps the PMD), wp_range / clean_record of the BO's first
    blocks (dirty tracking on), fread / fwrite of a BO page."""
    files = _names(file)
    return st.one_of(
        st.builds(O.Write, _names(proc), pfn_vpns(), values()),
        st.builds(O.Read, _names(proc), pfn_vpns()),
        st.builds(O.Split, _names(proc), pfn_vpns()),
        st.builds(lambda p, r: O.Munmap(p, 2 * HPAGE + r[0] - HPAGE, r[1]), _names(proc),
                  block_ranges()),
        st.builds(lambda p, r, prot: O.Mprotect(p, 2 * HPAGE + r[0] - HPAGE, r[1], prot),
                  _names(proc), block_ranges(), prots()),
        st.builds(lambda f, kind, span: kind(f, *span), files,
                  st.sampled_from((O.WpRange, O.CleanRecord)),
                  st.sampled_from(((0, HPAGE), (0, 2 * HPAGE), (1, 4), (HPAGE, HPAGE)))),
        st.builds(O.FileRead, files, st.sampled_from((0, 1, HPAGE, 2 * HPAGE))),
        st.builds(O.FileWrite, files, st.sampled_from((0, 1, HPAGE, HPAGE + 3)), values()))


def fread_ops(file: NameArg) -> SearchStrategy[O.FileRead]:
    return st.builds(O.FileRead, _names(file), file_pages())


def fwrite_ops(file: NameArg) -> SearchStrategy[O.FileWrite]:
    return st.builds(O.FileWrite, _names(file), file_pages(), values())


def pin_ops(proc: NameArg) -> SearchStrategy[O.Pin]:
    return st.builds(O.Pin, _names(proc), vpns(), pin_counts(), pin_modes())


def pread_ops(pin: NameArg) -> SearchStrategy[O.PinRead]:
    return st.builds(O.PinRead, _names(pin), pin_indexes())


def pwrite_ops(pin: NameArg) -> SearchStrategy[O.PinWrite]:
    return st.builds(O.PinWrite, _names(pin), pin_indexes(), values())


def unpin_ops(pin: NameArg) -> SearchStrategy[O.Unpin]:
    return st.builds(O.Unpin, _names(pin))


def poke_ops(proc: NameArg) -> SearchStrategy[O.Poke]:
    """FOLL_FORCE writes: the window's read-only and PROT_NONE mappings (prots()
    draws them half the time) are where poke differs from write."""
    return st.builds(O.Poke, _names(proc), vpns(), values())


def mirror_ops(dev: NameArg, proc: NameArg) -> SearchStrategy[O.Mirror]:
    return st.builds(lambda d, p, r: O.Mirror(d, p, *r), _names(dev), _names(proc),
                     mirror_ranges())


def unmirror_ops(sub: NameArg) -> SearchStrategy[O.Unmirror]:
    return st.builds(O.Unmirror, _names(sub))


def dread_ops(dev: NameArg, proc: NameArg) -> SearchStrategy[O.DevRead]:
    return st.builds(O.DevRead, _names(dev), _names(proc), vpns())


def dwrite_ops(dev: NameArg, proc: NameArg) -> SearchStrategy[O.DevWrite]:
    return st.builds(O.DevWrite, _names(dev), _names(proc), vpns(), values())


def dexcl_ops(dev: NameArg, proc: NameArg) -> SearchStrategy[O.DevExclusive]:
    return st.builds(O.DevExclusive, _names(dev), _names(proc), vpns())


def datomic_ops(dev: NameArg, proc: NameArg) -> SearchStrategy[O.DevAtomic]:
    return st.builds(O.DevAtomic, _names(dev), _names(proc), vpns(), values())


def devents_ops(dev: NameArg) -> SearchStrategy[O.DevEvents]:
    return st.builds(O.DevEvents, _names(dev))


def lock_ops(proc: NameArg) -> SearchStrategy[O.Lock]:
    return st.builds(O.Lock, _names(proc), vpns())


def unlock_ops(proc: NameArg) -> SearchStrategy[O.Unlock]:
    return st.builds(O.Unlock, _names(proc), vpns())


def ksm_scan_ops() -> SearchStrategy[O.KsmScan]:
    return st.just(O.KsmScan())


def state_ops(proc: NameArg) -> SearchStrategy[O.State]:
    return st.builds(O.State, _names(proc), vpns())


def same_ops(proc: NameArg, proc2: Optional[NameArg] = None) -> SearchStrategy[O.Same]:
    return st.builds(O.Same, _names(proc), vpns(), _names(proc if proc2 is None else proc2),
                     vpns())


# --- names valid at a point of a program ----------------------------------------------------

@dataclass
class Scope:
    """The names that exist at one line of a program, counted like the parser does
    (fuzz/text.py _Names: a fork/pin/mirror line creates the next name even if it
    fails at run time; file/vm lines define the name they give)."""

    procs: int = 1                                  # p0..p{procs-1}
    files: list[str] = field(default_factory=list)  # defined file names, in order
    pins: int = 0                                   # h1..h{pins}
    subs: int = 0                                   # m1..m{subs}
    vms: list[str] = field(default_factory=list)
    devmem: list[str] = field(default_factory=list)  # the files defined devmem

    def proc_names(self) -> list[str]:
        return [f"p{i}" for i in range(self.procs)]

    def pin_names(self) -> list[str]:
        """h1..h{pins}, newest first (shrinking moves toward the newest pin)."""
        return [f"h{i}" for i in range(self.pins, 0, -1)]

    def sub_names(self) -> list[str]:
        """m1..m{subs}, newest first."""
        return [f"m{i}" for i in range(self.subs, 0, -1)]

    def next_file(self) -> str:
        return f"f{len(self.files)}"

    def next_vm(self) -> str:
        return f"v{len(self.vms)}"

    def key(self) -> tuple:
        """A hashable summary: strategies are cached per scope (building them is slow)."""
        return (self.procs, tuple(self.files), self.pins, self.subs, tuple(self.vms),
                tuple(self.devmem))

    @classmethod
    def from_key(cls, key: tuple) -> "Scope":
        return cls(key[0], list(key[1]), key[2], key[3], list(key[4]), list(key[5]))

    def record(self, op: O.Op) -> None:
        """Count the names ``op`` creates; call after appending ``op`` to the program."""
        if isinstance(op, O.Fork):
            self.procs += 1
        elif isinstance(op, O.Pin):
            self.pins += 1
        elif isinstance(op, O.Mirror):
            self.subs += 1
        elif isinstance(op, O.File) and op.file not in self.files:
            self.files.append(op.file)
            if op.devmem:
                self.devmem.append(op.file)
        elif isinstance(op, O.VmInit) and op.vm not in self.vms:
            self.vms.append(op.vm)


def out_of_scope_ops(scope: Scope) -> SearchStrategy[O.Op]:
    """One op of a later issue (GPU VMs), with names valid in ``scope``: the models
    must both answer ENOSYS. (THP, settings, clear_refs and dirty tracking moved to
    thp_ops, block_ops and dirty_ops with issue 5.)"""
    return _out_of_scope_ops(scope.key())


@lru_cache(maxsize=1024)
def _out_of_scope_ops(key: tuple) -> SearchStrategy[O.Op]:
    scope = Scope.from_key(key)
    cands: list[SearchStrategy[O.Op]] = [
        st.one_of(st.builds(O.VmInit, st.just(scope.next_vm())),   # [start npages]: both or none
                  st.builds(O.VmInit, st.just(scope.next_vm()), vpns(), page_counts())),
    ]
    if scope.files:
        file = st.sampled_from(scope.files)
        cands += [st.builds(O.UnbindObj, file)]
    if scope.vms:
        vm = st.sampled_from(scope.vms)
        cands += [st.builds(O.VmRun, vm, st.one_of(st.none(), st.integers(0, 4))),
                  st.builds(O.GpuRead, vm, vpns()),
                  st.builds(O.VmState, vm),
                  st.builds(O.BindUnmap, vm, vpns(), page_counts(), st.booleans())]
        if scope.files:
            cands.append(st.builds(O.BindMap, vm, vpns(), page_counts(),
                                   st.sampled_from(scope.files), file_pages(), st.booleans()))
    return st.sampled_from(cands).flatmap(lambda s: s)   # uniform over kinds


def _set_ops(key: O.SetKey) -> SearchStrategy[O.Set]:
    allowed = O.SET_VALUES[key]
    words = (st.sampled_from(allowed) if allowed is not None
             else st.integers(0, O.HPAGE_PMD_NR - 1).map(str))   # canonical: decimal
    return st.builds(O.Set, st.just(key), words)


# Relative weights of the op kinds in programs(): faults and mmaps dominate because
# they build the state (COW, sharing) that the other ops then cut and protect; pins
# (about one op in 20) and their DMA reads/writes, unpins and pokes come next, then
# the device ops (about one op in 8: mirrors, device reads/writes, exclusive grants,
# atomics, events, folio locks), madvise pageout / mergeable and ksm_scan; then issue
# 5 (about one op in 8): whole-block mmaps, THP advices / split / settings, accesses
# and range ops aimed at blocks, clear_refs and wp_range / clean_record; then device
# memory (about one op in 16): devmem BOs (devmem_file 1), pfnmaps of them at the
# block starts (pfnmap 1; programs() also maps a new BO at once two times in 3) and
# reads / writes of block pages, wp_range / clean_record, fread / fwrite on them
# (pfn 2; block and thp ops reach the same blocks); before any BO exists, the pfnmap
# and pfn kinds define one.
KIND_WEIGHTS: dict[str, int] = {
    "mmap": 3, "mmap_file": 2, "write": 5, "read": 3, "munmap": 1, "mprotect": 2,
    "madvise": 2, "fork": 1, "exit": 1, "file": 1, "fread": 1, "fwrite": 1, "state": 1,
    "same": 1, "pin": 2, "pread": 1, "pwrite": 1, "unpin": 1, "poke": 1,
    "mirror": 1, "unmirror": 1, "device": 2, "lock": 1, "swap_ksm": 1,
    "huge_mmap": 1, "thp": 2, "block": 2, "clear_refs": 1, "dirty": 1,
    "devmem_file": 1, "pfnmap": 1, "pfn": 2,
    "out_of_scope": 1,
}

_NEEDS_FILE = {"mmap_file", "fread", "fwrite", "dirty"}
_NEEDS_PIN = {"pread", "pwrite", "unpin"}
_NEEDS_SUB = {"unmirror"}


@lru_cache(maxsize=4096)
def _kind_strategy(kind: str, key: tuple) -> SearchStrategy[O.Op]:
    scope = Scope.from_key(key)
    proc = st.sampled_from(scope.proc_names())
    file = st.sampled_from(scope.files) if scope.files else None
    pin = st.sampled_from(scope.pin_names()) if scope.pins else None
    sub = st.sampled_from(scope.sub_names()) if scope.subs else None
    dev = st.sampled_from(DEVICES)
    bo = st.sampled_from(scope.devmem) if scope.devmem else None
    new_bo = devmem_file_ops(scope.next_file())
    table: dict[str, Callable[[], SearchStrategy[O.Op]]] = {
        "mmap": lambda: mmap_ops(proc), "mmap_file": lambda: mmap_ops(proc, file),
        "write": lambda: write_ops(proc), "read": lambda: read_ops(proc),
        "munmap": lambda: munmap_ops(proc), "mprotect": lambda: mprotect_ops(proc),
        "madvise": lambda: madvise_ops(proc), "fork": lambda: fork_ops(proc),
        "exit": lambda: exit_ops(proc), "file": lambda: file_ops(scope.next_file()),
        "fread": lambda: fread_ops(file), "fwrite": lambda: fwrite_ops(file),
        "state": lambda: state_ops(proc), "same": lambda: same_ops(proc),
        "pin": lambda: pin_ops(proc), "pread": lambda: pread_ops(pin),
        "pwrite": lambda: pwrite_ops(pin), "unpin": lambda: unpin_ops(pin),
        "poke": lambda: poke_ops(proc),
        "mirror": lambda: mirror_ops(dev, proc), "unmirror": lambda: unmirror_ops(sub),
        "device": lambda: st.one_of(dread_ops(dev, proc), dwrite_ops(dev, proc),
                                    dexcl_ops(dev, proc), datomic_ops(dev, proc),
                                    devents_ops(dev)),
        "lock": lambda: st.one_of(lock_ops(proc), unlock_ops(proc)),
        "swap_ksm": lambda: st.one_of(swap_ksm_ops(proc), ksm_scan_ops()),
        "huge_mmap": lambda: huge_mmap_ops(proc), "thp": lambda: thp_ops(proc),
        "block": lambda: block_ops(proc), "clear_refs": lambda: clear_refs_ops(proc),
        "dirty": lambda: dirty_ops(file),
        "devmem_file": lambda: devmem_file_ops(scope.next_file()),
        # no BO yet: the pfn kinds define one (their ops need it)
        "pfnmap": lambda: pfnmap_ops(proc, bo) if bo is not None else new_bo,
        "pfn": lambda: pfn_ops(proc, bo) if bo is not None else new_bo,
        "out_of_scope": lambda: out_of_scope_ops(scope),
    }
    return table[kind]()


def ops(scope: Scope, weights: Optional[dict[str, int]] = None) -> SearchStrategy[O.Op]:
    """One op whose names all exist in ``scope`` (the caller then calls scope.record)."""
    weights = KIND_WEIGHTS if weights is None else weights
    unknown = set(weights) - set(KIND_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown op kinds {sorted(unknown)} in weights: use keys of "
                         f"KIND_WEIGHTS ({', '.join(KIND_WEIGHTS)})")
    kinds = [k for k, w in weights.items() for _ in range(w)
             if (scope.files or k not in _NEEDS_FILE) and (scope.pins or k not in _NEEDS_PIN)
             and (scope.subs or k not in _NEEDS_SUB)]
    if not kinds:
        raise ValueError(f"weights {weights} leave no op kind to draw in this scope")
    key = scope.key()
    return st.sampled_from(kinds).flatmap(lambda k: _kind_strategy(k, key))


@st.composite
def programs(draw, max_ops: int = 40, min_ops: int = 1, files: int = 1,
             weights: Optional[dict[str, int]] = None) -> Prog:
    """A program of ``min_ops..max_ops`` drawn ops after ``files`` leading
    ``file fN 24`` lines; every name is valid where it is used (Scope), so
    ``parse(format_prog(p))`` gives the same ops back. A whole-block private anon
    mmap at a fixed address is followed by ``madvise ... hugepage`` on it two times in
    3, a devmem ``file`` by a pfnmap of it and a read or write at its start two
    times in 3; a ``set thp_alloc fail`` is followed, 1-4 drawn ops later, by ``set
    thp_alloc ok`` (unless the program ends first)."""
    if not 0 <= min_ops <= max_ops:
        raise ValueError(f"min_ops={min_ops}, max_ops={max_ops}: need 0 <= min_ops <= max_ops")
    scope = Scope()
    body: list[O.Op] = []
    for _ in range(files):
        body.append(O.File(scope.next_file(), WINDOW_PAGES))
        scope.record(body[-1])
    fail_left = 0                     # drawn ops until `set thp_alloc ok` (0: none due)
    for _ in range(draw(st.integers(min_ops, max_ops))):
        op = draw(ops(scope, weights))
        body.append(op)
        scope.record(op)
        if isinstance(op, O.Mmap) and op.vpn and _whole_blocks(op) \
                and draw(_HUGE_AFTER, label="madvise hugepage"):
            body.append(O.Madvise(op.proc, op.vpn, op.npages, O.Advice.HUGEPAGE))
        if isinstance(op, O.File) and op.devmem and draw(_HUGE_AFTER, label="pfnmap"):
            proc = st.sampled_from(scope.proc_names())
            body.append(draw(pfnmap_ops(proc, op.file)))
            m = body[-1]
            if m.vpn:                     # huge faults of a non-anon VMA obey `thp madvise`
                body.append(O.Madvise(m.proc, m.vpn, m.npages, O.Advice.HUGEPAGE))
            body.append(draw(st.one_of(write_ops(proc), read_ops(proc)).map(
                lambda o: replace(o, vpn=m.vpn or 2 * HPAGE)), label="touch"))
        if isinstance(op, O.Set) and op.key is O.SetKey.THP_ALLOC:
            fail_left = draw(_FAIL_OPS, label="fail lasts") if op.value == "fail" else 0
        elif fail_left:
            fail_left -= 1
            if not fail_left:
                body.append(O.Set(O.SetKey.THP_ALLOC, "ok"))
    return Prog.of(body, source="<hypothesis>")


# Drawn ops a `set thp_alloc fail` stays on in programs() (unless the program ends first).
_FAIL_OPS = st.integers(1, 4)
_HUGE_AFTER = st.integers(0, 2).map(bool)      # shrinks to False


def _whole_blocks(op: O.Mmap) -> bool:
    """A private anon mapping of whole 512-aligned blocks (where THPs fault in)."""
    return (op.file is None and op.flags == _PRIVATE_ANON and op.npages > 0
            and not (op.vpn | op.npages) % HPAGE)
