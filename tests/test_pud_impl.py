"""Special PUDs and PMD-table lifetime (pud.md) in the Cython impl alone: impl-only
properties with hand-computed table counts. A PUD leaf is ONE entry in the PUD table
(no PMD table under it); a slot's PMD table outlives its entries (zaps, MADV_DONTNEED)
and goes only when munmap leaves no VMA in the slot; fork copies empty ones.

The reference model is never used here; run() checks the invariants after every op.
"""
from __future__ import annotations

from mmdiff.reference.state import EntryKind, Level

from test_impl import run

BO = """
file f0 0x40000 devmem -> ok
mmap p0 0x40000 0x40000 rw shared,pfnmap file=f0 off=0 -> 0x40000
madvise p0 0x40000 0x40000 hugepage -> ok
"""


def test_pud_leaf_is_one_entry_without_a_pmd_table() -> None:
    m = run(BO)
    tables = m.page_tables()                    # PGD only
    run("read p0 0x7ffff -> 0\nstate p0 0x40000 -> pfn pud r\n", m, BO)
    assert m.page_tables() == tables + 1        # the PUD table, nothing below the leaf
    pages = m.snapshot().procs["p0"].pages
    assert list(pages) == [0x40000]             # one entry at the slot's first vpn
    pv = pages[0x40000]
    assert (pv.kind, pv.level, pv.writable, pv.dirty) == (EntryKind.PFN, Level.PUD, False, False)
    assert pv.frame == ("dev", "f0", 0)
    # a partial munmap clears the whole leaf; the next fault gets a PMD table
    run("munmap p0 0x40000 0x10 -> ok\nstate p0 0x40010 -> none\nread p0 0x40010 -> 0\n"
        "state p0 0x40010 -> pfn pte r\n", m, BO + "read p0 0x7ffff -> 0\n")
    assert m.page_tables() == tables + 3        # PUD, PMD and one PTE table


def test_pmd_table_outlives_its_entries_until_the_slot_is_empty() -> None:
    setup = """
mmap p0 0x40000 0x400 rw private,anon -> 0x40000
mmap p0 0x40400 0x10 rw private,anon -> 0x40400
"""
    m = run(setup)
    base = m.page_tables()
    run("write p0 0x40005 1 -> ok\n", m, setup)
    assert m.page_tables() == base + 3          # PUD, PMD, PTE
    done = setup + "write p0 0x40005 1 -> ok\n"
    run("madvise p0 0x40000 0x400 dontneed -> ok\n", m, done)
    assert m.page_tables() == base + 2          # PT_RECLAIM: the PTE table only
    done += "madvise p0 0x40000 0x400 dontneed -> ok\n"
    run("fork p0 -> p1\n", m, done)
    assert m.page_tables() == 2 * (base + 2)    # the child copies the empty PMD table
    done += "fork p0 -> p1\n"
    run("exit p1 -> ok\nmunmap p0 0x40000 0x400 -> ok\n", m, done)
    assert m.page_tables() == base + 2          # a VMA is left in the slot: kept
    done += "exit p1 -> ok\nmunmap p0 0x40000 0x400 -> ok\n"
    run("munmap p0 0x40400 0x10 -> ok\n", m, done)
    assert m.page_tables() == base              # the slot is empty: PMD (and PUD) table go


def test_straddling_pud_survives_vma_split_and_is_copied_once() -> None:
    m = run(BO + """
write p0 0x40001 5 -> ok
madvise p0 0x40000 0x20000 nohugepage -> ok
state p0 0x7ffff -> pfn pud rw dirty softdirty
fork p0 -> p1
state p1 0x40000 -> pfn pud rw dirty softdirty
read p1 0x40001 -> 5
""")
    assert list(m.snapshot().procs["p1"].pages) == [0x40000]
    assert m.page_tables() == 2 * 2             # each: PGD + PUD table
