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
    # --- poke (write to /proc/pid/mem) and pins ------------------------------------------
    # Facts from /tmp/kfacts/kfrun (each program run on the kernel: processes are real
    # processes, poke = pwrite to /proc/PID/mem, pin rw,longterm = io_uring
    # IORING_REGISTER_BUFFERS, pread/pwrite = WRITE_FIXED/READ_FIXED, pin r = a short-term
    # R/O pin by an O_DIRECT write(2) from the range, released at once). Log: /tmp/kfacts/poke.md.
    # kernel: pagemap: present, new PFN, exclusive; a 2nd poke keeps the PFN (reuse)
    "poke: untouched PROT_READ private anon gets a new page the CPU reads but cannot write": (
        "mmap p0 0x100 1 r private,anon\npoke p0 0x100 9\nread p0 0x100\nwrite p0 0x100 5\n"
        "poke p0 0x100 10\nread p0 0x100",
        ["0x100", "ok", "0x9", "SEGV", "ok", "0xa"]),
    # kernel: pagemap: zero-page PFN before, new exclusive PFN after; the other page stays on the
    #   zero page
    "poke: PROT_READ private anon on the zero page: the poked page leaves the zero page": (
        "mmap p0 0x100 2 r private,anon\nread p0 0x100\nread p0 0x101\n"
        "same p0 0x100 p0 0x101\npoke p0 0x100 9\nsame p0 0x100 p0 0x101\nstate p0 0x101\n"
        "read p0 0x100\nread p0 0x101\nwrite p0 0x100 5",
        ["0x100", "0x0", "0x0", "yes", "ok", "no", "zero pte r", "0x9", "0x0", "SEGV"]),
    # kernel: FOLL_FORCE passes check_vma_flags on a PROT_NONE COW mapping; after mprotect rw no
    #   fault (minflt +0)
    "poke: untouched PROT_NONE private anon: ok, readable after mprotect r, writable after rw": (
        "mmap p0 0x100 1 none private,anon\npoke p0 0x100 9\nread p0 0x100\n"
        "mprotect p0 0x100 1 r\nread p0 0x100\nwrite p0 0x100 5\nmprotect p0 0x100 1 rw\n"
        "write p0 0x100 6\nread p0 0x100",
        ["0x100", "ok", "SEGV", "ok", "0x9", "SEGV", "ok", "ok", "0x6"]),
    # kernel: pagemap: same PFN before and after the poke (exclusive page, no copy)
    "poke: a written page made PROT_NONE is poked in place": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nmprotect p0 0x100 1 none\n"
        "poke p0 0x100 9\nread p0 0x100\nmprotect p0 0x100 1 r\nread p0 0x100",
        ["0x100", "ok", "ok", "ok", "SEGV", "ok", "0x9"]),
    # kernel: pagemap: same PFN before and after the poke
    "poke: a written page made PROT_READ is poked in place, still not CPU-writable": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nmprotect p0 0x100 1 r\n"
        "poke p0 0x100 9\nread p0 0x100\nwrite p0 0x100 5",
        ["0x100", "ok", "ok", "ok", "0x9", "SEGV"]),
    # kernel: pagemap: the CPU write after the poke keeps the PFN and takes no fault (minflt +0)
    "poke: rw private anon, untouched and after a write": (
        "mmap p0 0x100 1 rw private,anon\npoke p0 0x100 9\nread p0 0x100\nwrite p0 0x100 5\n"
        "poke p0 0x100 7\nread p0 0x100",
        ["0x100", "ok", "0x9", "ok", "ok", "0x7"]),
    # kernel: pagemap: zero page -> new exclusive PFN; the CPU write then takes no fault (PTE
    #   writable)
    "poke: rw private anon on the zero page gets a page the CPU can write": (
        "mmap p0 0x100 2 rw private,anon\nread p0 0x100\nread p0 0x101\npoke p0 0x100 9\n"
        "same p0 0x100 p0 0x101\nread p0 0x100\nwrite p0 0x100 5\nread p0 0x100",
        ["0x100", "0x0", "0x0", "ok", "no", "0x9", "ok", "0x5"]),
    # kernel: pagemap: private PFN == file PFN before, a new exclusive anon PFN after; pread still
    #   3
    "poke: PROT_READ private file page (read first) is COWed; file and shared view unchanged": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 r private file=f0 off=0\n"
        "mmap p0 0x200 1 r shared file=f0 off=0\nread p0 0x100\nread p0 0x200\n"
        "same p0 0x100 p0 0x200\npoke p0 0x100 9\nsame p0 0x100 p0 0x200\nread p0 0x100\n"
        "fread f0 0\nread p0 0x200\nwrite p0 0x100 5\nfwrite f0 0 4\nread p0 0x100\n"
        "read p0 0x200",
        ["ok", "ok", "0x100", "0x200", "0x3", "0x3", "yes", "ok", "no", "0x9", "0x3", "0x3",
         "SEGV", "ok", "0x9", "0x4"]),
    # kernel: pagemap: new exclusive anon PFN, not the page-cache page
    "poke: untouched PROT_READ private file page: the file never sees it": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 r private file=f0 off=0\npoke p0 0x100 9\n"
        "mmap p0 0x200 1 r shared file=f0 off=0\nread p0 0x200\nsame p0 0x100 p0 0x200\n"
        "read p0 0x100\nfread f0 0\nfwrite f0 0 4\nread p0 0x100",
        ["ok", "ok", "0x100", "ok", "0x200", "0x3", "no", "0x9", "0x3", "ok", "0x9"]),
    # kernel: pread on the memfd reads 0 after the poke
    "poke: PROT_READ private mapping of a file hole: the file stays a hole (reads 0)": (
        "file f0 1\nmmap p0 0x100 1 r private file=f0 off=0\npoke p0 0x100 9\nread p0 0x100\n"
        "fread f0 0",
        ["ok", "0x100", "ok", "0x9", "0x0"]),
    # kernel: pagemap: anon exclusive after the poke; the CPU write takes no fault
    "poke: rw private file page (read first): COW, the CPU can then write, file unchanged": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 rw private file=f0 off=0\nread p0 0x100\n"
        "poke p0 0x100 9\nread p0 0x100\nfread f0 0\nwrite p0 0x100 5\nfread f0 0",
        ["ok", "ok", "0x100", "0x3", "ok", "0x9", "0x3", "ok", "0x3"]),
    # kernel: write(2) to /proc/self/mem returns EIO; pagemap: nothing faulted in by the failed
    #   poke
    "poke: shared file mapping without PROT_WRITE is EIO (untouched and mapped)": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 r shared file=f0 off=0\npoke p0 0x100 9\n"
        "state p0 0x100\nread p0 0x100\npoke p0 0x100 9\nread p0 0x100\nfread f0 0\n"
        "mmap p0 0x200 1 none shared file=f0 off=0\npoke p0 0x200 9\nfread f0 0",
        ["ok", "ok", "0x100", "EIO", "none", "0x3", "EIO", "0x3", "0x3", "0x200", "EIO", "0x3"]),
    # kernel: pagemap: same PFN as another shared mapping; pread sees 9
    "poke: shared rw file mapping writes the file page": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 rw shared file=f0 off=0\npoke p0 0x100 9\n"
        "read p0 0x100\nfread f0 0\nmmap p0 0x200 1 r shared file=f0 off=0\nread p0 0x200\n"
        "same p0 0x100 p0 0x200",
        ["ok", "ok", "0x100", "ok", "0x9", "0x9", "0x200", "0x9", "yes"]),
    # kernel: check_vma_flags refuses FOLL_FORCE writes to non-COW mappings: EIO, nothing faulted
    #   in
    "poke: shared anon PROT_READ is EIO, shared anon rw works": (
        "mmap p0 0x100 1 r shared,anon\npoke p0 0x100 9\nstate p0 0x100\nread p0 0x100\n"
        "poke p0 0x100 9\nread p0 0x100\nmmap p0 0x200 1 rw shared,anon\npoke p0 0x200 9\n"
        "read p0 0x200",
        ["0x100", "EIO", "none", "0x0", "EIO", "0x0", "0x200", "ok", "0x9"]),
    # kernel: write(2) to /proc/self/mem at an unmapped page: EIO
    "poke: unmapped address is EIO": (
        "poke p0 0x100 9\nmmap p0 0x100 1 r private,anon\nmunmap p0 0x100 1\n"
        "poke p0 0x100 9",
        ["EIO", "0x100", "ok", "EIO"]),
    # kernel: the fault SIGBUSes: EIO; pagemap: not present; a CPU read gets SIGBUS
    "poke: private or shared file page beyond EOF is EIO, nothing mapped": (
        "file f0 1\nmmap p0 0x100 2 r private file=f0 off=0\npoke p0 0x101 9\n"
        "state p0 0x101\nread p0 0x101\nmmap p0 0x200 2 rw private file=f0 off=0\n"
        "poke p0 0x201 9\nmmap p0 0x300 2 rw shared file=f0 off=0\npoke p0 0x301 9\n"
        "fread f0 1",
        ["ok", "0x100", "EIO", "none", "BUS", "0x200", "EIO", "0x300", "EIO", "0x0"]),
    # kernel: pagemap: parent gets a new exclusive PFN, the child keeps the old PFN (now
    #   exclusive)
    "poke: forked R/O private page: the poker gets a copy, the child keeps the old value": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nmprotect p0 0x100 1 r\nfork p0\n"
        "same p0 0x100 p1 0x100\npoke p0 0x100 9\nsame p0 0x100 p1 0x100\nread p0 0x100\n"
        "read p1 0x100\nwrite p0 0x100 5",
        ["0x100", "ok", "ok", "p1", "yes", "ok", "no", "0x9", "0x1", "SEGV"]),
    # kernel: pagemap: parent new PFN; its CPU write after the poke takes no fault (maybe_mkwrite)
    "poke: forked page in a rw VMA: COW on poke, then the CPU writes without SEGV": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nfork p0\npoke p0 0x100 9\n"
        "same p0 0x100 p1 0x100\nread p0 0x100\nread p1 0x100\nwrite p0 0x100 5\n"
        "read p0 0x100\nread p1 0x100",
        ["0x100", "ok", "p1", "ok", "no", "0x9", "0x1", "ok", "0x5", "0x1"]),
    # kernel: pagemap: the child's PFN changes, the parent's stays
    "poke: poking the child (/proc/child/mem) leaves the parent's page alone": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nmprotect p0 0x100 1 r\nfork p0\n"
        "poke p1 0x100 9\nsame p0 0x100 p1 0x100\nread p0 0x100\nread p1 0x100",
        ["0x100", "ok", "ok", "p1", "ok", "no", "0x1", "0x9"]),
    # kernel: pagemap: same PFN after the poke (do_wp_page reuses the now unshared page)
    "poke: after the child exits the parent's R/O page is poked in place": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nmprotect p0 0x100 1 r\nfork p0\n"
        "exit p1\npoke p0 0x100 9\nread p0 0x100",
        ["0x100", "ok", "ok", "p1", "ok", "ok", "0x9"]),
    # kernel: pagemap: both on the zero-page PFN after fork; after the poke only the child is
    "poke: zero page shared by fork: the poker leaves the zero page, the child stays on it": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x101 1\nmprotect p0 0x100 1 r\n"
        "read p0 0x100\nfork p0\nsame p0 0x100 p1 0x100\npoke p0 0x100 9\n"
        "same p0 0x100 p1 0x100\nstate p1 0x100\nread p0 0x100\nread p1 0x100",
        ["0x100", "ok", "ok", "0x0", "p1", "yes", "ok", "no", "zero pte r", "0x9", "0x0"]),
    # kernel: pagemap: same PFN after mprotect and write; the write takes no fault (minflt +0)
    "poke into PROT_READ private anon, then mprotect rw: the CPU write works": (
        "mmap p0 0x100 1 r private,anon\npoke p0 0x100 9\nmprotect p0 0x100 1 rw\n"
        "write p0 0x100 5\nread p0 0x100",
        ["0x100", "ok", "ok", "ok", "0x5"]),
    # kernel: pagemap: same PFN as after the poke; no fault; pread still 3
    "poke into PROT_READ private file page, then mprotect rw: write goes to the copy": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 r private file=f0 off=0\nread p0 0x100\n"
        "poke p0 0x100 9\nmprotect p0 0x100 1 rw\nwrite p0 0x100 5\nread p0 0x100\n"
        "fread f0 0",
        ["ok", "ok", "0x100", "0x3", "ok", "ok", "ok", "0x5", "0x3"]),
    # kernel: io_uring REGISTER_BUFFERS; pagemap: parent PFN unchanged, child a different PFN at
    #   fork
    "pin rw,longterm then fork: the child gets its own copy, the parent keeps the pinned page": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\npin p0 0x100 1 rw,longterm\n"
        "pread h1 0\nfork p0\nsame p0 0x100 p1 0x100\nread p1 0x100\nwrite p0 0x100 2\n"
        "pread h1 0\nread p1 0x100\npwrite h1 0 7\nread p0 0x100\nread p1 0x100\nunpin h1",
        ["0x100", "ok", "h1", "0x1", "p1", "no", "0x1", "ok", "0x2", "0x1", "ok", "0x7", "0x1",
         "ok"]),
    # kernel: REGISTER_BUFFERS returns EFAULT; pagemap: the failed pin faulted nothing in
    "pin rw,longterm of a read-only, PROT_NONE or unmapped range is EFAULT": (
        "mmap p0 0x100 1 r private,anon\npin p0 0x100 1 rw,longterm\nstate p0 0x100\n"
        "read p0 0x100\npin p0 0x100 1 rw,longterm\nmmap p0 0x200 1 rw private,anon\n"
        "write p0 0x200 1\nmprotect p0 0x200 1 r\npin p0 0x200 1 rw,longterm\n"
        "mmap p0 0x300 1 none private,anon\npin p0 0x300 1 rw,longterm\n"
        "pin p0 0x400 1 rw,longterm\nmmap p0 0x500 1 r shared,anon\n"
        "pin p0 0x500 1 rw,longterm\nfile f0 1\nmmap p0 0x600 1 r shared file=f0 off=0\n"
        "pin p0 0x600 1 rw,longterm",
        ["0x100", "EFAULT", "none", "0x0", "EFAULT", "0x200", "ok", "ok", "EFAULT", "0x300",
         "EFAULT", "EFAULT", "0x500", "EFAULT", "ok", "0x600", "EFAULT"]),
    # kernel: READ_FIXED into the buffer is read by the CPU in both processes
    "pin rw,longterm of shared anon: DMA and CPU see the same page, also in the child": (
        "mmap p0 0x100 1 rw shared,anon\nwrite p0 0x100 1\npin p0 0x100 1 rw,longterm\n"
        "pwrite h1 0 7\nread p0 0x100\nfork p0\nread p1 0x100\nsame p0 0x100 p1 0x100\n"
        "pwrite h1 0 8\nread p1 0x100\nunpin h1",
        ["0x100", "ok", "h1", "ok", "0x7", "p1", "0x7", "yes", "ok", "0x8", "ok"]),
    # kernel: READ_FIXED into the buffer, then pread on the memfd sees it
    "pin rw,longterm of a shared file page: DMA writes reach the file": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 rw shared file=f0 off=0\n"
        "pin p0 0x100 1 rw,longterm\npread h1 0\npwrite h1 0 7\nfread f0 0\nread p0 0x100\n"
        "unpin h1",
        ["ok", "ok", "0x100", "h1", "0x3", "ok", "0x7", "0x7", "ok"]),
    # kernel: WRITE_FIXED from the registered buffer after munmap still reads 5
    "a pin survives munmap and keeps the old contents": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\npin p0 0x100 1 rw,longterm\n"
        "munmap p0 0x100 1\npread h1 0\nunpin h1",
        ["0x100", "ok", "h1", "ok", "0x5", "ok"]),
    # kernel: pagemap: not present after dontneed, zero page after the read; DMA still sees 5
    "a pin survives MADV_DONTNEED; the address refaults to a fresh zero page": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\npin p0 0x100 1 rw,longterm\n"
        "madvise p0 0x100 1 dontneed\nstate p0 0x100\nread p0 0x100\nstate p0 0x100\n"
        "pread h1 0\npwrite h1 0 7\nread p0 0x100\nunpin h1",
        ["0x100", "ok", "h1", "ok", "none", "0x0", "zero pte r", "0x5", "ok", "0x0", "ok"]),
    # kernel: pagemap: parent PFN changes at registration, the child keeps the old PFN
    "pin rw,longterm of a COW-shared page breaks COW in the pinner": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nfork p0\nsame p0 0x100 p1 0x100\n"
        "pin p0 0x100 1 rw,longterm\nsame p0 0x100 p1 0x100\npwrite h1 0 7\nread p0 0x100\n"
        "read p1 0x100\nunpin h1",
        ["0x100", "ok", "p1", "yes", "h1", "no", "ok", "0x7", "0x1", "ok"]),
    # kernel: pagemap: zero page -> new exclusive PFN; untouched -> present; CPU writes reach the
    #   pin
    "pin rw,longterm of the zero page or an untouched page maps a new page": (
        "mmap p0 0x100 3 rw private,anon\nread p0 0x100\nread p0 0x102\n"
        "pin p0 0x100 1 rw,longterm\nsame p0 0x100 p0 0x102\npin p0 0x101 1 rw,longterm\n"
        "write p0 0x100 2\nwrite p0 0x101 3\npread h1 0\npread h2 0\nunpin h1\nunpin h2",
        ["0x100", "0x0", "0x0", "h1", "no", "h2", "ok", "ok", "0x2", "0x3", "ok", "ok"]),
    # kernel: pagemap: page 1 present after the failed registration (a fork then shares it)
    "pin is all or nothing: EFAULT on the 2nd page, the 1st page stays faulted in": (
        "mmap p0 0x100 2 rw private,anon\nmprotect p0 0x101 1 r\npin p0 0x100 2 rw,longterm\n"
        "fork p0\nsame p0 0x100 p1 0x100\nstate p0 0x101",
        ["0x100", "ok", "EFAULT", "p1", "yes", "none"]),
    # kernel: pagemap: parent's page 1 PFN changed although REGISTER_BUFFERS failed
    "a failed pin still breaks COW on the pages before the failing one": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 1\nfork p0\nmprotect p0 0x101 1 r\n"
        "pin p0 0x100 2 rw,longterm\nsame p0 0x100 p1 0x100\nread p1 0x100",
        ["0x100", "ok", "p1", "ok", "EFAULT", "no", "0x1"]),
    # kernel: pagemap: private PFN == file PFN before, a new anon PFN after the registration
    "pin of a file page beyond EOF is EFAULT; a private file page is COWed, the file unchanged": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 2 rw private file=f0 off=0\n"
        "pin p0 0x101 1 rw,longterm\nread p0 0x100\nmmap p0 0x200 1 r shared file=f0 off=0\n"
        "read p0 0x200\nsame p0 0x100 p0 0x200\npin p0 0x100 1 rw,longterm\n"
        "same p0 0x100 p0 0x200\npwrite h1 0 7\nread p0 0x100\nfread f0 0\nunpin h1",
        ["ok", "ok", "0x100", "EFAULT", "0x3", "0x200", "0x3", "yes", "h1", "no", "ok", "0x7",
         "0x3", "ok"]),
    # kernel: pagemap: child gets a different PFN at fork, the parent keeps its PFN
    "a pinned page in a VMA made read-only is still copied for the child at fork": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\npin p0 0x100 1 rw,longterm\n"
        "mprotect p0 0x100 1 r\nfork p0\nsame p0 0x100 p1 0x100\nread p1 0x100\n"
        "pwrite h1 0 7\nread p0 0x100\nread p1 0x100\nunpin h1",
        ["0x100", "ok", "h1", "ok", "p1", "no", "0x1", "ok", "0x7", "0x1", "ok"]),
    # kernel: REGISTER_BUFFERS: len 0 and len > 1 GiB give EFAULT (pins.md says EINVAL)
    "pin of 0 pages or of more than 1 GiB is EFAULT (io_uring io_validate_user_buf_range)": (
        "mmap p0 0x100 1 rw private,anon\npin p0 0x100 0 rw,longterm\n"
        "pin p0 0x100 262145 rw,longterm",
        ["0x100", "EFAULT", "EFAULT"]),
    # kernel: O_DIRECT write(2) from the buffer; pagemap: parent new exclusive PFN, child keeps
    #   the old
    "a short-term R/O pin unshares a COW-shared anon page in the pinner": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nfork p0\nsame p0 0x100 p1 0x100\n"
        "pin p0 0x100 1 r\nunpin h1\nsame p0 0x100 p1 0x100\nread p0 0x100\nread p1 0x100\n"
        "write p0 0x100 5\nread p1 0x100",
        ["0x100", "ok", "p1", "yes", "h1", "ok", "no", "0x1", "0x1", "ok", "0x1"]),
    # kernel: pagemap: parent new PFN; after mprotect rw the CPU write takes no fault
    "a short-term R/O pin unshares in a PROT_READ VMA too; mprotect rw makes the copy writable": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 1\nmprotect p0 0x100 1 r\nfork p0\n"
        "pin p0 0x100 1 r\nunpin h1\nsame p0 0x100 p1 0x100\nread p0 0x100\n"
        "mprotect p0 0x100 1 rw\nwrite p0 0x100 5\nread p1 0x100",
        ["0x100", "ok", "ok", "p1", "h1", "ok", "no", "0x1", "ok", "ok", "0x1"]),
    # kernel: O_DIRECT write(2); pagemap: zero-page PFN after; nr_foll_pin_acquired unchanged;
    #   PROT_NONE EFAULT
    "a short-term R/O pin of the zero page (or an untouched R/O page) keeps the zero page": (
        "mmap p0 0x100 2 r private,anon\nread p0 0x100\npin p0 0x100 1 r\nunpin h1\n"
        "state p0 0x100\npin p0 0x101 1 r\nunpin h2\nstate p0 0x101\n"
        "mmap p0 0x200 1 none private,anon\npin p0 0x200 1 r",
        ["0x100", "0x0", "h1", "ok", "zero pte r", "h2", "ok", "zero pte r", "0x200", "EFAULT"]),
    # kernel: O_DIRECT write(2); pagemap: still the page-cache PFN (no unshare for short-term
    #   pins)
    "a short-term R/O pin of a private file page keeps the page-cache page mapped": (
        "file f0 1\nfwrite f0 0 3\nmmap p0 0x100 1 r private file=f0 off=0\n"
        "mmap p0 0x200 1 r shared file=f0 off=0\nread p0 0x100\nread p0 0x200\n"
        "pin p0 0x100 1 r\nunpin h1\nsame p0 0x100 p0 0x200",
        ["ok", "ok", "0x100", "0x200", "0x3", "0x3", "h1", "ok", "yes"]),
    # --- swap (madvise pageout on zram) and KSM ------------------------------------
    # Facts from /tmp/kfacts/kfsk (kfrun + pageout/mergeable/unmergeable/ksm_scan), run
    # under /tmp/kfacts/swapenv.sh (256 MiB zram swap; ksmd pages_to_scan 10000,
    # smart_scan 0). ksm_scan = ksmd run for 3 full scans (the kernel merges in the 2nd:
    # checksum), result = new KSM sharing seen in pagemap+kpageflags (PTEs on KSM pages
    # minus KSM pages). Log: /tmp/kfacts/swap-ksm.md, programs /tmp/kfacts/swapcases.py.
    # kernel: pagemap: 0x100/0x101 not present, bit 62 (swap) set; 0x102 keeps the zero PFN; the
    #   read is a major fault (zram), the data comes back
    "pageout moves written anon pages to swap, skips the zero page; access swaps them back": (
        "mmap p0 0x100 3 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 6\nread p0 0x102\n"
        "madvise p0 0x100 3 pageout\nsame p0 0x100 p0 0x100\nsame p0 0x101 p0 0x101\n"
        "same p0 0x102 p0 0x102\nread p0 0x100\nsame p0 0x100 p0 0x100\nwrite p0 0x101 7\n"
        "read p0 0x101",
        ["0x100", "ok", "ok", "0x0", "ok", "no", "no", "yes", "0x5", "yes", "ok", "0x7"]),
    # kernel: madvise(MADV_PAGEOUT) returns ENOMEM; pagemap: swap entries before and after the
    #   hole
    "pageout over a hole: ENOMEM, the pages on both sides go out": (
        "mmap p0 0x100 1 rw private,anon\nmmap p0 0x102 1 rw private,anon\nwrite p0 0x100 1\n"
        "write p0 0x102 2\nmadvise p0 0x100 3 pageout\nsame p0 0x100 p0 0x100\n"
        "same p0 0x102 p0 0x102\nread p0 0x100\nread p0 0x102",
        ["0x100", "0x102", "ok", "ok", "ENOMEM", "no", "no", "0x1", "0x2"]),
    # kernel: pagemap: same PFN in both (mapcount 2) after pageout from either side; after the
    #   child's COW write the parent's page (mapcount 1) becomes a swap entry
    "pageout skips a page shared after fork; once the child wrote its copy it goes out": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\nfork p0\n"
        "madvise p0 0x100 1 pageout\nmadvise p1 0x100 1 pageout\nsame p0 0x100 p1 0x100\n"
        "write p1 0x100 9\nmadvise p0 0x100 1 pageout\nsame p0 0x100 p0 0x100\n"
        "read p0 0x100\nread p1 0x100",
        ["0x100", "ok", "p1", "ok", "ok", "yes", "ok", "ok", "no", "0x5", "0x9"]),
    # kernel: pagemap: swap entry after the child's exit; the swap-in is exclusive (write: minflt
    #   +0)
    "pageout of a page shared after fork works once the child has exited": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\nfork p0\nexit p1\n"
        "madvise p0 0x100 1 pageout\nsame p0 0x100 p0 0x100\nread p0 0x100",
        ["0x100", "ok", "p1", "ok", "ok", "no", "0x5"]),
    # kernel: pagemap: same swap offset in both; after both reads one PFN (swap cache, the 2nd
    #   read a minor fault); the parent's write gets a new PFN, the child's later write keeps its
    #   PFN
    "fork copies swap entries; parent and child swap in the same page, a write copies": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\nmadvise p0 0x100 1 pageout\n"
        "fork p0\nsame p0 0x100 p1 0x100\nread p0 0x100\nread p1 0x100\n"
        "same p0 0x100 p1 0x100\nwrite p0 0x100 9\nsame p0 0x100 p1 0x100\nread p1 0x100\n"
        "write p1 0x100 10\nread p0 0x100\nread p1 0x100",
        ["0x100", "ok", "ok", "p1", "no", "0x5", "0x5", "yes", "ok", "no", "0x5", "ok", "0x9",
         "0xa"]),
    # kernel: pagemap: the parent's new PFN is not in the swap cache; the child's read is a minor
    #   fault (the swapped-in page stayed in the swap cache for it) and reads the old value
    "a write to a swap entry shared with the child gives the writer a copy": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 7\nmadvise p0 0x100 1 pageout\n"
        "fork p0\nwrite p0 0x100 13\nread p1 0x100\nsame p0 0x100 p1 0x100\nread p0 0x100",
        ["0x100", "ok", "ok", "p1", "ok", "0x7", "no", "0xd"]),
    # kernel: pagemap: the parent's entry gets the same swap offset as the child's; the child's
    #   swap-in is a major fault, its write copies (the slot is still used by the parent)
    "after fork the parent's swapped-in page can be paged out again; the child still reads it": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 8\nmadvise p0 0x100 1 pageout\n"
        "fork p0\nread p0 0x100\nmadvise p0 0x100 1 pageout\nsame p0 0x100 p0 0x100\n"
        "read p1 0x100\nwrite p1 0x100 16\nread p0 0x100\nsame p0 0x100 p1 0x100",
        ["0x100", "ok", "ok", "p1", "0x8", "ok", "no", "0x8", "ok", "0x8", "no"]),
    # kernel: io_uring REGISTER_BUFFERS pin; pagemap: the pinned page stays present, its neighbour
    #   goes to swap; after unregister it goes too; registering again makes it present
    "pageout skips a pinned page; after unpin it goes out; pinning swaps it back in": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 6\n"
        "pin p0 0x100 1 rw,longterm\nmadvise p0 0x100 2 pageout\nsame p0 0x100 p0 0x100\n"
        "same p0 0x101 p0 0x101\nunpin h1\nmadvise p0 0x100 2 pageout\n"
        "same p0 0x100 p0 0x100\npin p0 0x100 1 rw,longterm\nsame p0 0x100 p0 0x100\n"
        "pread h2 0\nunpin h2",
        ["0x100", "ok", "ok", "h1", "ok", "yes", "no", "ok", "ok", "no", "h2", "yes", "0x5", "ok"]),
    # kernel: pagemap: not present (no swap bit) after pageout; smaps Swap: 8 kB; pread gives the
    #   data; a mapping read swaps the page back in
    "pageout of a shared memfd mapping: the PTEs go, the file keeps its data": (
        "file f0 2\nfwrite f0 0 3\nmmap p0 0x200 2 rw shared file=f0 off=0\n"
        "write p0 0x201 4\nread p0 0x200\nmadvise p0 0x200 2 pageout\nstate p0 0x200\n"
        "state p0 0x201\nfread f0 0\nfread f0 1\nread p0 0x201",
        ["ok", "ok", "0x200", "ok", "0x3", "ok", "none", "none", "0x3", "0x4", "0x4"]),
    # kernel: pagemap after the read of 0x201: 0x200 present when pread had swapped it in first,
    #   not present when it was still in swap (smaps Swap 4 kB)
    "fault-around does not swap in: only the page swapped in by pread is mapped around": (
        "file f0 2\nfwrite f0 0 3\nfwrite f0 1 4\nmmap p0 0x200 2 r shared file=f0 off=0\n"
        "read p0 0x200\nread p0 0x201\nmadvise p0 0x200 2 pageout\nread p0 0x201\n"
        "state p0 0x200\nmadvise p0 0x200 2 pageout\nfread f0 0\nread p0 0x201\n"
        "same p0 0x200 p0 0x200\nread p0 0x200",
        ["ok", "ok", "ok", "0x200", "0x3", "0x4", "ok", "0x4", "none", "ok", "0x3", "0x4", "yes",
         "0x3"]),
    # kernel: pagemap: present with mapcount 2 after the first pageout, not present after the
    #   second
    "pageout skips a file page mapped twice; after one munmap it goes out": (
        "file f0 1\nfwrite f0 0 7\nmmap p0 0x400 1 rw shared file=f0 off=0\n"
        "mmap p0 0x401 1 r shared file=f0 off=0\nread p0 0x400\nread p0 0x401\n"
        "madvise p0 0x400 1 pageout\nsame p0 0x400 p0 0x401\nmunmap p0 0x401 1\n"
        "madvise p0 0x400 1 pageout\nstate p0 0x400\nfread f0 0",
        ["ok", "ok", "0x400", "0x401", "0x7", "0x7", "ok", "yes", "ok", "ok", "none", "0x7"]),
    # kernel: pagemap: same PFN, mapcount 2 after pageout from either side; not present after the
    #   child's munmap and the parent's pageout (smaps Swap 4 kB); the read gets the data back
    "shared anon mapped by parent and child is skipped; after the child's munmap it goes out": (
        "mmap p0 0x300 1 rw shared,anon\nwrite p0 0x300 6\nfork p0\nread p1 0x300\n"
        "madvise p0 0x300 1 pageout\nmadvise p1 0x300 1 pageout\nsame p0 0x300 p1 0x300\n"
        "munmap p1 0x300 1\nmadvise p0 0x300 1 pageout\nstate p0 0x300\nread p0 0x300",
        ["0x300", "ok", "p1", "0x6", "ok", "ok", "yes", "ok", "ok", "none", "0x6"]),
    # kernel: pagemap: COWed anon page -> swap bit; unCOWed file page -> not present, no swap bit;
    #   reads give 3 and 9, the file keeps 3 and 4
    "private memfd mapping: the COWed page goes to swap, the page-cache page is just unmapped": (
        "file f0 2\nfwrite f0 0 3\nfwrite f0 1 4\nmmap p0 0x100 2 rw private file=f0 off=0\n"
        "read p0 0x100\nwrite p0 0x101 9\nmadvise p0 0x100 2 pageout\nstate p0 0x100\n"
        "same p0 0x101 p0 0x101\nread p0 0x100\nread p0 0x101\nfread f0 0\nfread f0 1",
        ["ok", "ok", "ok", "0x100", "0x3", "ok", "ok", "none", "no", "0x3", "0x9", "0x3", "0x4"]),
    # kernel: /proc/swaps Used: 16 -> 12 kB after dontneed, 8 kB after munmap; pagemap: swap bit
    #   kept across mprotect r/none/rw; write to the r page SEGV, read of the none page SEGV
    "swap entries: dontneed drops one (reads 0), munmap drops one, mprotect keeps them": (
        "mmap p0 0x600 4 rw private,anon\nwrite p0 0x600 1\nwrite p0 0x601 2\n"
        "write p0 0x602 3\nwrite p0 0x603 4\nmadvise p0 0x600 4 pageout\n"
        "madvise p0 0x600 4 pageout\nmadvise p0 0x600 1 dontneed\nread p0 0x600\n"
        "munmap p0 0x601 1\nread p0 0x601\nmprotect p0 0x602 2 r\nwrite p0 0x602 5\n"
        "read p0 0x602\nmprotect p0 0x603 1 none\nread p0 0x603\nmprotect p0 0x603 1 rw\n"
        "read p0 0x603\nwrite p0 0x603 6\nread p0 0x603",
        ["0x600", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "0x0", "ok", "SEGV", "ok", "SEGV",
         "0x3", "ok", "SEGV", "ok", "0x4", "ok", "0x6"]),
    # kernel: pagemap: present and exclusive after MADV_POPULATE_READ/WRITE on swap entries
    "populate_read and populate_write swap pages back in": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 6\n"
        "madvise p0 0x100 2 pageout\nmadvise p0 0x100 1 populate_read\n"
        "same p0 0x100 p0 0x100\nmadvise p0 0x101 1 populate_write\nsame p0 0x101 p0 0x101\n"
        "read p0 0x100\nread p0 0x101",
        ["0x100", "ok", "ok", "ok", "ok", "yes", "ok", "yes", "0x5", "0x6"]),
    # kernel: pagemap: swap bit set after pageout of a written page made PROT_NONE
    "a PROT_NONE page is paged out too": (
        "mmap p0 0x200 1 rw private,anon\nwrite p0 0x200 8\nmprotect p0 0x200 1 none\n"
        "madvise p0 0x200 1 pageout\nsame p0 0x200 p0 0x200\nmprotect p0 0x200 1 rw\n"
        "read p0 0x200",
        ["0x200", "ok", "ok", "ok", "no", "ok", "0x8"]),
    # kernel: pagemap: one PFN for the three 5-pages, kpageflags KSM, bit 56 clear; merged in the
    #   2nd ksmd full scan (checksum); the write gets a new PFN (minflt +1)
    "ksm: identical pages in one process merge; a write breaks the sharing": (
        "mmap p0 0x100 5 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 5\n"
        "write p0 0x102 5\nwrite p0 0x103 6\nread p0 0x104\nmadvise p0 0x100 5 mergeable\n"
        "ksm_scan\nsame p0 0x100 p0 0x101\nsame p0 0x100 p0 0x102\nsame p0 0x100 p0 0x103\n"
        "state p0 0x104\nwrite p0 0x101 7\nsame p0 0x100 p0 0x101\nread p0 0x100\n"
        "read p0 0x101\nread p0 0x102",
        ["0x100", "ok", "ok", "ok", "ok", "0x0", "ok", "0x2", "yes", "yes", "no", "zero pte r",
         "ok", "no", "0x5", "0x7", "0x5"]),
    # kernel: pagemap: one KSM PFN in parent and child after the scan; the child's write gets a
    #   new PFN
    "ksm: identical pages of two processes merge": (
        "mmap p0 0x100 1 rw private,anon\nmadvise p0 0x100 1 mergeable\nfork p0\n"
        "write p0 0x100 5\nwrite p1 0x100 5\nsame p0 0x100 p1 0x100\nksm_scan\n"
        "same p0 0x100 p1 0x100\nwrite p1 0x100 6\nsame p0 0x100 p1 0x100\nread p0 0x100\n"
        "read p1 0x100",
        ["0x100", "ok", "p1", "ok", "ok", "no", "0x1", "yes", "ok", "no", "0x5", "0x6"]),
    # kernel: pagemap: the third page joins the KSM PFN at the next scans (kernel: two passes,
    #   checksum)
    "ksm: a page written with the value of an existing KSM page merges into it": (
        "mmap p0 0x100 3 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 5\n"
        "write p0 0x102 6\nmadvise p0 0x100 3 mergeable\nksm_scan\nsame p0 0x100 p0 0x102\n"
        "write p0 0x102 5\nksm_scan\nsame p0 0x100 p0 0x102\nsame p0 0x101 p0 0x102",
        ["0x100", "ok", "ok", "ok", "ok", "0x1", "no", "ok", "0x1", "yes", "yes"]),
    # kernel: io_uring pin on the last page in scan order; pagemap: the two others share a KSM
    #   PFN, the pinned one keeps its PFN; after unregister it joins the KSM PFN
    "ksm: a pinned page never merges; after unpin it does": (
        "mmap p0 0x200 3 rw private,anon\nwrite p0 0x200 7\nwrite p0 0x201 7\n"
        "write p0 0x202 7\npin p0 0x202 1 rw,longterm\nmadvise p0 0x200 3 mergeable\n"
        "ksm_scan\nsame p0 0x200 p0 0x201\nsame p0 0x200 p0 0x202\nunpin h1\nksm_scan\n"
        "same p0 0x200 p0 0x202",
        ["0x200", "ok", "ok", "ok", "h1", "ok", "0x1", "yes", "no", "ok", "0x1", "yes"]),
    # kernel: the pinned page sits in the unstable tree; each later match fails write_protect_page
    #   on it (refcount) and is broken again (break_ksm): pagemap shows 3 distinct PFNs, no KSM
    #   page, at every scan; after unregister all three merge. (try_to_merge_two_pages makes
    #   the later page KSM, fails on the pinned one, break_cow)
    "ksm: a pinned page first in scan order blocks its value: nothing merges": (
        "mmap p0 0x200 3 rw private,anon\nwrite p0 0x200 7\nwrite p0 0x201 7\n"
        "write p0 0x202 7\npin p0 0x200 1 rw,longterm\nmadvise p0 0x200 3 mergeable\n"
        "ksm_scan\nsame p0 0x201 p0 0x202\nsame p0 0x200 p0 0x201\nunpin h1\nksm_scan\n"
        "same p0 0x200 p0 0x201\nsame p0 0x201 p0 0x202",
        ["0x200", "ok", "ok", "ok", "h1", "ok", "0x0", "no", "no", "ok", "0x2", "yes", "yes"]),
    # kernel: pagemap: two new exclusive PFNs after MADV_UNMERGEABLE; each later write takes a
    #   fault but keeps its PFN (the copy was mapped read-only)
    "ksm: unmergeable unshares every KSM page in the range": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 9\nwrite p0 0x101 9\n"
        "madvise p0 0x100 2 mergeable\nksm_scan\nsame p0 0x100 p0 0x101\n"
        "madvise p0 0x100 2 unmergeable\nsame p0 0x100 p0 0x101\nread p0 0x100\n"
        "write p0 0x101 3\nread p0 0x100\nread p0 0x101",
        ["0x100", "ok", "ok", "ok", "0x1", "yes", "ok", "no", "0x9", "ok", "0x9", "0x3"]),
    # kernel: pagemap: KSM PFN mapcount 4 after fork; after the parent's MADV_UNMERGEABLE the
    #   parent has 2 new PFNs, the child's two pages still map the KSM PFN
    "ksm: fork keeps the KSM page; unmergeable in the parent leaves the child's sharing": (
        "mmap p0 0x300 2 rw private,anon\nwrite p0 0x300 9\nwrite p0 0x301 9\n"
        "madvise p0 0x300 2 mergeable\nksm_scan\nfork p0\nsame p0 0x300 p1 0x301\n"
        "madvise p0 0x300 2 unmergeable\nsame p0 0x300 p1 0x300\nsame p0 0x300 p0 0x301\n"
        "same p1 0x300 p1 0x301\nwrite p1 0x300 11\nsame p1 0x300 p1 0x301\nread p1 0x301",
        ["0x300", "ok", "ok", "ok", "0x1", "p1", "yes", "ok", "no", "no", "yes", "ok", "no",
         "0x9"]),
    # kernel: pagemap: the child's two 12-pages share a KSM PFN after the scan
    "ksm: the child's VMA stays mergeable after fork": (
        "mmap p0 0x400 2 rw private,anon\nmadvise p0 0x400 2 mergeable\nfork p0\n"
        "write p1 0x400 12\nwrite p1 0x401 12\nksm_scan\nsame p1 0x400 p1 0x401",
        ["0x400", "ok", "p1", "ok", "ok", "0x1", "yes"]),
    # kernel: MADV_MERGEABLE returns 0 on a MAP_SHARED|MAP_ANONYMOUS VMA; pagemap: two PFNs after
    #   scans
    "ksm: mergeable on shared anon is ok but never merges": (
        "mmap p0 0x300 2 rw shared,anon\nwrite p0 0x300 8\nwrite p0 0x301 8\n"
        "madvise p0 0x300 2 mergeable\nksm_scan\nsame p0 0x300 p0 0x301",
        ["0x300", "ok", "ok", "ok", "0x0", "no"]),
    # kernel: use_zero_pages=0: the two written 0-pages share a KSM PFN; the read-only zero-page
    #   entry keeps the zero PFN
    "ksm: pages written with 0 merge, a zero-page entry is left alone": (
        "mmap p0 0x400 3 rw private,anon\nwrite p0 0x400 0\nwrite p0 0x401 0\nread p0 0x402\n"
        "madvise p0 0x400 3 mergeable\nksm_scan\nsame p0 0x400 p0 0x401\n"
        "same p0 0x400 p0 0x402\nstate p0 0x402",
        ["0x400", "ok", "ok", "0x0", "ok", "0x1", "yes", "no", "zero pte r"]),
    # kernel: madvise returns ENOMEM both times; pagemap: merged after the scan, unshared after
    #   MADV_UNMERGEABLE
    "ksm: mergeable/unmergeable over a hole: ENOMEM, the VMA before the hole is done": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 5\n"
        "madvise p0 0x100 3 mergeable\nksm_scan\nsame p0 0x100 p0 0x101\n"
        "madvise p0 0x100 3 unmergeable\nsame p0 0x100 p0 0x101",
        ["0x100", "ok", "ok", "ENOMEM", "0x1", "yes", "ENOMEM", "no"]),
    # kernel: pagemap: the swap entry stays a swap entry across scans; after the read swap-in the
    #   page merges with its twin
    "ksm: a swapped-out page is not merged until it is swapped back in": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 5\nwrite p0 0x101 5\n"
        "madvise p0 0x100 1 pageout\nmadvise p0 0x100 2 mergeable\nksm_scan\n"
        "same p0 0x100 p0 0x100\nread p0 0x100\nksm_scan\nsame p0 0x100 p0 0x101",
        ["0x100", "ok", "ok", "ok", "ok", "0x0", "no", "0x5", "0x1", "yes"]),
    # kernel: pagemap: the KSM PFN (mapcount 2) stays present after MADV_PAGEOUT
    "ksm: pageout skips a KSM page mapped twice": (
        "mmap p0 0x200 2 rw private,anon\nwrite p0 0x200 6\nwrite p0 0x201 6\n"
        "madvise p0 0x200 2 mergeable\nksm_scan\nmadvise p0 0x200 2 pageout\n"
        "same p0 0x200 p0 0x201\nread p0 0x200",
        ["0x200", "ok", "ok", "ok", "0x1", "ok", "yes", "0x6"]),
    # kernel: the parent's swap-in of an entry shared with the child stays in the swap cache
    #   (kpageflags SWAPCACHE); ksmd merges it with an identical page: pagemap one KSM PFN.
    "ksm: a page in the swap cache merges (write_protect_page counts the swap-cache ref)": (
        "mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\nmadvise p0 0x100 1 pageout\n"
        "fork p0\nread p0 0x100\nmmap p0 0x200 1 rw private,anon\nwrite p0 0x200 5\n"
        "madvise p0 0x100 1 mergeable\nmadvise p0 0x200 1 mergeable\nksm_scan\n"
        "same p0 0x100 p0 0x200\nread p1 0x100",
        ["0x100", "ok", "ok", "p1", "0x5", "0x200", "ok", "ok", "ok", "0x1", "yes", "0x5"]),
    # kernel: pagemap after the scans: all three PTEs on one KSM PFN, pages_sharing 2 (the kernel
    #   first replaces the parent's PTE by the child's page, a later pass the child's old PTE).
    #   The model's ksm_scan is one pass: the child's old PTE (visited before the merge)
    #   merges in the second scan, so the sharing grows by 1 in each.
    # kernel (3 full ksmd scans per ksm_scan): the child's 0x201 frame became KSM when the
    #   pinned 0x200 failed to merge (break_cow unshared only p0's mapping); it has no
    #   stable node, so nothing ever merges into it: pagemap shows distinct PFNs after the
    #   second scan too
    "ksm: a KSM frame left by a failed merge gets no stable node and attracts nothing": (
        "mmap p0 0x200 2 rw private,anon\nwrite p0 0x200 7\nwrite p0 0x201 7\n"
        "pin p0 0x200 1 rw,longterm\nmadvise p0 0x200 2 mergeable\nfork p0\nksm_scan\n"
        "same p0 0x201 p1 0x201\nsame p1 0x200 p1 0x201\nksm_scan\n"
        "same p0 0x201 p1 0x201\nsame p1 0x200 p1 0x201",
        ["0x200", "ok", "ok", "h1", "ok", "p1", "0x0", "no", "no", "0x0", "no", "no"]),
    "ksm: a page shared by fork merges with the child's twin over two scans": (
        "mmap p0 0x100 2 rw private,anon\nwrite p0 0x100 5\nmadvise p0 0x100 2 mergeable\n"
        "fork p0\nwrite p1 0x101 5\nksm_scan\nksm_scan\nsame p0 0x100 p1 0x100\n"
        "same p0 0x100 p1 0x101",
        ["0x100", "ok", "ok", "p1", "ok", "0x1", "0x1", "yes", "yes"]),
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
