"""Device memory (devmem.md) in the Cython impl alone: hand-computed expectations from
the rules, invariants after every op, and impl-only properties: a special PMD is ONE
entry with no PTE table under it, and device pages use no frame records.

The reference model is never used here.
"""
from __future__ import annotations

from mmdiff.impl import ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.results import OK, Errno, errno, value
from mmdiff.reference.state import EntryKind, Level, canonicalize

from test_impl import run

BO = """
file f0 0x400 devmem -> ok
mmap p0 0x200 0x400 rw shared,pfnmap file=f0 off=0 -> 0x200
madvise p0 0x200 0x400 hugepage -> ok
"""


def _canon(m: ImplMachine, *prefixes: str) -> dict[str, str]:
    return {k: v for k, v in canonicalize(m.snapshot()).items() if k.startswith(prefixes)}


def test_special_pmd_is_one_entry_without_a_pte_table() -> None:
    m = run(BO)
    tables = m.page_tables()                    # PGD only: nothing faulted yet
    run("read p0 0x3ff -> 0\n", m, BO)
    # PUD + PMD tables for the fault, but no PTE table under the special PMD
    assert m.page_tables() == tables + 2
    pages = m.snapshot().procs["p0"].pages
    assert list(pages) == [0x200]               # one entry at haddr, not 512
    pv = pages[0x200]
    assert (pv.kind, pv.level, pv.writable, pv.dirty) == (EntryKind.PFN, Level.PMD, False, False)
    assert pv.frame == ("dev", "f0", 0)
    # the PTE-level path (tracked BO) needs a PTE table for the second block
    run("wp_range f0 0 0x400 -> 0\nread p0 0x400 -> 0\nstate p0 0x400 -> pfn pte r\n", m,
        BO + "read p0 0x3ff -> 0\n")
    assert m.page_tables() == tables + 3


def test_device_pages_use_no_frame_records() -> None:
    m = run(BO + """
write p0 0x200 1 -> ok
wp_range f0 0 0x400 -> 0
write p0 0x401 2 -> ok
poke p0 0x402 3 -> ok
fwrite f0 0x3ff 4 -> ok
fork p0 -> p1
read p1 0x5ff -> 4
read p1 0x402 -> 3
""")
    assert m.frames_in_use() == 0
    raw = m.snapshot()
    assert raw.frames == {}
    assert raw.devmem["f0"].values == ((0, 1), (0x201, 2), (0x202, 3), (0x3ff, 4))
    assert raw.devmem["f0"].tracked
    assert "f0" not in raw.files
    run("exit p0 -> ok\nexit p1 -> ok\n", m, BO + "fork p0 -> p1\n")
    assert m.frames_in_use() == 0
    assert m.page_tables() == 0                 # both address spaces are gone


def test_canonical_state_and_warnings() -> None:
    m = run(BO + """
write p0 0x205 0x77 -> ok
state p0 0x200 -> pfn pmd rw dirty softdirty
wp_range f0 0 0x400 -> 0
state p0 0x200 -> pfn pmd rw dirty softdirty
""")
    c = _canon(m, "f0", "warnings", "p0 page", "p0 vma")
    assert c == {
        "p0 vma[0]": "0x200-0x600 rw shared f0@0x0 hugepage pfnmap softdirty",
        "p0 page 0x200": "pfn pmd rw dirty softdirty f0:0x0",
        "f0 devmem": "pages=0x400 vals=0x5:0x77 tracked",
        "warnings": "1",                        # the skipped PMD was writable and dirty
    }
    # a tracked BO: a write to a read-only special PMD zaps it and goes to the PTE level
    run("mprotect p0 0x200 0x400 r -> ok\nmprotect p0 0x200 0x400 rw -> ok\n"
        "state p0 0x200 -> pfn pmd rw dirty softdirty\n"
        "clean_record f0 0 0x400 -> 0 bits=none\n", m, BO)
    assert canonicalize(m.snapshot())["warnings"] == "2"


def test_tracked_write_to_read_only_pmd_falls_back_to_ptes() -> None:
    m = run(BO + """
read p0 0x200 -> 0
wp_range f0 0 1 -> 0
write p0 0x203 9 -> ok
state p0 0x200 -> none
state p0 0x203 -> pfn pte rw dirty softdirty
read p0 0x3ff -> 0
state p0 0x3ff -> pfn pte r
fread f0 3 -> 9
""")
    assert "warnings" not in canonicalize(m.snapshot())   # the PMD was clean, read-only


def test_fork_copies_special_pmd_as_is_and_pfn_ptes_clean() -> None:
    m = run(BO + """
write p0 0x200 1 -> ok
wp_range f0 0x200 1 -> 0
write p0 0x400 2 -> ok
fork p0 -> p1
state p1 0x200 -> pfn pmd rw dirty softdirty
state p0 0x200 -> pfn pmd rw dirty softdirty
state p1 0x400 -> pfn pte rw softdirty
state p0 0x400 -> pfn pte rw dirty softdirty
same p0 0x400 p1 0x400 -> yes
same p0 0x200 p1 0x201 -> no
write p1 0x400 3 -> ok
read p0 0x400 -> 3
""")
    assert m.frames_in_use() == 0


def test_partial_munmap_and_split_zap_the_special_pmd() -> None:
    run(BO + """
read p0 0x200 -> 0
read p0 0x400 -> 0
munmap p0 0x300 1 -> ok
state p0 0x200 -> none
state p0 0x2ff -> none
read p0 0x2ff -> 0
state p0 0x2ff -> pfn pte r
state p0 0x400 -> pfn pmd r
split p0 0x480 -> ok
state p0 0x400 -> none
read p0 0x480 -> 0
state p0 0x480 -> pfn pmd r
madvise p0 0x480 1 nohugepage -> ok
state p0 0x400 -> none
read p0 0x400 -> 0
state p0 0x400 -> pfn pte r
""")


def test_address_pick_shares_the_offset_within_2mib() -> None:
    run("""
file f0 0x1000 devmem -> ok
mmap p0 0 0x200 r shared,pfnmap file=f0 off=0x10 -> 0x10
mmap p0 0 0x10 r shared,pfnmap file=f0 off=0x10 -> 0x210
mmap p0 0 0x200 r shared,pfnmap file=f0 off=0x200 -> 0x400
madvise p0 0x400 0x200 hugepage -> ok
read p0 0x10 -> 0
state p0 0x10 -> pfn pte r
read p0 0x400 -> 0
state p0 0x400 -> pfn pmd r
mmap p0 0 0x200 rw shared,pfnmap file=f0 off=0xc01 -> 0x601
mmap p0 0 0x200 rw shared,pfnmap file=f0 off=0xc01 -> 0x801
mmap p0 0 0x200 rw shared,pfnmap file=f0 off=0xe01 -> EINVAL
""")


def test_mmap_refusals() -> None:
    run("""
file f0 4 devmem -> ok
file f1 4 -> ok
mmap p0 0x100 4 rw private,pfnmap file=f0 off=0 -> EINVAL
mmap p0 0x100 4 rw shared file=f0 off=0 -> EINVAL
mmap p0 0x100 4 rw shared,pfnmap file=f1 off=0 -> EINVAL
mmap p0 0x100 4 rw shared,anon,pfnmap -> EINVAL
mmap p0 0x100 4 rw shared,pfnmap file=f0 off=1 -> EINVAL
mmap p0 0x100 3 rw shared,pfnmap file=f0 off=1 -> 0x100
mmap p0 0x103 1 rw shared,pfnmap file=f0 off=0 -> 0x103
read p0 0x103 -> 0
write p0 0x100 5 -> ok
fread f0 1 -> 5
fread f0 4 -> 0
fwrite f0 5 6 -> ok
fread f0 5 -> 6
fread f0 4 -> 0
mmap p0 0x200 6 r shared,pfnmap file=f0 off=0 -> 0x200
read p0 0x205 -> 6
""")
    m = run("file f0 4 devmem -> ok\nmmap p0 0x100 3 rw shared,pfnmap file=f0 off=1 -> 0x100\n"
            "mmap p0 0x103 1 rw shared,pfnmap file=f0 off=0 -> 0x103\n")
    assert len(m.snapshot().procs["p0"].vmas) == 2   # VM_SPECIAL: never merged


def test_clear_refs_skips_pfnmap_entries() -> None:
    run(BO + """
write p0 0x200 1 -> ok
wp_range f0 0x200 1 -> 0
write p0 0x400 2 -> ok
clear_refs p0 -> ok
state p0 0x200 -> pfn pmd rw dirty softdirty
state p0 0x400 -> pfn pte rw dirty softdirty
""")


def test_gup_and_hmm_refuse_pfnmap() -> None:
    m = run(BO + """
pin p0 0x200 1 r -> EFAULT
madvise p0 0x200 1 populate_write -> EFAULT
poke p0 0x300 7 -> ok
state p0 0x300 -> none
read p0 0x300 -> 7
lock p0 0x300 -> EFAULT
unlock p0 0x300 -> EINVAL
madvise p0 0x200 0x400 dontneed -> EINVAL
state p0 0x300 -> pfn pmd r
""")
    assert m.frames_in_use() == 0


def test_devmem_file_of_zero_pages_is_an_empty_bo() -> None:
    m = ImplMachine()
    assert m.execute(O.File("f0", 0, devmem=True)) == OK
    assert canonicalize(m.snapshot())["f0 devmem"] == "pages=0x0 vals=-"
    assert m.execute(O.FileRead("f0", 0)) == value(0)
    assert m.execute(O.File("f1", 1 << 51, devmem=True)) == errno(Errno.EINVAL)
