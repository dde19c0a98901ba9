"""The Cython impl on its own: hand-computed expectations (rules.md), invariants after
every op, run_batch == execute, mutants and the memory accounting.

Programs are written in the corpus text format; each `-> EXPECT` is checked as the
op runs and ``check_invariants()`` is called after every op. The reference model
is never used here: these expectations were worked out from the kernel rules.
"""
from __future__ import annotations

import random

import pytest

from mmdiff.fuzz.text import format_op, parse
from mmdiff.impl import MUTANTS, ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.api import InvariantError
from mmdiff.reference.results import ENOSYS, OK, Errno, errno
from mmdiff.reference.state import ZERO_KEY, EntryKind, canonicalize

PA = frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON})


def run(text: str, m: ImplMachine | None = None, after: str = "") -> ImplMachine:
    """Replay `text` on m (a fresh ImplMachine by default), checking every expectation
    and the invariants after every op; return the machine for further probes.
    `after` is the text m already ran (it defines the names `text` may use)."""
    m = m if m is not None else ImplMachine()
    prog = parse("# mmdiff v1\n" + after + text, source="<test_impl>")
    done = len(parse("# mmdiff v1\n" + after).ops())
    for stmt in list(prog.op_stmts())[done:]:
        got = m.execute(stmt.op)
        if stmt.expect is not None:
            assert got == stmt.expect, (
                f"line {stmt.line - 1}: {format_op(stmt.op)}: expected {stmt.expect}, got {got}")
        try:
            m.check_invariants()
        except InvariantError as e:
            raise AssertionError(f"line {stmt.line - 1}: {format_op(stmt.op)}: {e}") from None
    return m


def frame_of(m: ImplMachine, proc: str, vpn: int):
    return m.snapshot().procs[proc].pages[vpn].frame


# --- anon faults and COW -----------------------------------------------------------------

def test_read_maps_zero_page_then_write_copies_it() -> None:
    m = run("""
mmap p0 0x100 2 rw private,anon -> 0x100
read p0 0x100 -> 0
read p0 0x101 -> 0
state p0 0x100 -> zero pte r
same p0 0x100 p0 0x101 -> yes
write p0 0x100 0x11 -> ok
state p0 0x100 -> anon pte rw dirty softdirty excl
read p0 0x100 -> 0x11
read p0 0x101 -> 0
""")
    snap = m.snapshot()
    assert snap.procs["p0"].pages[0x101].frame == ZERO_KEY
    assert snap.procs["p0"].vmas[0].anon_vma is True


def test_write_to_read_only_mapping_is_segv_and_changes_nothing() -> None:
    run("""
mmap p0 0x100 1 r private,anon -> 0x100
read p0 0x100 -> 0
write p0 0x100 5 -> SEGV
state p0 0x100 -> zero pte r
read p0 0x200 -> SEGV
mprotect p0 0x100 1 none -> ok
read p0 0x100 -> SEGV
state p0 0x100 -> zero pte r
""")


def test_cow_after_fork_copies_on_both_sides() -> None:
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 0x11 -> ok
fork p0 -> p1
state p0 0x100 -> anon pte r dirty softdirty
state p1 0x100 -> anon pte r dirty softdirty
same p0 0x100 p1 0x100 -> yes
write p1 0x100 0x22 -> ok
same p0 0x100 p1 0x100 -> no
read p0 0x100 -> 0x11
read p1 0x100 -> 0x22
state p1 0x100 -> anon pte rw dirty softdirty excl
write p0 0x100 0xff -> ok
""")
    # the parent's write reused the old frame (refcount back to 1): no third frame
    snap = m.snapshot()
    assert len(snap.frames) == 2
    assert {f.value for f in snap.frames.values()} == {0xff, 0x22}


def test_exclusive_reuse_after_child_exit_keeps_the_frame() -> None:
    first = """
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 1 -> ok
fork p0 -> p1
exit p1 -> ok
state p0 0x100 -> anon pte r dirty softdirty
"""
    m = run(first)
    before = frame_of(m, "p0", 0x100)
    run("""
write p0 0x100 2 -> ok
state p0 0x100 -> anon pte rw dirty softdirty excl
read p1 0x100 -> ESRCH
""", m, after=first)
    assert frame_of(m, "p0", 0x100) == before      # wp_page_reuse: same frame, no copy


def test_mprotect_rw_upgrades_exclusive_anon_but_not_zero_or_shared_pages() -> None:
    run("""
mmap p0 0x100 3 rw private,anon -> 0x100
write p0 0x100 1 -> ok
read p0 0x101 -> 0
mprotect p0 0x100 3 r -> ok
state p0 0x100 -> anon pte r dirty softdirty excl
mprotect p0 0x100 3 rw -> ok
state p0 0x100 -> anon pte rw dirty softdirty excl
state p0 0x101 -> zero pte r
fork p0 -> p1
mprotect p0 0x100 3 r -> ok
mprotect p0 0x100 3 rw -> ok
state p0 0x100 -> anon pte r dirty softdirty
write p0 0x100 0xff -> ok
read p1 0x100 -> 1
""")


def test_zero_page_copied_at_fork_only_with_an_anon_vma() -> None:
    run("""
mmap p0 0x100 2 rw private,anon -> 0x100
read p0 0x100 -> 0
fork p0 -> p1
state p1 0x100 -> none
write p0 0x101 7 -> ok
fork p0 -> p2
state p2 0x100 -> zero pte r
state p2 0x101 -> anon pte r dirty softdirty
""")


# --- mmap / munmap ---------------------------------------------------------------------------

def test_map_fixed_replaces_and_frees_the_old_pages() -> None:
    m = run("""
mmap p0 0x100 4 rw private,anon -> 0x100
write p0 0x101 9 -> ok
write p0 0x102 9 -> ok
mmap p0 0x101 2 r private,anon -> 0x101
read p0 0x101 -> 0
read p0 0x100 -> 0
read p0 0x103 -> 0
""")
    assert m.frames_in_use() == 0
    vmas = m.snapshot().procs["p0"].vmas
    assert [(v.start, v.end, v.prot) for v in vmas] == [
        (0x100, 0x101, O.Prot.RW), (0x101, 0x103, O.Prot.R), (0x103, 0x104, O.Prot.RW)]


def test_partial_munmap_splits_the_vma() -> None:
    m = run("""
mmap p0 0x100 4 rw private,anon -> 0x100
write p0 0x100 1 -> ok
write p0 0x101 2 -> ok
write p0 0x103 4 -> ok
munmap p0 0x101 2 -> ok
read p0 0x101 -> SEGV
read p0 0x102 -> SEGV
read p0 0x100 -> 1
read p0 0x103 -> 4
munmap p0 0x0 0x1000 -> ok
""")
    assert m.snapshot().procs["p0"].vmas == []
    assert m.frames_in_use() == 0
    assert m.page_tables() == 1                 # only the PGD is left


def test_mmap_picks_lowest_free_range_and_aligns_private_anon() -> None:
    run("""
mmap p0 0 4 rw private,anon -> 0x10
mmap p0 0 2 rw shared,anon -> 0x14
mmap p0 0 0x200 rw private,anon -> 0x200
mmap p0 0 1 r private,anon -> 0x16
mmap p0 0x7fffffffe 1 r private,anon -> 0x7fffffffe
mmap p0 0x7ffffffff 1 r private,anon -> ENOMEM
mmap p0 1 1 r private,anon -> 0x1
""")


def test_mmap_errno_order() -> None:
    run("""
file f0 1
mmap p0 0x100 0 rw private,anon -> EINVAL
mmap p0 0x100 1 rw anon -> EINVAL
mmap p0 0x100 1 rw private,shared,anon -> EINVAL
mmap p0 0x100 1 rw private,anon file=f0 off=0 -> EINVAL
mmap p0 0x100 1 rw private -> EINVAL
mmap p0 0x100 1 rw private,anon,pfnmap -> EINVAL
mmap p0 0x100 0 rw private,anon,pfnmap -> EINVAL
mmap p0 0x100 1 rw shared,pfnmap file=f0 off=0 -> EINVAL
munmap p0 0x100 0 -> EINVAL
munmap p0 0x7ffffffff 1 -> EINVAL
munmap p0 0x7fffffffe 1 -> ok
""")


def test_mmap_of_an_unknown_file_is_ebadf(impl) -> None:
    op = O.Mmap("p0", 0x100, 0, O.Prot.RW, frozenset({O.MapFlag.SHARED}), "f9", None)
    assert impl.execute(op) == errno(Errno.EBADF)
    assert impl.execute(O.FileRead("f9", 0)) == errno(Errno.EBADF)


def test_map_populate_breaks_cow_for_private_rw_only() -> None:
    run("""
mmap p0 0x100 2 rw private,anon,populate -> 0x100
state p0 0x100 -> anon pte rw dirty softdirty excl
state p0 0x101 -> anon pte rw dirty softdirty excl
mmap p0 0x200 2 r private,anon,populate -> 0x200
state p0 0x200 -> zero pte r
mmap p0 0x300 2 rw shared,anon,populate -> 0x300
state p0 0x300 -> file pte rw
mmap p0 0x400 2 none private,anon,populate -> 0x400
state p0 0x400 -> none
""")


# --- mprotect / madvise ----------------------------------------------------------------------

def test_mprotect_hole_changes_the_pieces_before_it() -> None:
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
mmap p0 0x102 2 rw private,anon -> 0x102
mprotect p0 0x100 4 r -> ENOMEM
write p0 0x100 1 -> SEGV
write p0 0x102 1 -> ok
mprotect p0 0x101 2 r -> ENOMEM
mprotect p0 0x100 0 r -> ok
mprotect p0 0x10000000000000 1 r -> ENOMEM
mprotect p0 0xfffffffffffff 2 r -> ENOMEM
""")
    prots = [(v.start, v.prot) for v in m.snapshot().procs["p0"].vmas]
    assert prots == [(0x100, O.Prot.R), (0x102, O.Prot.RW)]


def test_mprotect_merges_back_into_one_vma() -> None:
    m = run("""
mmap p0 0x100 4 rw private,anon -> 0x100
write p0 0x101 1 -> ok
mprotect p0 0x101 2 r -> ok
mprotect p0 0x101 2 rw -> ok
""")
    vmas = m.snapshot().procs["p0"].vmas
    assert [(v.start, v.end) for v in vmas] == [(0x100, 0x104)]


def test_madvise_dontneed_zaps_across_holes_with_enomem() -> None:
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
mmap p0 0x102 1 rw private,anon -> 0x102
write p0 0x100 1 -> ok
write p0 0x102 2 -> ok
madvise p0 0x100 3 dontneed -> ENOMEM
read p0 0x100 -> 0
read p0 0x102 -> 0
madvise p0 0x500 0 dontneed -> ok
madvise p0 0x500 1 hugepage -> ENOMEM
madvise p0 0x500 1 dontneed -> ENOMEM
madvise p0 0xfffffffffffff 2 dontneed -> EINVAL
""")
    assert m.frames_in_use() == 0


def test_wipeonfork_child_reads_zero_and_parent_keeps_value() -> None:
    run("""
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 7 -> ok
madvise p0 0x100 1 wipeonfork -> ok
fork p0 -> p1
state p1 0x100 -> none
read p1 0x100 -> 0
read p0 0x100 -> 7
mmap p0 0x200 1 rw shared,anon -> 0x200
madvise p0 0x200 1 wipeonfork -> EINVAL
madvise p0 0x200 1 keeponfork -> ok
""")


def test_dontfork_child_gets_a_hole() -> None:
    m = run("""
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 1 -> ok
write p0 0x101 2 -> ok
madvise p0 0x101 1 dontfork -> ok
fork p0 -> p1
read p1 0x101 -> SEGV
read p1 0x100 -> 1
madvise p0 0x101 1 dofork -> ok
""")
    assert [(v.start, v.end) for v in m.snapshot().procs["p1"].vmas] == [(0x100, 0x101)]
    # dofork cleared the flag: the parent's two pieces merged back
    assert [(v.start, v.end, v.flags) for v in m.snapshot().procs["p0"].vmas] == [
        (0x100, 0x102, ("softdirty",))]   # VM_SOFTDIRTY of a new mapping


def test_madvise_populate_errnos_and_effects() -> None:
    run("""
mmap p0 0x100 2 rw private,anon -> 0x100
mmap p0 0x103 1 rw private,anon -> 0x103
madvise p0 0x100 4 populate_read -> ENOMEM
state p0 0x101 -> zero pte r
state p0 0x103 -> none
madvise p0 0x100 2 populate_write -> ok
state p0 0x100 -> anon pte rw dirty softdirty excl
mmap p0 0x200 1 r private,anon -> 0x200
madvise p0 0x200 1 populate_write -> EINVAL
state p0 0x200 -> none
madvise p0 0x200 1 populate_read -> ok
mmap p0 0x300 1 none shared,anon -> 0x300
madvise p0 0x300 1 populate_read -> EINVAL
file f0 1
mmap p0 0x400 2 rw shared file=f0 off=0 -> 0x400
madvise p0 0x400 2 populate_write -> EFAULT
state p0 0x400 -> file pte rw dirty softdirty
""")


# --- shared memory and files ---------------------------------------------------------------

def test_shared_anon_is_visible_across_fork_without_copying_entries() -> None:
    run("""
mmap p0 0x100 1 rw shared,anon -> 0x100
write p0 0x100 1 -> ok
fork p0 -> p1
state p1 0x100 -> none
write p1 0x100 2 -> ok
read p0 0x100 -> 2
same p0 0x100 p1 0x100 -> yes
mprotect p0 0x100 1 r -> ok
state p0 0x100 -> file pte r dirty softdirty
mprotect p0 0x100 1 rw -> ok
state p0 0x100 -> file pte rw dirty softdirty
""")


def test_hidden_shmem_object_is_freed_with_its_last_vma() -> None:
    m = run("""
mmap p0 0x100 2 rw shared,anon -> 0x100
write p0 0x100 1 -> ok
fork p0 -> p1
munmap p0 0x100 2 -> ok
read p1 0x100 -> 1
exit p1 -> ok
""")
    assert m.frames_in_use() == 0


def test_file_io_and_private_file_cow() -> None:
    m = run("""
file f0 4
fread f0 2 -> 0
fwrite f0 1 0x41 -> ok
mmap p0 0x100 4 rw private file=f0 off=0 -> 0x100
read p0 0x101 -> 0x41
state p0 0x101 -> file pte r
write p0 0x101 0x42 -> ok
state p0 0x101 -> anon pte rw dirty softdirty excl
fread f0 1 -> 0x41
read p0 0x100 -> 0
read p0 0x104 -> SEGV
fwrite f0 9 3 -> ok
fread f0 8 -> 0
""")
    files = m.snapshot().files["f0"]
    # read of pgoff 0 allocated it in the cache; fread of a hole (pgoff 2, 8) did not
    assert sorted(files) == [0, 1, 9]


def test_file_beyond_eof_is_bus_and_shared_mapping_sees_file_writes() -> None:
    run("""
file f0 1
mmap p0 0x100 2 rw shared file=f0 off=0 -> 0x100
read p0 0x101 -> BUS
write p0 0x101 1 -> BUS
write p0 0x100 5 -> ok
state p0 0x100 -> file pte rw dirty softdirty
fread f0 0 -> 5
fwrite f0 0 6 -> ok
read p0 0x100 -> 6
fwrite f0 1 7 -> ok
read p0 0x101 -> 7
file f1 3 devmem -> ok
""")


def test_file_defined_twice_is_eexist(impl) -> None:
    # the text parser refuses a second definition; a program built in code can do it
    assert str(impl.execute(O.File("f0", 1))) == "ok"
    assert impl.execute(O.File("f0", 3)) == errno(Errno.EEXIST)


def test_fault_around_maps_resident_pages_of_the_window() -> None:
    # VMA starts 5 pages into a PMD; reading VMA page 3 maps the resident pages of
    # [vma start, vma start + 16) (FACTS Q9), never the non-resident ones.
    first = """
file f0 64
fwrite f0 0 1 -> ok
fwrite f0 7 2 -> ok
fwrite f0 15 3 -> ok
fwrite f0 16 4 -> ok
mmap p0 0x205 64 r private file=f0 off=0 -> 0x205
read p0 0x208 -> 0
"""
    m = run(first)
    pages = m.snapshot().procs["p0"].pages
    assert sorted(pages) == [0x205, 0x208, 0x20c, 0x214]
    assert all(p.kind is EntryKind.FILE and not p.writable for p in pages.values())
    run("""
write p0 0x20c 9 -> SEGV
mmap p0 0x300 8 rw shared file=f0 off=0 -> 0x300
write p0 0x303 1 -> ok
state p0 0x300 -> none
read p0 0x301 -> 0
state p0 0x300 -> file pte rw
""", m, after=first)


def test_fault_around_runs_before_the_eof_check() -> None:
    # do_read_fault calls ->map_pages (filemap_map_pages, clamped to EOF) before
    # ->fault (shmem_fault: SIGBUS past i_size). Checked on the 6.18 kernel: a read
    # of page 2 of a 2-page memfd mapped over 4 pages raises SIGBUS and leaves the
    # resident page 0 mapped, private and shared alike.
    run("""
file f0 2
fwrite f0 0 5 -> ok
mmap p0 0x100 4 r shared file=f0 off=0 -> 0x100
mmap p0 0x200 4 r private file=f0 off=0 -> 0x200
read p0 0x102 -> BUS
state p0 0x100 -> file pte r
state p0 0x101 -> none
read p0 0x202 -> BUS
state p0 0x200 -> file pte r
madvise p0 0x101 2 populate_read -> EFAULT
state p0 0x101 -> file pte r
""")


# --- devices, notifiers, device-exclusive entries, folio lock (device.md) ------------------

def test_dexcl_atomic_then_cpu_read_restores_and_revokes() -> None:
    m = run("""
mmap p0 0x100 2 rw private,anon -> 0x100
mirror d0 p0 0x100 2 -> m1
write p0 0x100 0x11 -> ok
dexcl d0 p0 0x100 -> ok
state p0 0x100 -> devexcl pte r softdirty excl
same p0 0x100 p0 0x100 -> yes
datomic d0 p0 0x100 1 -> 0x11
dread d0 p0 0x100 -> 0x12
devents d0 -> m1:exclusive(d0)@0x100+0x1
""")
    snap = m.snapshot()
    frame = snap.procs["p0"].pages[0x100].frame
    assert snap.devices["d0"].mirror == {("p0", 0x100): (frame, "atomic")}
    assert snap.frames[frame].mapcount == 1 and not snap.frames[frame].locked
    assert snap.subs["m1"].seq == 0             # its own exclusive event is skipped
    run("""
read p0 0x100 -> 0x12
state p0 0x100 -> anon pte rw dirty softdirty excl
devents d0 -> m1:clear@0x100+0x1
lock p0 0x100 -> ok
datomic d0 p0 0x100 1 -> EBUSY
unlock p0 0x100 -> ok
datomic d0 p0 0x100 1 -> 0x12
devents d0 -> m1:exclusive(d0)@0x100+0x1
read p0 0x100 -> 0x13
""", m, after="""mmap p0 0x100 2 rw private,anon
mirror d0 p0 0x100 2
""")
    assert m.snapshot().subs["m1"].seq == 2


def test_restore_without_vm_write_is_clean_and_poke_keeps_it_clean() -> None:
    # restore_exclusive_pte: no VM_WRITE -> read-only, clean; the poke's retried follow
    # passes can_follow_write_pte (AnonExclusive, FOLL_FORCE): no second fault
    run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 1 -> ok
mirror d0 p0 0x100 1 -> m1
dexcl d0 p0 0x100 -> ok
mprotect p0 0x100 1 r -> ok
state p0 0x100 -> devexcl pte r softdirty excl
dwrite d0 p0 0x100 2 -> EPERM
devents d0 -> m1:exclusive(d0)@0x100+0x1 m1:protection_vma@0x100+0x1
poke p0 0x100 3 -> ok
state p0 0x100 -> anon pte r softdirty excl
devents d0 -> m1:clear@0x100+0x1
read p0 0x100 -> 3
write p0 0x100 4 -> SEGV
""")


def test_fork_over_a_locked_dx_folio_fails_and_keeps_the_parents_work() -> None:
    m = run("""
mmap p0 0x100 2 rw private,anon -> 0x100
mmap p0 0x200 1 rw private,anon -> 0x200
write p0 0x100 1 -> ok
write p0 0x200 2 -> ok
mirror d0 p0 0x200 1 -> m1
dexcl d0 p0 0x200 -> ok
lock p0 0x200 -> ok
lock p0 0x200 -> EBUSY
fork p0 -> ENOMEM
state p0 0x100 -> anon pte r dirty softdirty
state p0 0x200 -> devexcl pte r softdirty excl
""")
    assert set(m.snapshot().procs) == {"p0"} and m.frames_in_use() == 2
    run("""
write p0 0x100 5 -> ok
state p0 0x100 -> anon pte rw dirty softdirty excl
unlock p0 0x200 -> ok
unlock p0 0x200 -> EINVAL
fork p0 -> p1
state p0 0x200 -> anon pte r dirty softdirty
same p0 0x200 p1 0x200 -> yes
devents d0 -> m1:exclusive(d0)@0x200+0x1 m1:protection_page@0x200+0x1 m1:protection_page@0x200+0x1
""", m, after="mirror d0 p0 0x200 1\n")


def test_a_locked_folio_is_not_reused_by_a_write_fault() -> None:
    # wp_can_reuse_anon_folio: refcount 1 but folio_trylock fails -> wp_page_copy
    run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 1 -> ok
fork p0 -> p1
exit p1 -> ok
mirror d0 p0 0x100 1 -> m1
dread d0 p0 0x100 -> 1
lock p0 0x100 -> ok
state p0 0x100 -> anon pte r dirty softdirty
write p0 0x100 2 -> ok
state p0 0x100 -> anon pte rw dirty softdirty excl
devents d0 -> m1:clear@0x100+0x1
lock p0 0x100 -> ok
lock p0 0x101 -> EFAULT
unlock p0 0x101 -> EINVAL
""")


def test_mprotect_event_needs_a_pmd_table_in_the_1gib_slot() -> None:
    # pud.md A: per 512 GiB chunk of the piece, from the first 1 GiB slot whose PUD entry
    # is not none (a PMD table: made by the first fault, kept when its entries go,
    # freed by munmap once no VMA is left in the slot)
    run("""
mmap p0 0x3fff0 0x20 rw private,anon -> 0x3fff0
mirror d0 p0 0 0x100000 -> m1
mprotect p0 0x3fff0 0x20 r -> ok
mprotect p0 0x3fff0 0x20 rw -> ok
devents d0 -> none
write p0 0x40005 1 -> ok
mprotect p0 0x3fff0 0x20 r -> ok
devents d0 -> m1:protection_vma@0x40000+0x10
mprotect p0 0x40008 2 rw -> ok
mprotect p0 0x40008 2 rw -> ok
devents d0 -> m1:protection_vma@0x40008+0x2
madvise p0 0x40005 1 dontneed -> ok
mprotect p0 0x40008 2 r -> ok
devents d0 -> m1:clear@0x40005+0x1 m1:protection_vma@0x40008+0x2
munmap p0 0x40000 0x10 -> ok
mprotect p0 0x3fff0 0x10 r -> ok
devents d0 -> m1:unmap@0x40000+0x10
mmap p0 0x40000 0x10 rw private,anon -> 0x40000
mprotect p0 0x40000 0x10 r -> ok
devents d0 -> none
""")


def test_exit_releases_every_subscription_then_unmaps() -> None:
    m = run("""
mirror d0 p0 0x100 4 -> m1
fork p0 -> p1
mirror d1 p1 0x500 2 -> m2
mmap p1 0x700 1 rw private,anon -> 0x700
exit p0 -> ok
devents d0 -> m1:release@0x100+0x4
exit p1 -> ok
devents d1 -> m2:release@0x500+0x2 m2:unmap@0x500+0x2
dread d0 p0 0x100 -> ESRCH
""")
    subs = m.snapshot().subs
    assert (subs["m1"].proc, subs["m1"].seq, subs["m2"].seq) == ("p0", 1, 2)
    assert m.execute(O.Unmirror("m1")) == OK and "m1" not in m.snapshot().subs


def test_mirror_errnos_and_names_count_successes() -> None:
    run("""
mmap p0 0x100 1 rw private,anon -> 0x100
mirror d0 p0 0x100 0 -> EOVERFLOW
mirror d0 p0 0xffffffffff000 0x1001 -> EOVERFLOW
mirror d0 p0 0xffffffffff000 0x1000 -> m1
mirror d0 p0 0x100 1 -> m2
unmirror m1 -> ok
unmirror m1 -> EINVAL
dread d0 p0 0x100 -> 0
dread d1 p0 0x100 -> EINVAL
dexcl d1 p0 0x100 -> EINVAL
datomic d1 p0 0x100 1 -> EINVAL
dwrite d0 p0 0x101 1 -> EINVAL
mmap p0 0x200 1 rw shared,anon -> 0x200
mirror d0 p0 0x200 1 -> m3
dexcl d0 p0 0x200 -> EOPNOTSUPP
munmap p0 0x200 1 -> ok
dread d0 p0 0x200 -> EFAULT
""")


def test_dx_entry_is_zapped_like_a_present_one() -> None:
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 3 -> ok
mirror d0 p0 0x100 1 -> m1
dexcl d0 p0 0x100 -> ok
munmap p0 0x100 1 -> ok
devents d0 -> m1:exclusive(d0)@0x100+0x1 m1:unmap@0x100+0x1
""")
    assert m.frames_in_use() == 0 and m.snapshot().devices == {}


def test_notifier_dispatch_matches_brute_force() -> None:
    """Random subscriptions (inserted and removed) over one VMA and random dontneed
    ranges: every device receives exactly the clipped clear of each live subscription
    it owns that the range intersects (device.md), items sorted by (K, START, N, KIND)."""
    rng = random.Random(6)
    m = ImplMachine()
    m.execute(O.Mmap("p0", 0x1000, 0x1000, O.Prot.RW, PA, None, None))
    live: dict[str, tuple[str, int, int]] = {}
    pending: dict[str, list[tuple[int, int, int]]] = {f"d{k}": [] for k in range(4)}
    for _ in range(600):
        r = rng.random()
        if r < 0.25:
            dev, start = f"d{rng.randrange(4)}", 0xfc0 + rng.randrange(0x1080)
            n = rng.choice([1, 2, rng.randrange(1, 0x300)])
            name = str(m.execute(O.Mirror(dev, "p0", start, n)))
            live[name] = (dev, start, start + n)
        elif r < 0.35 and live:
            name = rng.choice(sorted(live))
            assert m.execute(O.Unmirror(name)) == OK
            del live[name]
        elif r < 0.9:
            a = 0x1000 + rng.randrange(0x1000)
            e = min(0x2000, a + rng.choice([1, 3, rng.randrange(1, 0x400)]))
            assert m.execute(O.Madvise("p0", a, e - a, O.Advice.DONTNEED)) == OK
            for name, (dev, s, t) in live.items():
                if s < e and a < t:
                    pending[dev].append((int(name[1:]), max(a, s), min(e, t)))
        else:
            dev = f"d{rng.randrange(4)}"
            got = str(m.execute(O.DevEvents(dev)))
            want = " ".join(f"m{k}:clear@{s:#x}+{t - s:#x}" for k, s, t in
                            sorted(pending[dev], key=lambda x: (x[0], x[1], x[2] - x[1])))
            assert got == (want or "none"), dev
            pending[dev] = []
        m.check_invariants()


# --- swap (madvise pageout, zram) and KSM (swap-ksm.md) -----------------------------------

def _canon(m: ImplMachine, *prefixes: str) -> dict:
    """The canonical snapshot fields whose path starts with one of prefixes."""
    return {k: v for k, v in canonicalize(m.snapshot()).items() if k.startswith(prefixes)}


def test_pageout_makes_swap_entries_and_a_sole_swapin_is_exclusive() -> None:
    m = run("""
mmap p0 0x100 3 rw private,anon -> 0x100
write p0 0x100 5 -> ok
write p0 0x101 6 -> ok
read p0 0x102 -> 0
madvise p0 0x100 3 pageout -> ok
state p0 0x100 -> swap pte r softdirty excl
state p0 0x101 -> swap pte r softdirty excl
state p0 0x102 -> zero pte r
same p0 0x100 p0 0x100 -> no
lock p0 0x100 -> EFAULT
unlock p0 0x100 -> EINVAL
""")
    # two slots, each referenced once, nothing cached; the frames are gone
    assert _canon(m, "slot") == {"slot S0": "count=1 val=0x5 cache=-",
                                 "slot S1": "count=1 val=0x6 cache=-"}
    assert m.frames_in_use() == 0
    # a read of the slot's only reference: the zram bypass, exclusive, mapped writable
    # (VM_WRITE) but clean; a write fault also dirties it; both slots are freed
    run("""
read p0 0x100 -> 5
state p0 0x100 -> anon pte rw softdirty excl
write p0 0x101 7 -> ok
state p0 0x101 -> anon pte rw dirty softdirty excl
read p0 0x101 -> 7
""", m, after="mmap p0 0x100 3 rw private,anon\n")
    assert _canon(m, "slot") == {}
    assert m.frames_in_use() == 2


def test_fork_shares_a_swap_slot_and_the_swap_cache_serves_both() -> None:
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 5 -> ok
madvise p0 0x100 1 pageout -> ok
fork p0 -> p1
state p0 0x100 -> swap pte r softdirty
state p1 0x100 -> swap pte r softdirty
""")
    assert _canon(m, "slot") == {"slot S0": "count=2 val=0x5 cache=-"}
    # the first swap-in of a shared slot goes through the swap cache: not exclusive
    run("""
read p0 0x100 -> 5
state p0 0x100 -> anon pte r softdirty
""", m, after="mmap p0 0x100 1 rw private,anon\nfork p0\n")
    assert _canon(m, "p1 page", "slot", "frame") == {
        "p1 page 0x100": "swap pte r softdirty S0", "slot S0": "count=1 val=0x5 cache=F0",
        "frame F0": "map=1 pin=0 val=0x5"}
    cached = frame_of(m, "p0", 0x100)
    run("""
read p1 0x100 -> 5
same p0 0x100 p1 0x100 -> yes
write p0 0x100 9 -> ok
same p0 0x100 p1 0x100 -> no
read p1 0x100 -> 5
write p1 0x100 10 -> ok
state p1 0x100 -> anon pte rw dirty softdirty excl
read p0 0x100 -> 9
""", m, after="mmap p0 0x100 1 rw private,anon\nfork p0\n")
    # p0's write copied (cache ref + two mappings); p1's write reused the cached frame
    # once it left the swap cache (no swap entry needed it any more)
    assert frame_of(m, "p1", 0x100) == cached
    run("exit p0 -> ok\nexit p1 -> ok\n", m, after="fork p0\n")
    assert m.frames_in_use() == 0


def test_zapping_the_last_user_drops_the_swap_cache_folio() -> None:
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 5 -> ok
madvise p0 0x100 1 pageout -> ok
fork p0 -> p1
read p0 0x100 -> 5
munmap p0 0x100 1 -> ok
""")
    # unmapped, but p1's swap entry still needs the slot: the folio stays cached
    assert m.frames_in_use() == 1
    assert _canon(m, "slot", "frame") == {"slot S0": "count=1 val=0x5 cache=F0",
                                          "frame F0": "map=0 pin=0 val=0x5"}
    run("""
read p1 0x100 -> 5
state p1 0x100 -> anon pte r softdirty
munmap p1 0x100 1 -> ok
""", m, after="fork p0\n")
    assert m.frames_in_use() == 0                  # free_swap_cache at the last unmap
    # the same through the swap entry: free_swap_and_cache reclaims the unmapped folio
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 5 -> ok
madvise p0 0x100 1 pageout -> ok
fork p0 -> p1
read p0 0x100 -> 5
munmap p0 0x100 1 -> ok
madvise p1 0x100 1 dontneed -> ok
read p1 0x100 -> 0
""")
    assert _canon(m, "slot") == {}
    assert m.frames_in_use() == 0


def test_pageout_skips_pinned_locked_shared_and_ksm_pages() -> None:
    m = run("""
mmap p0 0x100 4 rw private,anon -> 0x100
write p0 0x100 1 -> ok
write p0 0x101 2 -> ok
write p0 0x102 3 -> ok
write p0 0x103 4 -> ok
pin p0 0x100 1 rw,longterm -> h1
lock p0 0x101 -> ok
fork p0 -> p1
write p1 0x103 9 -> ok
write p1 0x101 8 -> ok
madvise p0 0x100 5 pageout -> ENOMEM
state p0 0x100 -> anon pte rw dirty softdirty excl
state p0 0x101 -> anon pte r dirty softdirty
state p0 0x102 -> anon pte r dirty softdirty
state p0 0x103 -> swap pte r softdirty
read p0 0x103 -> 4
state p0 0x103 -> anon pte rw softdirty excl
unlock p0 0x101 -> ok
madvise p0 0x101 1 pageout -> ok
state p0 0x101 -> swap pte r softdirty
""")
    # p0: the pinned page, 0x102 (shared with p1), 0x103 swapped in again; p1: the copy of
    # the pinned page made at fork and its own copies of 0x101 and 0x103
    assert m.frames_in_use() == 6
    m = run("""
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 6 -> ok
write p0 0x101 6 -> ok
madvise p0 0x100 2 mergeable -> ok
ksm_scan -> 1
madvise p0 0x100 2 pageout -> ok
same p0 0x100 p0 0x101 -> yes
""")


def test_shmem_pageout_dirty_pages_go_to_slots_clean_ones_are_dropped() -> None:
    m = run("""
file f0 3 -> ok
fwrite f0 0 3 -> ok
mmap p0 0x200 3 rw shared file=f0 off=0 -> 0x200
read p0 0x200 -> 3
read p0 0x201 -> 0
write p0 0x202 4 -> ok
madvise p0 0x200 3 pageout -> ok
state p0 0x200 -> none
state p0 0x201 -> none
state p0 0x202 -> none
""")
    # written pages (fwrite, CPU store) are dirty: shmem_writeout; the page a read fault
    # filled was never written: dropped, the file page is a hole again
    assert _canon(m, "f0", "slot") == {"f0 pgoff 0x0": "S0", "f0 pgoff 0x2": "S1",
                                       "slot S0": "count=1 val=0x3 cache=-",
                                       "slot S1": "count=1 val=0x4 cache=-"}
    assert m.frames_in_use() == 0
    run("""
fread f0 0 -> 3
fread f0 1 -> 0
read p0 0x202 -> 4
madvise p0 0x200 3 pageout -> ok
""", m, after="file f0 3\nmmap p0 0x200 3 rw shared file=f0 off=0\n")
    # read(2) swapped pgoff 0 in (dirty); the read fault on 0x202 first maps the resident
    # pages of its window (0x200 now: fault-around), then swaps pgoff 2 in (dirty). Both
    # are paged out to new slots; the hole stays a hole.
    assert _canon(m, "f0", "slot", "frame") == {"f0 pgoff 0x0": "S0", "f0 pgoff 0x2": "S1",
                                                "slot S0": "count=1 val=0x3 cache=-",
                                                "slot S1": "count=1 val=0x4 cache=-"}


def test_shmem_fault_around_maps_resident_pages_only() -> None:
    run("""
file f0 2 -> ok
fwrite f0 0 3 -> ok
fwrite f0 1 4 -> ok
mmap p0 0x200 2 r shared file=f0 off=0 -> 0x200
read p0 0x200 -> 3
read p0 0x201 -> 4
madvise p0 0x200 2 pageout -> ok
read p0 0x201 -> 4
state p0 0x200 -> none
state p0 0x201 -> file pte r
""")


def test_swap_entries_survive_mprotect_and_devices_see_pageout_as_clear() -> None:
    run("""
mmap p0 0x100 2 rw private,anon -> 0x100
mirror d0 p0 0x100 2 -> m1
write p0 0x100 5 -> ok
dread d0 p0 0x100 -> 5
madvise p0 0x100 2 pageout -> ok
devents d0 -> m1:clear@0x100+0x1
mprotect p0 0x100 1 r -> ok
devents d0 -> m1:protection_vma@0x100+0x1
state p0 0x100 -> swap pte r softdirty excl
write p0 0x100 6 -> SEGV
read p0 0x100 -> 5
state p0 0x100 -> anon pte r softdirty excl
devents d0 -> none
mprotect p0 0x100 1 rw -> ok
write p0 0x100 6 -> ok
""")


def test_ksm_merges_identical_pages_and_writes_always_copy() -> None:
    m = run("""
mmap p0 0x100 4 rw private,anon -> 0x100
write p0 0x100 5 -> ok
write p0 0x101 5 -> ok
write p0 0x102 5 -> ok
write p0 0x103 6 -> ok
madvise p0 0x100 4 mergeable -> ok
ksm_scan -> 2
same p0 0x100 p0 0x101 -> yes
same p0 0x100 p0 0x102 -> yes
same p0 0x100 p0 0x103 -> no
state p0 0x100 -> anon pte r
state p0 0x101 -> anon pte r softdirty
state p0 0x102 -> anon pte r
ksm_scan -> 0
""")
    # 0x100 waited, 0x101 became the KSM page in place (write-protected), 0x100 and
    # 0x102 were replaced by it (clean, not soft-dirty)
    assert _canon(m, "p0 vma", "frame F0") == {
        "p0 vma[0]": "0x100-0x104 rw private anon mergeable softdirty anon_vma",
        "frame F0": "map=3 pin=0 val=0x5 ksm"}
    run("""
write p0 0x101 7 -> ok
state p0 0x101 -> anon pte rw dirty softdirty excl
same p0 0x100 p0 0x101 -> no
pin p0 0x102 1 r -> h1
same p0 0x100 p0 0x102 -> no
madvise p0 0x100 4 unmergeable -> ok
state p0 0x100 -> anon pte r excl
read p0 0x100 -> 5
write p0 0x100 8 -> ok
""", m, after="mmap p0 0x100 4 rw private,anon\n")
    assert _canon(m, "p0 vma") == {"p0 vma[0]": "0x100-0x104 rw private anon softdirty anon_vma"}
    assert not any(v.ksm for v in m.snapshot().frames.values())


def test_ksm_pinned_waiting_page_breaks_every_partner() -> None:
    m = run("""
mmap p0 0x200 3 rw private,anon -> 0x200
write p0 0x200 7 -> ok
write p0 0x201 7 -> ok
write p0 0x202 7 -> ok
pin p0 0x200 1 rw,longterm -> h1
madvise p0 0x200 3 mergeable -> ok
ksm_scan -> 0
state p0 0x201 -> anon pte r softdirty excl
same p0 0x201 p0 0x202 -> no
lock p0 0x202 -> ok
unpin h1 -> ok
ksm_scan -> 1
same p0 0x200 p0 0x201 -> yes
same p0 0x200 p0 0x202 -> no
unlock p0 0x202 -> ok
ksm_scan -> 1
same p0 0x200 p0 0x202 -> yes
""")
    assert not any(v.locked for v in m.snapshot().frames.values())


def test_ksm_ignores_shared_vmas_and_swapped_pages() -> None:
    run("""
mmap p0 0x300 2 rw shared,anon -> 0x300
write p0 0x300 8 -> ok
write p0 0x301 8 -> ok
madvise p0 0x300 2 mergeable -> ok
ksm_scan -> 0
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 5 -> ok
write p0 0x101 5 -> ok
madvise p0 0x100 1 pageout -> ok
madvise p0 0x100 2 mergeable -> ok
ksm_scan -> 0
read p0 0x100 -> 5
ksm_scan -> 1
same p0 0x100 p0 0x101 -> yes
""")


def test_ksm_merges_a_swap_cache_page_counting_the_cache_reference() -> None:
    m = run("""
mmap p0 0x200 1 rw private,anon -> 0x200
write p0 0x200 5 -> ok
madvise p0 0x200 1 pageout -> ok
fork p0 -> p1
read p0 0x200 -> 5
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 5 -> ok
madvise p0 0x100 1 mergeable -> ok
madvise p0 0x200 1 mergeable -> ok
ksm_scan -> 1
same p0 0x100 p0 0x200 -> yes
read p1 0x200 -> 5
same p1 0x200 p0 0x100 -> yes
state p1 0x200 -> anon pte r softdirty
""")
    # 0x100 waited; the swap-cache page (mapcount 1 + the cache's ref == refcount) became
    # the KSM page in place and replaced it; p1's swap-in then found it in the swap cache
    assert _canon(m, "frame") == {"frame F0": "map=3 pin=0 val=0x5 ksm"}
    # the other way round: the swap-cache page waits and is replaced; unmapped, it stays
    # cached for p1 (its slot is still referenced) and p1 maps it, not the KSM page
    m = run("""
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 5 -> ok
madvise p0 0x100 1 pageout -> ok
fork p0 -> p1
read p0 0x100 -> 5
mmap p0 0x200 1 rw private,anon -> 0x200
write p0 0x200 5 -> ok
madvise p0 0x100 1 mergeable -> ok
madvise p0 0x200 1 mergeable -> ok
ksm_scan -> 1
same p0 0x100 p0 0x200 -> yes
read p1 0x100 -> 5
same p1 0x100 p0 0x100 -> no
""")
    assert _canon(m, "frame") == {"frame F0": "map=2 pin=0 val=0x5 ksm",
                                  "frame F1": "map=1 pin=0 val=0x5"}


# --- processes and out-of-scope ops ---------------------------------------------------------

def test_exit_frees_everything_and_names_follow_creation_order() -> None:
    m = run("""
mmap p0 0x100 8 rw private,anon -> 0x100
write p0 0x100 1 -> ok
fork p0 -> p1
fork p1 -> p2
exit p1 -> ok
fork p0 -> p3
write p2 0x100 3 -> ok
exit p0 -> ok
exit p2 -> ok
exit p3 -> ok
state p3 0x100 -> ESRCH
same p0 0x100 p1 0x100 -> ESRCH
""")
    assert m.frames_in_use() == 0
    assert m.snapshot().procs == {}


@pytest.mark.parametrize("op", [
    O.VmInit("v0"),
])
def test_ops_without_model_rules_are_enosys(impl, op) -> None:
    assert impl.execute(op) == ENOSYS


# --- batch API, mutants, accounting ----------------------------------------------------------

def _random_prog(rng: random.Random, n: int) -> list:
    """A small random program over a 32-page window (names valid by construction)."""
    procs, nprocs, files, prog = ["p0"], 1, [], []
    for _ in range(n):
        p = rng.choice(procs)
        vpn = 0x100 + rng.randrange(32)
        k = rng.random()
        if k < 0.12:
            kind = rng.choice(["pa", "sa", "pf", "sf"]) if files else "pa"
            flags = {"pa": {"private", "anon"}, "sa": {"shared", "anon"},
                     "pf": {"private"}, "sf": {"shared"}}[kind]
            fl = frozenset(O.MapFlag(f) for f in flags)
            f = rng.choice(files) if "anon" not in flags else None
            prog.append(O.Mmap(p, vpn, rng.randrange(1, 12), rng.choice(list(O.Prot)), fl,
                               f, 0 if f else None))
        elif k < 0.17:
            prog.append(O.Munmap(p, vpn, rng.randrange(1, 8)))
        elif k < 0.25:
            prog.append(O.Mprotect(p, vpn, rng.randrange(1, 8), rng.choice(list(O.Prot))))
        elif k < 0.32:
            prog.append(O.Madvise(p, vpn, rng.randrange(1, 8), rng.choice(list(O.Advice))))
        elif k < 0.50:
            prog.append(O.Read(p, vpn))
        elif k < 0.70:
            prog.append(O.Write(p, vpn, rng.randrange(1 << 64)))
        elif k < 0.75:
            prog.append(O.Fork(p))
            procs.append(f"p{nprocs}")
            nprocs += 1
        elif k < 0.77 and len(procs) > 1:
            prog.append(O.Exit(p))
            procs.remove(p)
        elif k < 0.80:
            files.append(f"f{len(files)}")
            prog.append(O.File(files[-1], rng.randrange(12)))
        elif k < 0.85 and files:
            prog.append(O.FileWrite(rng.choice(files), rng.randrange(14), rng.randrange(99)))
        elif k < 0.87:
            prog.append(O.KsmScan())
        elif k < 0.93:
            prog.append(O.State(p, vpn))
        else:
            prog.append(O.Same(p, vpn, rng.choice(procs), 0x100 + rng.randrange(32)))
    return prog


@pytest.mark.parametrize("seed", range(8))
def test_run_batch_equals_execute_and_invariants_hold(seed) -> None:
    prog = _random_prog(random.Random(seed), 400)
    one = ImplMachine()
    results = []
    for i, op in enumerate(prog):
        results.append(one.execute(op))
        try:
            one.check_invariants()
        except InvariantError as e:
            raise AssertionError(f"seed {seed} op {i} {format_op(op)}: {e}") from None
    batch = ImplMachine()
    assert batch.run_batch(prog) == results, f"seed {seed}: run_batch differs from execute"
    assert batch.snapshot() == one.snapshot()


def test_unknown_mutant_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no_anon_exclusive_reuse"):
        ImplMachine(mutant="nope")
    assert ImplMachine().mutant is None and "no_anon_exclusive_reuse" in MUTANTS


def test_mutant_no_anon_exclusive_reuse_diverges_on_mprotect_cycle() -> None:
    prog = """
mmap p0 0x100 1 rw private,anon
write p0 0x100 1
mprotect p0 0x100 1 r
mprotect p0 0x100 1 rw
state p0 0x100
"""
    faithful = parse("# mmdiff v1\n" + prog).ops()
    assert str(ImplMachine().run_batch(faithful)[-1]) == "anon pte rw dirty softdirty excl"
    mutant = ImplMachine(mutant="no_anon_exclusive_reuse")
    assert str(mutant.run_batch(faithful)[-1]) == "anon pte r dirty softdirty excl"


def test_memory_per_mapped_page_is_under_48_bytes() -> None:
    m = ImplMachine()
    base = m.memory_bytes()
    n = 1 << 17
    m.execute(O.Mmap("p0", 0x200000, n, O.Prot.RW, PA, None, None))
    m.run_batch([O.Write("p0", 0x200000 + i, i) for i in range(n)])
    per_page = (m.memory_bytes() - base) / n
    assert per_page <= 48, f"{per_page:.1f} bytes per mapped page (target <= 48)"
    assert m.frames_in_use() == n
    m.execute(O.Exit("p0"))
    assert m.frames_in_use() == 0
