"""Dirty tracking (wp_range, clean_record) and soft-dirty (clear_refs) on both models.

Expectations are worked out by hand from the kernel rules (mm/mapping_dirty_helpers.c,
mm/pagewalk.c walk_page_mapping, fs/proc/task_mmu.c clear_refs_write, mm/mprotect.c
can_change_pte_writable, mm/mmap.c vma_wants_writenotify, mm/memory.c do_swap_page /
wp_page_shared); each program runs on the reference and on the impl, with the
invariants checked after every op. The conformance files D*.mmd / SD*.mmd / S3.4.mmd
are replayed in lockstep by test_corpus.
"""
from __future__ import annotations

from mmdiff.fuzz.text import format_op, parse
from mmdiff.reference.results import Result


def run(m, text: str, after: str = ""):
    """Replay text on m checking every `-> EXPECT` and the invariants; return m.
    `after` is the text m already ran (it defines the names `text` may use)."""
    done = len(parse("# mmdiff v1\n" + after).ops())
    prog = parse("# mmdiff v1\n" + after + text, source="<test_dirty>")
    for stmt in list(prog.op_stmts())[done:]:
        got = m.execute(stmt.op)
        if stmt.expect is not None:
            assert got == stmt.expect, (
                f"line {stmt.line - 1}: {format_op(stmt.op)}: expected {stmt.expect}, got {got}")
        m.check_invariants()
    return m


def vma_flags(m, proc: str) -> list[tuple[int, int, tuple[str, ...]]]:
    return [(v.start, v.end, v.flags) for v in m.snapshot().procs[proc].vmas]


def test_clean_record_result_text_compares_numerically() -> None:
    assert Result.parse("2 bits=1,3") == Result.parse("0x2 bits=0x1,0x3")
    assert Result.parse("2 bits=1,3") != Result.parse("2 bits=1,2")
    assert str(Result.parse("0 bits=none")) == "0x0 bits=none"


def test_wp_then_write_faults_without_notifier(machine) -> None:
    run(machine, """
file f0 2 -> ok
mmap p0 0x100 2 rw shared file=f0 off=0 -> 0x100
write p0 0x100 1 -> ok
mirror d0 p0 0x100 2 -> m1
wp_range f0 0 2 -> 1
state p0 0x100 -> file pte r dirty softdirty
devents d0 -> m1:protection_page@0x100+0x2
write p0 0x100 2 -> ok
state p0 0x100 -> file pte rw dirty softdirty
devents d0 -> none
fread f0 0 -> 2
""")


def test_clean_record_counts_ptes_but_sets_each_bit_once(machine) -> None:
    # two mappings of pgoff 1 (two processes): two PTEs cleaned, one bit
    run(machine, """
file f0 2 -> ok
mmap p0 0x100 2 rw shared file=f0 off=0 -> 0x100
fork p0 -> p1
write p0 0x101 1 -> ok
write p1 0x101 2 -> ok
clean_record f0 0 2 -> 2 bits=1
clean_record f0 0 2 -> 0 bits=none
clean_record f0 0 0 -> 0 bits=none
""")


def test_private_mapping_first_in_tree_order_stops_the_walk(machine) -> None:
    # walk_page_mapping breaks at the first VMA wp_clean_test_walk refuses; the tree
    # is ordered by vm_pgoff, so the private VMA of pgoff 0 comes first
    run(machine, """
file f0 4 -> ok
mmap p0 0x200 3 rw shared file=f0 off=1 -> 0x200
mmap p0 0x100 1 r private file=f0 off=0 -> 0x100
write p0 0x200 1 -> ok
write p0 0x202 2 -> ok
clean_record f0 0 4 -> 0 bits=none
wp_range f0 0 4 -> 0
state p0 0x202 -> file pte rw dirty softdirty
clean_record f0 1 3 -> 2 bits=0,2
wp_range f0 1 3 -> 2
""")


def test_vm_softdirty_flag_new_fork_split_merge_clear(machine) -> None:
    run(machine, """
mmap p0 0x100 2 rw private,anon -> 0x100
clear_refs p0 -> ok
mprotect p0 0x101 1 r -> ok
mmap p0 0x102 1 r private,anon -> 0x102
fork p0 -> p1
""")
    # the split halves keep the cleared flag; the new mapping has it and merged into
    # the read-only half (is_mergeable_vma ignores VM_SOFTDIRTY): the merged VMA has it
    assert vma_flags(machine, "p0") == [(0x100, 0x101, ()), (0x101, 0x103, ("softdirty",))]
    assert vma_flags(machine, "p1") == vma_flags(machine, "p0")
    run(machine, "clear_refs p1 -> ok\n", after="""
mmap p0 0x100 2 rw private,anon -> 0x100
clear_refs p0 -> ok
mprotect p0 0x101 1 r -> ok
mmap p0 0x102 1 r private,anon -> 0x102
fork p0 -> p1
""")
    assert vma_flags(machine, "p1") == [(0x100, 0x101, ()), (0x101, 0x103, ())]
    assert vma_flags(machine, "p0")[1][2] == ("softdirty",)


def test_clear_refs_event_covers_the_whole_space_even_without_vmas(machine) -> None:
    run(machine, """
mirror d0 p0 0x1000 2 -> m1
clear_refs p0 -> ok
devents d0 -> m1:soft_dirty@0x1000+0x2
""")


def test_poke_after_clear_refs_faults_to_set_soft_dirty(machine) -> None:
    # can_follow_write_pte: an exclusive R/O page that is not soft-dirty is not
    # followed; the FOLL_FORCE write fault reuses it (dirty+softdirty, still R/O)
    run(machine, """
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 1 -> ok
mprotect p0 0x100 1 r -> ok
clear_refs p0 -> ok
state p0 0x100 -> anon pte r dirty excl
poke p0 0x100 5 -> ok
state p0 0x100 -> anon pte r dirty softdirty excl
read p0 0x100 -> 5
""")


def test_swap_in_after_clear_refs_maps_read_only(machine) -> None:
    run(machine, """
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 1 -> ok
write p0 0x101 2 -> ok
madvise p0 0x100 2 pageout -> ok
read p0 0x101 -> 2
state p0 0x101 -> anon pte rw softdirty excl
clear_refs p0 -> ok
read p0 0x100 -> 1
state p0 0x100 -> anon pte r excl
state p0 0x101 -> anon pte r excl
""")
