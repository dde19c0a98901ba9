"""Anonymous THP in the Cython impl on its own (thp.md rules): a huge PMD is one entry,
frames come back when freed, the counters add up, and the conformance steps of
spec/cow-thp.md area 5 give the hand-computed results.

Expectations are worked out from thp.md, never copied from the impl; every op is
followed by check_invariants() (the THP invariants included).
"""
from __future__ import annotations

import time

from mmdiff.impl import ImplMachine
from mmdiff.reference.state import HZERO_KEY, EntryKind, Level, canonicalize

from test_impl import run

A = 0x200          # a 2 MiB-aligned vpn
SETUP = f"""
mmap p0 {A:#x} 0x200 rw private,anon -> {A:#x}
madvise p0 {A:#x} 0x200 hugepage -> ok
"""


def _pages(m: ImplMachine, proc: str = "p0") -> dict:
    return m.snapshot().procs[proc].pages


def test_write_maps_one_huge_pmd_entry_and_exit_frees_all_frames() -> None:
    m = run(SETUP + f"""
write p0 {A + 5:#x} 7 -> ok
state p0 {A + 0x1ff:#x} -> anon pmd rw dirty softdirty excl
read p0 {A + 5:#x} -> 7
read p0 {A + 6:#x} -> 0
""")
    pages = _pages(m)
    assert list(pages) == [A]                       # ONE entry for 512 pages
    assert pages[A].level is Level.PMD
    assert m.frames_in_use() == 512
    assert m.page_tables() == 3                     # pgd, pud, pmd: no PTE table
    snap = m.snapshot()
    (thp,) = snap.folios.values()
    assert (thp.entire, thp.pincount, thp.values) == (1, 0, ((5, 7),))
    out = canonicalize(snap)
    assert out[f"p0 page {A:#x}"] == "anon pmd rw dirty softdirty excl F0"
    assert out["frame F0"] == "order=9 entire=1 pin=0 vals=5:0x7"
    run("exit p0 -> ok", m, after=SETUP + f"write p0 {A + 5:#x} 7 -> ok\n")
    assert m.frames_in_use() == 0


def test_huge_zero_read_then_write_gets_a_new_thp() -> None:
    m = run(SETUP + f"""
read p0 {A + 3:#x} -> 0
state p0 {A:#x} -> hzero pmd r
same p0 {A:#x} p0 {A + 0x100:#x} -> yes
write p0 {A + 1:#x} 0x11 -> ok
state p0 {A:#x} -> anon pmd rw dirty softdirty excl
read p0 {A + 1:#x} -> 0x11
""")
    assert m.frames_in_use() == 512
    assert list(_pages(m)) == [A]


def test_read_without_huge_zero_and_alloc_failure_fallback() -> None:
    m = run(SETUP + f"""
set thp_zero 0 -> ok
read p0 {A:#x} -> 0
state p0 {A:#x} -> anon pmd rw dirty softdirty excl
munmap p0 {A:#x} 0x200 -> ok
mmap p0 {A:#x} 0x200 rw private,anon -> {A:#x}
madvise p0 {A:#x} 0x200 hugepage -> ok
set thp_alloc fail -> ok
write p0 {A:#x} 1 -> ok
state p0 {A:#x} -> anon pte rw dirty softdirty excl
""")
    assert m.frames_in_use() == 1


def test_fork_shares_pmd_then_child_write_splits_and_copies_one_page() -> None:
    # S5.4: both R/O PMDs; the child's write splits ITS PMD and copies one subpage
    m = run(SETUP + f"""
write p0 {A:#x} 1 -> ok
fork p0 -> p1
state p0 {A:#x} -> anon pmd r dirty softdirty
write p1 {A + 2:#x} 2 -> ok
read p0 {A + 2:#x} -> 0
read p1 {A:#x} -> 1
state p0 {A:#x} -> anon pmd r dirty softdirty
state p1 {A + 2:#x} -> anon pte rw dirty softdirty excl
state p1 {A + 3:#x} -> anon pte r dirty softdirty
""")
    assert m.frames_in_use() == 513
    snap = m.snapshot()
    (thp,) = snap.folios.values()
    assert thp.entire == 1                           # the parent's PMD
    # a later child write to another subpage: shared bit still set -> copy again
    run(f"write p1 {A + 4:#x} 4 -> ok\nexit p0 -> ok\nexit p1 -> ok\n", m,
        after=SETUP + f"write p0 {A:#x} 1 -> ok\nfork p0 -> p1\nwrite p1 {A + 2:#x} 2 -> ok\n")
    assert m.frames_in_use() == 0


def test_fork_then_child_exit_reuses_pmd() -> None:
    run(SETUP + f"""
write p0 {A:#x} 1 -> ok
fork p0 -> p1
exit p1 -> ok
write p0 {A:#x} 3 -> ok
state p0 {A:#x} -> anon pmd rw dirty softdirty excl
""")


def test_mprotect_of_one_page_splits_and_keeps_others_writable() -> None:
    # S5.6 / S5.7
    m = run(SETUP + f"""
write p0 {A:#x} 1 -> ok
mprotect p0 {A + 1:#x} 1 r -> ok
state p0 {A:#x} -> anon pte rw dirty softdirty excl
state p0 {A + 1:#x} -> anon pte r dirty softdirty excl
write p0 {A + 1:#x} 5 -> SEGV
mprotect p0 {A + 1:#x} 1 rw -> ok
write p0 {A + 1:#x} 5 -> ok
""")
    assert m.frames_in_use() == 512                  # no copy: still the one THP


def test_dontneed_whole_pmd_zaps_it_and_the_next_read_is_huge_zero() -> None:
    # S5.9, then S5.8-like partial zap: split + PTE zap
    m = run(SETUP + f"""
write p0 {A:#x} 1 -> ok
madvise p0 {A:#x} 0x200 dontneed -> ok
read p0 {A:#x} -> 0
state p0 {A:#x} -> hzero pmd r
write p0 {A:#x} 1 -> ok
madvise p0 {A + 1:#x} 0x1ff dontneed -> ok
read p0 {A:#x} -> 1
read p0 {A + 1:#x} -> 0
state p0 {A + 1:#x} -> zero pte r
""")
    assert m.frames_in_use() == 512                  # the THP stays, PTE-mapped once


def test_table_kept_after_small_dontneed_freed_after_2mib_dontneed() -> None:
    # (live) 1 page written + dontneed 1 page: the table stays, the next write is PTE
    run(SETUP + f"""
set thp_alloc fail -> ok
write p0 {A:#x} 1 -> ok
set thp_alloc ok -> ok
madvise p0 {A:#x} 1 dontneed -> ok
write p0 {A + 3:#x} 1 -> ok
state p0 {A + 3:#x} -> anon pte rw dirty softdirty excl
madvise p0 {A:#x} 0x200 dontneed -> ok
write p0 {A + 3:#x} 1 -> ok
state p0 {A + 3:#x} -> anon pmd rw dirty softdirty excl
""")


def test_munmap_frees_table_only_where_no_vma_is_left() -> None:
    m = run(f"""
mmap p0 {A:#x} 0x400 rw private,anon -> {A:#x}
madvise p0 {A:#x} 0x400 hugepage -> ok
set thp_alloc fail -> ok
write p0 {A:#x} 1 -> ok
set thp_alloc ok -> ok
munmap p0 {A:#x} 0x10 -> ok
mmap p0 {A:#x} 0x10 rw private,anon -> {A:#x}
write p0 {A + 0x20:#x} 1 -> ok
state p0 {A + 0x20:#x} -> anon pte rw dirty softdirty excl
munmap p0 {A:#x} 0x200 -> ok
mmap p0 {A:#x} 0x200 rw private,anon -> {A:#x}
madvise p0 {A:#x} 0x400 hugepage -> ok
write p0 {A + 0x20:#x} 1 -> ok
state p0 {A + 0x20:#x} -> anon pmd rw dirty softdirty excl
""")
    assert len(_pages(m)) == 1


def test_split_op_and_errors() -> None:
    m = run(SETUP + f"""
split p0 0x10 -> EFAULT
split p0 {A:#x} -> EINVAL
write p0 {A + 9:#x} 9 -> ok
split p0 {A + 0x100:#x} -> ok
state p0 {A + 9:#x} -> anon pte rw dirty softdirty excl
split p0 {A:#x} -> EINVAL
""")
    pages = _pages(m)
    assert len(pages) == 512 and all(p.level is Level.PTE for p in pages.values())
    out = canonicalize(m.snapshot())
    assert out[f"p0 page {A + 9:#x}"].endswith(" F0.9")
    assert out["frame F0.9"] == "map=1 pin=0 val=0x9"
    assert out["frame F0"] == "order=9 entire=0 pin=0 vals=9:0x9"


def test_pin_of_pmd_subpage_counts_on_the_folio_and_fork_copies() -> None:
    # S5.11: pinned exclusive THP, fork splits the parent's PMD, child gets copies
    m = run(SETUP + f"""
write p0 {A:#x} 1 -> ok
pin p0 {A:#x} 1 rw,longterm -> h1
fork p0 -> p1
write p0 {A:#x} 9 -> ok
pread h1 0 -> 9
read p1 {A:#x} -> 1
state p0 {A:#x} -> anon pte rw dirty softdirty excl
state p1 {A + 7:#x} -> anon pte rw dirty softdirty excl
""")
    snap = m.snapshot()
    (thp,) = snap.folios.values()
    assert thp.pincount == 1
    assert m.frames_in_use() == 512 + 512            # 512 order-0 copies for the child
    run("unpin h1 -> ok\nexit p0 -> ok\nexit p1 -> ok\n", m, after=SETUP + f"""
write p0 {A:#x} 1 -> ok
pin p0 {A:#x} 1 rw,longterm -> h1
fork p0 -> p1
write p0 {A:#x} 9 -> ok
""")
    assert m.frames_in_use() == 0


def test_ro_pin_of_huge_zero_records_hzero() -> None:
    m = run(SETUP + f"""
pin p0 {A + 4:#x} 1 r -> h1
pread h1 0 -> 0
state p0 {A:#x} -> hzero pmd r
pin p0 {A + 4:#x} 1 r,longterm -> h2
state p0 {A:#x} -> anon pmd rw dirty softdirty excl
""")
    snap = m.snapshot()
    assert snap.pins["h1"] == [HZERO_KEY]
    assert canonicalize(snap)["h2 pages"] == "F0.4"


def test_collapse_of_pte_mapped_range_and_errors() -> None:
    m = run(SETUP + f"""
set thp_alloc fail -> ok
write p0 {A:#x} 1 -> ok
write p0 {A + 7:#x} 7 -> ok
set thp_alloc ok -> ok
madvise p0 {A:#x} 0x200 collapse -> ok
state p0 {A:#x} -> anon pmd rw dirty softdirty excl
read p0 {A + 7:#x} -> 7
madvise p0 {A:#x} 0x200 collapse -> ok
madvise p0 {A + 0x200:#x} 0x200 collapse -> ENOMEM
""")
    assert m.frames_in_use() == 512
    run(f"""
mmap p0 0x1000 0x200 rw private,anon -> 0x1000
madvise p0 0x1000 0x200 collapse -> EINVAL
mmap p0 0x2000 0x200 rw shared,anon -> 0x2000
madvise p0 0x2000 0x200 collapse -> ENOSYS
""")


def test_collapse_refuses_a_pinned_subpage() -> None:
    # S5.15
    run(SETUP + f"""
set thp_alloc fail -> ok
write p0 {A:#x} 1 -> ok
write p0 {A + 1:#x} 2 -> ok
pin p0 {A + 1:#x} 1 rw,longterm -> h1
set thp_alloc ok -> ok
madvise p0 {A:#x} 0x200 collapse -> EAGAIN
state p0 {A:#x} -> anon pte rw dirty softdirty excl
""")


def test_pageout_of_exclusive_thp_gives_512_swap_entries() -> None:
    m = run(SETUP + f"""
write p0 {A + 2:#x} 2 -> ok
madvise p0 {A:#x} 0x200 pageout -> ok
state p0 {A + 2:#x} -> swap pte r softdirty excl
read p0 {A + 2:#x} -> 2
state p0 {A + 2:#x} -> anon pte rw softdirty excl
""")
    assert m.frames_in_use() == 1
    assert sum(p.kind is EntryKind.SWAP for p in _pages(m).values()) == 511


def test_huge_pmd_fault_fork_and_zap_are_constant_time() -> None:
    # 64 MiB of THPs: one entry per 512 pages everywhere; fork/exit cycles stay cheap
    n = 64 * 512
    m = run(f"""
mmap p0 0x40000 {n:#x} rw private,anon,populate -> 0x40000
""", after="", m=_always())
    assert len(_pages(m)) == n // 512
    prog = "fork p0 -> p1\nexit p1 -> ok\n"
    t0 = time.perf_counter()
    run(prog, m, after="set thp always -> ok\n" + f"mmap p0 0x40000 {n:#x} rw private,anon,populate -> 0x40000\n")
    assert time.perf_counter() - t0 < 0.5
    assert m.page_tables() == 3 + 0                  # pgd, pud, one pmd table


def _always() -> ImplMachine:
    return run("set thp always -> ok\n")


def test_pte_level_reuse_of_a_thp_subpage_follows_the_mm_id_rule() -> None:
    # PTE-mapped THP shared with a child: the shared bit forbids reuse (copy); once the
    # child exited, one MM owns all 512 mappings: the write reuses the subpage in place
    prog = SETUP + f"""
write p0 {A:#x} 1 -> ok
split p0 {A:#x} -> ok
fork p0 -> p1
write p0 {A + 3:#x} 3 -> ok
state p0 {A + 3:#x} -> anon pte rw dirty softdirty excl
"""
    m = run(prog)
    assert m.frames_in_use() == 513                  # copied: mapped shared
    m = run(prog + f"""
exit p1 -> ok
write p0 {A + 4:#x} 4 -> ok
state p0 {A + 4:#x} -> anon pte rw dirty softdirty excl
""")
    assert m.frames_in_use() == 513                  # reused: no second copy
    out = canonicalize(m.snapshot())
    assert out["frame F0.4"] == "map=1 pin=0 val=0x4"
