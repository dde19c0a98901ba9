"""Model rules checked against facts observed on the Linux 6.18 kernel of our machines.

Each case is a program and the results the real kernel gave for the same
sequence (errno, signal, value, or the entry state pagemap showed), so a model
that drifts from the kernel fails here. Both models run every case.
Facts were gathered with small C programs (mmap/mprotect/madvise, pagemap,
kpageflags); the comment on each case names what was observed.
"""
from __future__ import annotations

import pytest

from mmdiff.fuzz.text import parse
from mmdiff.impl import ImplMachine
from mmdiff.reference.machine import ReferenceMachine

TOP = (1 << 35) - 1   # TASK_SIZE in pages: the last user page is TOP - 1

CASES = {
    # --- mmap / munmap argument checks ---------------------------------------------
    "mmap len 0 is EINVAL": (
        "mmap p0 0x100 0 rw private,anon", ["EINVAL"]),
    "mmap without private or shared is EINVAL": (
        "mmap p0 0x100 1 rw anon", ["EINVAL"]),
    "mmap private and shared together is EINVAL": (
        "mmap p0 0x100 1 rw private,shared,anon", ["EINVAL"]),
    "mmap of the page at TASK_SIZE - 4096 is ENOMEM, the one below works": (
        f"mmap p0 {TOP:#x} 1 rw private,anon\nmmap p0 {TOP - 1:#x} 1 rw private,anon",
        ["ENOMEM", hex(TOP - 1)]),
    "munmap len 0 is EINVAL": (
        "mmap p0 0x100 1 rw private,anon\nmunmap p0 0x100 0", ["0x100", "EINVAL"]),
    "munmap over a hole succeeds and unmaps both sides": (
        "mmap p0 0x100 1 rw private,anon\nmmap p0 0x102 1 rw private,anon\n"
        "munmap p0 0x100 3\nread p0 0x100\nread p0 0x102",
        ["0x100", "0x102", "ok", "SEGV", "SEGV"]),
    "munmap past TASK_SIZE is EINVAL and unmaps nothing": (
        f"mmap p0 {TOP - 1:#x} 1 rw private,anon\nwrite p0 {TOP - 1:#x} 7\n"
        f"munmap p0 {TOP - 1:#x} 2\nread p0 {TOP - 1:#x}",
        [hex(TOP - 1), "ok", "EINVAL", "0x7"]),
    # --- mprotect walks until a hole ---------------------------------------------------
    "mprotect over a middle hole: ENOMEM, the VMA before changes, the one after not": (
        "mmap p0 0x100 1 rw private,anon\nmmap p0 0x102 1 rw private,anon\n"
        "mprotect p0 0x100 3 r\nwrite p0 0x100 1\nwrite p0 0x102 2",
        ["0x100", "0x102", "ENOMEM", "SEGV", "ok"]),
    "mprotect with a hole first: ENOMEM, nothing changes": (
        "mmap p0 0x101 1 rw private,anon\nmprotect p0 0x100 2 r\nwrite p0 0x101 1",
        ["0x101", "ENOMEM", "ok"]),
    "mprotect len 0 on an unmapped address is ok": (
        "mprotect p0 0x100 0 r", ["ok"]),
    "mprotect running past TASK_SIZE: ENOMEM and the mapped page changed": (
        f"mmap p0 {TOP - 1:#x} 1 rw private,anon\nmprotect p0 {TOP - 1:#x} 2 r\n"
        f"write p0 {TOP - 1:#x} 1",
        [hex(TOP - 1), "ENOMEM", "SEGV"]),
    # --- madvise: holes give ENOMEM but the advice is applied -----------------------------
    "madvise dontneed over a hole: ENOMEM, every mapped part zapped": (
        "mmap p0 0x100 1 rw private,anon\nmmap p0 0x102 1 rw private,anon\n"
        "write p0 0x100 5\nwrite p0 0x102 6\nmadvise p0 0x100 3 dontneed\n"
        "read p0 0x100\nread p0 0x102",
        ["0x100", "0x102", "ok", "ok", "ENOMEM", "0x0", "0x0"]),
    "madvise dontfork over a hole: ENOMEM, applied on both sides": (
        "mmap p0 0x100 1 rw private,anon\nmmap p0 0x102 1 rw private,anon\n"
        "madvise p0 0x100 3 dontfork\nfork p0\nread p1 0x100\nread p1 0x102",
        ["0x100", "0x102", "ENOMEM", "p1", "SEGV", "SEGV"]),
    "madvise len 0 on an unmapped address is ok": (
        "madvise p0 0x100 0 dontneed", ["ok"]),
    "madvise past TASK_SIZE is ENOMEM": (
        f"madvise p0 {TOP:#x} 1 dontneed", ["ENOMEM"]),
    "wipeonfork on shared anon is EINVAL, keeponfork there is ok": (
        "mmap p0 0x100 1 rw shared,anon\nmadvise p0 0x100 1 wipeonfork\n"
        "madvise p0 0x100 1 keeponfork",
        ["0x100", "EINVAL", "ok"]),
    "wipeonfork on a private file mapping is EINVAL": (
        "file f0 1\nmmap p0 0x100 1 rw private file=f0 off=0\nmadvise p0 0x100 1 wipeonfork",
        ["ok", "0x100", "EINVAL"]),
    "wipeonfork: the child reads 0 where the parent wrote 7": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 7\nmadvise p0 0x100 1 wipeonfork\n"
        "fork p0\nread p1 0x100\nread p0 0x100",
        ["0x100", "ok", "ok", "p1", "0x0", "0x7"]),
    # --- MADV_POPULATE_* ------------------------------------------------------------------------
    "populate on PROT_NONE is EINVAL": (
        "mmap p0 0x100 1 none private,anon\nmadvise p0 0x100 1 populate_read\n"
        "madvise p0 0x100 1 populate_write",
        ["0x100", "EINVAL", "EINVAL"]),
    "populate_write on a read-only mapping is EINVAL, populate_read maps the zero page": (
        "mmap p0 0x100 1 r private,anon\nmadvise p0 0x100 1 populate_write\nstate p0 0x100\n"
        "madvise p0 0x100 1 populate_read\nstate p0 0x100",
        ["0x100", "EINVAL", "none", "ok", "zero pte r"]),
    "populate_write makes exclusive anon pages": (
        "mmap p0 0x100 2 rw private,anon\nmadvise p0 0x100 1 populate_read\n"
        "madvise p0 0x100 2 populate_write\nstate p0 0x100\nstate p0 0x101\n"
        "same p0 0x100 p0 0x101",
        ["0x100", "ok", "ok", "anon pte rw dirty softdirty excl",
         "anon pte rw dirty softdirty excl", "no"]),
    "populate over a hole: ENOMEM, pages before it populated, after it not": (
        "mmap p0 0x100 1 rw private,anon\nmmap p0 0x102 1 rw private,anon\n"
        "madvise p0 0x100 3 populate_read\nstate p0 0x100\nstate p0 0x102",
        ["0x100", "0x102", "ENOMEM", "zero pte r", "none"]),
    "populate past EOF is EFAULT and the page inside the file is populated": (
        "file f0 1\nmmap p0 0x100 2 rw shared file=f0 off=0\nmadvise p0 0x100 2 populate_read\n"
        "state p0 0x100",
        ["ok", "0x100", "EFAULT", "file pte rw"]),
    # --- shmem files -----------------------------------------------------------------------
    "a mapping read of a hole allocates the page in the file": (
        "file f0 4\nmmap p0 0x100 4 r private file=f0 off=0\nread p0 0x100\nstate p0 0x100\n"
        "fwrite f0 0 9\nread p0 0x100",
        ["ok", "0x100", "0x0", "file pte r", "ok", "0x9"]),
    "beyond EOF: SIGBUS for shared and private, read and write": (
        "file f0 1\nmmap p0 0x100 2 rw shared file=f0 off=0\nmmap p0 0x200 2 rw private file=f0 off=0\n"
        "read p0 0x101\nwrite p0 0x101 1\nread p0 0x201\nwrite p0 0x201 1\nread p0 0x100",
        ["ok", "0x100", "0x200", "BUS", "BUS", "BUS", "BUS", "0x0"]),
    "sparse write grows the file; pages past the new EOF give SIGBUS": (
        "file f0 1\nfwrite f0 5 0x55\nmmap p0 0x100 8 r shared file=f0 off=0\n"
        "read p0 0x104\nread p0 0x105\nread p0 0x106",
        ["ok", "ok", "0x100", "0x0", "0x55", "BUS"]),
    "file offsets: the last page below 2^63 bytes works, the next is EINVAL / EOVERFLOW": (
        f"file f0 1\nfwrite f0 {(1 << 51) - 1:#x} 1\nfwrite f0 {1 << 51:#x} 1\n"
        f"fread f0 {1 << 51:#x}\nmmap p0 0x100 1 r shared file=f0 off={(1 << 51) - 2:#x}\n"
        f"mmap p0 0x100 1 r shared file=f0 off={(1 << 51) - 1:#x}\nmmap p0 0x100 2 r shared file=f0 off={(1 << 51) - 2:#x}\n"
        f"file f1 {1 << 51:#x}\nfile f2 {(1 << 51) - 1:#x}",
        ["ok", "ok", "EINVAL", "EINVAL", "0x100", "EOVERFLOW", "EOVERFLOW", "EINVAL", "ok"]),
    # --- fault-around (16 pages, do_fault_around) ------------------------------------------------
    "read fault maps the resident pages of the 16-page window": (
        "file f0 64\n" + "".join(f"fwrite f0 {i} {i + 1}\n" for i in range(64)) +
        "mmap p0 0x200 64 rw shared file=f0 off=0\nread p0 0x214\n"
        "state p0 0x20f\nstate p0 0x210\nstate p0 0x21f\nstate p0 0x220",
        ["ok"] + ["ok"] * 64 + ["0x200", "0x15", "none", "file pte rw", "file pte rw", "none"]),
    "fault-around in a private mapping maps page-cache pages read-only": (
        "file f0 64\nfwrite f0 17 1\nmmap p0 0x200 64 rw private file=f0 off=0\nread p0 0x214\n"
        "state p0 0x211\nwrite p0 0x211 2\nstate p0 0x211\nfread f0 17",
        ["ok", "ok", "0x200", "0x0", "file pte r", "ok", "anon pte rw dirty softdirty excl", "0x1"]),
    "fault-around maps only resident pages": (
        "file f0 64\nfwrite f0 0 1\nfwrite f0 1 1\nfwrite f0 2 1\nfwrite f0 3 1\n"
        "mmap p0 0x200 64 rw shared file=f0 off=0\nread p0 0x201\nstate p0 0x203\nstate p0 0x204",
        ["ok", "ok", "ok", "ok", "ok", "0x200", "0x1", "file pte rw", "none"]),
    "the window starts at the VMA start when the VMA starts inside it (not 16-aligned)": (
        "file f0 64\n" + "".join(f"fwrite f0 {i} 1\n" for i in range(64)) +
        "mmap p0 0x205 40 r shared file=f0 off=0\nread p0 0x208\n"
        "state p0 0x205\nstate p0 0x214\nstate p0 0x215",
        ["ok"] + ["ok"] * 64 + ["0x205", "0x1", "file pte r", "file pte r", "none"]),
    "a read past EOF still maps the resident pages of its window, then SIGBUS": (
        "file f0 2\nfwrite f0 0 5\nmmap p0 0x100 4 r shared file=f0 off=0\nread p0 0x102\n"
        "state p0 0x100\nstate p0 0x101",
        ["ok", "ok", "0x100", "BUS", "file pte r", "none"]),
    "a write fault does not fault around": (
        "file f0 64\nfwrite f0 0 1\nfwrite f0 1 1\nmmap p0 0x200 64 rw shared file=f0 off=0\n"
        "write p0 0x200 2\nstate p0 0x201",
        ["ok", "ok", "ok", "0x200", "ok", "none"]),
    # --- fork and COW (pagemap PFN / exclusive bit) -------------------------------------------------
    "after fork both map the same page read-only, not exclusive; a write copies": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nfork p0\nsame p0 0x100 p1 0x100\n"
        "state p1 0x100\nwrite p0 0x100 2\nsame p0 0x100 p1 0x100\nread p1 0x100",
        ["0x100", "ok", "p1", "yes", "anon pte r dirty softdirty", "ok", "no", "0x1"]),
    "a zero-page entry survives fork when the VMA has an anon_vma": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 1\nread p0 0x101\nfork p0\n"
        "state p1 0x101\nsame p0 0x101 p1 0x101",
        ["0x100", "ok", "0x0", "p1", "zero pte r", "yes"]),
    "dontfork: the child has a hole there": (
        "mmap p0 0x100 1 rw shared,anon\nmadvise p0 0x100 1 dontfork\nfork p0\nread p1 0x100\n"
        "mmap p1 0x100 1 rw private,anon",
        ["0x100", "ok", "p1", "SEGV", "0x100"]),
}

MACHINES = {"reference": ReferenceMachine, "impl": ImplMachine}


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("case", CASES)
def test_kernel_fact(machine: str, case: str) -> None:
    text, expected = CASES[case]
    prog = parse("# mmdiff v1\n" + text, source=case)
    m = MACHINES[machine]()
    got = []
    for op in prog.ops():
        got.append(str(m.execute(op)))
        m.check_invariants()
    assert got == expected, f"{machine}: {case}\n" + "\n".join(
        f"  {'ok ' if g == e else 'BAD'} {o}: expected {e}, got {g}"
        for o, g, e in zip(text.splitlines(), got, expected))
