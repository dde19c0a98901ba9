# cython: language_level=3
"""ImplMachine: the thin Python face of the Cython kernel-shaped model.

Ops are encoded into a C array (op code + int64 arguments, names turned into
indexes), run in one nogil loop (syscall.run_ops) and decoded into Result
objects; Python objects exist only at this boundary (SPEC §4 observations).
"""
cimport cython
from libc.stdlib cimport malloc, realloc, free

include "kmem.pyx"
include "folio.pyx"
include "pagetable.pyx"
include "swap.pyx"
include "shmem.pyx"
include "vma.pyx"
include "mm.pyx"
include "notifier.pyx"
include "fault.pyx"
include "thp.pyx"
include "folio_split.pyx"
include "fork.pyx"
include "syscall.pyx"
include "gup.pyx"
include "hmm.pyx"
include "mmap.pyx"
include "mprotect.pyx"
include "madvise.pyx"
include "vmscan.pyx"
include "ksm.pyx"
include "invariants.pyx"
include "snapshot.pyx"
include "dirty.pyx"
include "softdirty.pyx"
include "devmem.pyx"

from mmdiff.reference import ops as _ops
from mmdiff.reference import results as _results
from mmdiff.reference import state as _state
from mmdiff.reference.api import InvariantError

# --- seeded bugs ---------------------------------------------------------------------------
# Runtime mutants for the differ's self-test: each breaks ONE kernel rule the way a real
# kernel bug did, behind one test of the C int machine.mutant (MUTANT_*, constants.pxi) in
# that rule only. corpus/mutants/<name>.mmd is a faithful program that catches it.
# MUTANTS: name -> doc (first line: the one-line summary `mmdiff mutants` prints; then
# the kernel rule broken, the historical bug, and the program that shows it).
MUTANTS = {
    "no_anon_exclusive_reuse": """\
PageAnonExclusive is ignored: write faults reuse by refcount alone, mprotect never upgrades.
Rule: do_wp_page reuses an AnonExclusive page without looking at its refcount, and
change_pte_range -> can_change_pte_writable() maps an exclusive anon page writable again
on mprotect(PROT_READ|PROT_WRITE). History: before PG_anon_exclusive (commit 6c287605fd56
"mm: remember exclusively mapped anonymous pages with PG_anon_exclusive", 5.19) the kernel
had no exclusivity bit, the source of the GUP-after-fork COW bugs (CVE-2020-29374); the
mutant is a kernel without it. Program: write, mprotect r, mprotect rw, `state` shows the
entry still read-only (faithful: rw excl).""",
    "cow_keeps_exclusive": """\
wp_page_copy leaves the old frame marked AnonExclusive although others still map it.
Rule: after a COW copy the old page loses one mapping and stays non-exclusive; only the
refcount == 1 reuse of wp_can_reuse_anon_folio may make it exclusive again (an exclusive
page is mapped by one process: the rule of commit 6c287605fd56 "mm: remember exclusively
mapped anonymous pages with PG_anon_exclusive"). The mutant sets PageAnonExclusive on the
old frame while its refcount is still > 1 (others map it), so the next writer reuses a
frame it does not own. Program: p0 writes, forks p1 and p2; p1 writes (COW copy); p0 writes and
reuses the frame p2 still maps: p2 reads p0's value (faithful: the original value).""",
    "fork_no_wrprotect": """\
copy_present_pte write-protects the child's PTE but leaves the parent's writable.
Rule: for a COW mapping fork write-protects the entry in BOTH page tables
(copy_present_pte: `if (is_cow_mapping(vm_flags) && pte_write(pte))
ptep_set_wrprotect(src_mm, addr, src_pte)`), so the parent's next write faults and copies.
The mutant skips ptep_set_wrprotect on the source (the "write protect it both in the
parent and the child" step of the old copy_one_pte): the classic COW bug where the parent
keeps writing the frame it now shares and the child sees the parent's later stores. Program:
p0 writes 1, forks p1, writes 2 without a fault: p1 reads 2 (faithful: 1).""",
    "fork_keeps_exclusive": """\
fork shares an anon page without clearing PageAnonExclusive.
Rule: copy_present_pte -> folio_try_dup_anon_rmap_pte() clears PageAnonExclusive when a
second process maps the page (or copies it when it may be pinned); the PTEs of both become
read-only. The mutant keeps the bit, so the parent's next write fault takes the
`PageAnonExclusive -> reuse` branch of do_wp_page and writes the shared frame in place:
the page_try_dup_anon_rmap() rule of commit 6c287605fd56 broken. Program: p0 writes 1,
forks p1, writes 2: p1 reads 2 (faithful: 1); `state p0` shows excl after the fork.""",
    "reuse_ignores_refcount": """\
do_wp_page reuses a non-exclusive anon page that another process still maps.
Rule: a write fault on a read-only anon page that is not PageAnonExclusive may reuse it
only if wp_can_reuse_anon_folio() sees folio_ref_count() == 1 (commit 09854ba94c6a "mm:
do_wp_page() simplification", the fix of the page_mapcount-based reuse_swap_page() logic
behind CVE-2020-29374). The mutant reuses any anon page, ignoring the refcount: after fork
the first writer writes the shared frame and the other process sees the store. Program:
p0 writes 1, forks p1, p0 writes 2: p1 reads 2 (faithful: 1).""",
    "private_file_write_to_pagecache": """\
Dirty COW: a write fault on a page-cache page of a private mapping writes the page cache.
Rule: in a MAP_PRIVATE file mapping a write to a read-only page-cache page must break COW
(do_wp_page -> wp_page_copy): the file never sees the store. CVE-2016-5195 (Dirty COW,
fixed by commit 19be0eaffa3a "mm: remove gup_flags FOLL_WRITE games from
__get_user_pages()") let such a write land in the page-cache page itself; CVE-2022-2590
was the same class for shmem. The mutant makes the file page writable in place. Program:
fwrite 0x10, map private, read (maps the cache page), write 0x11: fread returns 0x11
(faithful: 0x10) and `state` shows a file entry instead of an anon copy.""",
    "mprotect_upgrades_cow_page": """\
mprotect(rw) maps a COW-shared (non-exclusive) anon page writable.
Rule: change_pte_range may set the write bit on a private mapping's entry only through
can_change_pte_writable(), which requires an anon page that is PageAnonExclusive (commit
64fe24a3e05e "mm/mprotect: try avoiding write faults for exclusive anonymous pages when
changing protection"; tools/testing/selftests/mm/cow.c tests it "with mprotect()
optimization"). The mutant drops the AnonExclusive test: after fork, mprotect r then rw
makes the parent's shared page writable and its next store reaches the child. Program:
p0 writes 1, forks p1, mprotect r/rw, p0 writes 2: p1 reads 2 (faithful: 1).""",
    "zero_page_writable": """\
A read fault in a private rw anon VMA maps the shared zero page writable.
Rule: do_anonymous_page maps the zero page with pte_mkspecial and the COW vm_page_prot
of a private mapping (read-only), so the first store faults and gets a private page.
CVE-2017-1000405 ("Huge Dirty COW": touch_pmd made the huge zero page dirty and
FOLL_COW let it be written) is the historical bug: every later reader of the zero page saw
the stored data. The mutant maps the zero page writable; a store then changes the zero
page for every process. Program: read p0 (zero page), write 0x42 to it; a read of another
untouched page (or another process) returns 0x42 (faithful: 0).""",
    "munmap_leaves_last_page": """\
munmap (and MAP_FIXED) zaps one page short: the last page of the range stays mapped.
Rule: do_vmi_munmap zaps every entry of [start, end) (unmap_region -> unmap_vmas ->
zap_pte_range) before the VMAs go; no entry may survive outside a VMA. The mutant zaps
[start, end - 1): an off-by-one range bound that leaves a stale entry to a frame the
process no longer maps, the use-after-unmap class of CVE-2018-18281 (a stale TLB entry
after mremap/ftruncate kept a freed page reachable). Program: map 4 pages, write the
last one, munmap 2 pages at the end, map them again: the old value is still there
(faithful: 0).""",
    "wipeonfork_copies": """\
fork copies the pages of a MADV_WIPEONFORK VMA into the child.
Rule: dup_mmap gives a VM_WIPEONFORK VMA to the child empty: no anon_vma and no copied
entries (commit d2cd9ede6e19 "mm,fork: introduce MADV_WIPEONFORK"), so the child reads
zeroes, the guarantee crypto PRNG state relies on. The mutant copies it like any other
VMA. Program: p0 writes 0x5ec, madvise wipeonfork, fork: p1 reads 0x5ec (faithful: 0).""",
    "split_vma_loses_anon_vma": """\
__split_vma gives the new half no anon_vma: its pages are not copied at fork.
Rule: __split_vma copies the VMA and anon_vma_clone() links the new half to the same
anon_vma, so both halves keep their anon pages reachable by rmap and fork
(vma_needs_copy checks vma->anon_vma). The mutant skips the clone and leaves the upper
half without anon_vma, the class of the anon_vma_clone() failure-path bugs ("mm: fix
anon_vma_clone() error treatment"). Program: write two pages, mprotect the second one
read-only (split), fork: the child reads 0 there (faithful: the value).""",
    "dontneed_shared_drops_pagecache": """\
MADV_DONTNEED on a shared mapping also punches the pages out of the file.
Rule: MADV_DONTNEED only zaps the PTEs (madvise_dontneed_single_vma ->
zap_page_range_single); in a shared mapping the data stays in the page cache and the
next access refaults it. Freeing the backing store is MADV_REMOVE (shmem_fallocate
PUNCH_HOLE); MADV_FREE is refused outside private anon VMAs for the same reason. The mutant
truncates the range like MADV_REMOVE. Program: shared file mapping, write 0x11,
madvise dontneed: fread and a re-read return 0 (faithful: 0x11).""",
    "fault_around_allocates": """\
Fault-around fills holes: it allocates page-cache pages for the whole window.
Rule: do_fault_around -> filemap_map_pages maps only pages already uptodate in the page
cache (next_uptodate_folio skips holes and never allocates or reads); only the faulting
page itself goes through ->fault (shmem_fault allocates it). The mutant makes
fault-around allocate every hole of its 16-page window, so one read fault grows the
file's page cache by up to 16 pages. Program: file of 4 pages with one written page, a
read of page 0 of a shared mapping: page 2 becomes mapped and resident (faithful: none).""",
    "fork_shares_pinned_page": """\
fork shares a pinned exclusive anon page instead of copying it for the child.
Rule: copy_present_pte -> folio_try_dup_anon_rmap_pte() returns -EBUSY for an
AnonExclusive page when folio_needs_cow_for_dma() (MMF_HAS_PINNED and the folio may be
pinned), and copy_present_page() gives the child its own copy: the parent's entry stays
writable so the pin and the parent keep seeing the same page (commit 70e806e4e645 "mm: Do
early cow for pinned pages during fork() for ptes", the fix of the RDMA/io_uring fork
corruption; tools/testing/selftests/mm/cow.c "fork() with an iouring fixed buffer"). The
mutant shares the page: the parent's next write COWs away from the pinned frame, so the
device no longer sees the parent's data. Program: (S2.9) write 1, pin rw,longterm, fork,
write 2: `pread h1 0` returns 1 (faithful: 2).""",
    "ro_pin_skips_unshare": """\
A R/O pin of a COW-shared anon page pins the shared frame instead of unsharing it.
Rule: follow_page_pte -> gup_must_unshare(): a FOLL_PIN without FOLL_WRITE of an anon page
that is not PageAnonExclusive triggers a FAULT_FLAG_UNSHARE fault first, so the pinned
page is exclusive and later CPU writes land in it (commit a7f226604170 "mm/gup: trigger
FAULT_FLAG_UNSHARE when R/O-pinning a possibly shared anonymous page", the R/O pin half of
CVE-2020-29374; cow.c "R/O GUP pin on R/O-mapped shared page"). The mutant pins the shared
frame: the pinning process's next write copies away from it and the pin goes stale.
Program: (S3.2) write 1, fork, pin r,longterm, write 2: `pread h1 0` returns 1 (faithful: 2).""",
    "rw_pin_skips_cow_break": """\
A FOLL_WRITE pin follows a read-only COW-shared entry without breaking COW.
Rule: follow_page_pte refuses a write through a read-only entry unless
can_follow_write_pte() allows it (writable, or FOLL_FORCE on an exclusive anon page);
otherwise faultin_page takes a write fault that copies (commit 5535be309971 "mm/gup: fix
FOLL_FORCE COW security issue and remove FOLL_COW"). The mutant follows any read-only
entry for pins: the device gets the frame the child still maps and its DMA writes leak
into the child. Program: write 1, fork, pin rw, `pwrite h1 0 5`: p1 reads 5 (faithful: 1).""",
    "poke_writes_pagecache": """\
Dirty COW through /proc/pid/mem: a FOLL_FORCE write lands in the page-cache page.
Rule: a FOLL_FORCE write into a read-only private mapping may use the read-only entry
only when it maps an AnonExclusive anon page (can_follow_write_pte, commit 5535be309971
"mm/gup: fix FOLL_FORCE COW security issue and remove FOLL_COW"); else a write fault
breaks COW. CVE-2016-5195 (Dirty COW) raced the COW away and wrote the page-cache page
of a read-only file. The mutant follows any read-only page: poke of a read-only private
file mapping writes the file. Program: fwrite 0x10, map it private r, read, poke 0x66:
fread returns 0x66 (faithful: 0x10).""",
    "restore_without_notifier": """\
A CPU fault restores a device-exclusive entry without telling the devices.
Rule: remove_device_exclusive_entry invalidates the page with owner NULL (6.15+:
MMU_NOTIFY_CLEAR; MMU_NOTIFY_EXCLUSIVE before) ahead of restore_exclusive_pte, so every
device drops its atomic mapping before the CPU may write
(hmm-tests `exclusive`: HMM_DMIRROR_CHECK_EXCLUSIVE finds no atomic mapping left after
the CPU touched the pages). It came with device-exclusive access itself (Alistair
Popple's "Add support for SVM atomics in Nouveau", 5.14, spec seed 003); without it the
device and the CPU both believe they own the page and atomic updates are lost. The
mutant skips the notifier: the device keeps its atomic entry. Program: mirror, write 5,
dexcl, CPU write 7 (restores), datomic 1: it adds through the stale atomic entry without
taking exclusive access again, so `state` shows the present entry (faithful: devexcl).""",
    "cow_without_invalidation": """\
wp_page_copy replaces the PTE without invalidating secondary MMUs: devices keep the old frame.
Rule: wp_page_copy wraps the switch to the new page in MMU_NOTIFY_CLEAR
invalidate_range_start/end over the page, so a mirroring device drops the old frame and
refaults the new one. Before 6.10 the new PTE was also pushed with ->change_pte
(set_pte_at_notify), removed by Paolo Bonzini's "KVM, mm: remove the .change_pte() MMU
notifier and set_pte_at_notify()" because the invalidation already covers it; i915
userptr (spec seed 002) was the driver that missed COW and kept DMA-ing into the old
page. The mutant fires nothing: after fork and a CPU write (COW copy) the device still
reads the frame the child keeps. Program: write 1, mirror, fork, dread (mirrors r),
write 2: `devents` shows no clear item and `dread` returns 1 (faithful: 2).""",
    "ksm_merges_pinned_page": """\
KSM merges a pinned page: write_protect_page skips its mapcount/refcount check.
Rule: write_protect_page clears the PTE, then refuses the merge when
folio_mapcount + 1 + swapcache != folio_ref_count ("Check that no O_DIRECT or similar I/O
is in progress on the page", there since KSM itself, commit 31dbd01f3143 "ksm: Kernel
SamePage Merging", 2.6.32): a pinned page may be written by DMA at any time, so it must
stay private (the kernel facts: a pinned page never merges). The mutant skips the check:
the pinned frame becomes the KSM page shared with its twin, and the device's next DMA
write changes the twin's data too (and the pinned page is no longer AnonExclusive).
Program: two pages of 7, pin the second rw,longterm, mergeable, ksm_scan: 1 page shared
(faithful: 0); `pwrite h1 0 9` then shows 9 at the first page (faithful: 7).""",
    "fork_keeps_swap_exclusive": """\
fork copies a swap entry without clearing its exclusive marker: the swap-in maps it writable.
Rule: copy_nonpresent_pte duplicates a swap entry (swap_duplicate) and, because the slot
is shared now, clears pte_swp_exclusive in the PARENT's entry and copies the cleared
entry to the child (commit 1493a1913e34 "mm/swap: remember PG_anon_exclusive via a swp
pte bit", 5.19, the swap half of the PG_anon_exclusive COW rework). do_swap_page then
maps a swap-cache page read-only (not exclusive) and the first write copies. The mutant
keeps the marker in both entries: the parent's swap-in sets PageAnonExclusive on the
swap-cache folio the child will also map and maps it writable, so the parent's store
leaks into the child. Program: write 5, pageout, fork, p0 reads (swap cache) and writes
9: p1 reads 9 (faithful: 5); `state` after the fork still shows `excl` (faithful: not).""",
    "split_drops_dirty": """\
A PMD split leaves the 512 PTEs clean: the dirty bit of the huge PMD is lost.
Rule: __split_huge_pmd_locked copies the PMD's write, dirty, young and soft-dirty bits to
every PTE it installs (`if (dirty) entry = pte_mkdirty(entry)`), and folio_set_dirty for
an anon THP; the THP split rework of 4.5 ("thp: reintroduce split_huge_page()", Kirill
Shutemov) and the later "mm/thp: fix __split_huge_pmd_locked() on shmem migration entry"
class of fixes are about exactly these bits. A lost dirty bit means a page that was
written may be treated as clean (reclaim drops it, dirty tracking misses it). The mutant
clears the dirty bit on the split PTEs. Program: THP, write, mprotect one page r (VMA
split: PMD split): `state` shows the pages without `dirty` (faithful: dirty).""",
    "split_marks_shared_exclusive": """\
A PMD split marks every page AnonExclusive although the THP is shared with a child.
Rule: __split_huge_pmd_locked reads anon_exclusive = PageAnonExclusive(head) and maps the
PTEs with RMAP_EXCLUSIVE only when it is set; copy_huge_pmd cleared it when fork shared
the THP (folio_try_dup_anon_rmap_pmd, "mm: remember exclusively mapped anonymous pages
with PG_anon_exclusive", 5.19). The mutant always passes RMAP_EXCLUSIVE: after fork the
child's write splits its PMD with every page exclusive, so the child's next write to
another page reuses the shared page in place and the parent sees the child's data.
Program: THP, write, fork, child writes two pages: the parent reads the child's second
value (faithful: its own 0).""",
    "huge_zero_written_in_place": """\
A write fault on the huge zero PMD makes the huge zero folio itself writable.
Rule: do_huge_pmd_wp_page on a huge zero PMD (6.18: do_huge_zero_wp_pmd) allocates a new
zeroed THP and maps it by the PMD; only when that fails is the PMD split into zero-page
PTEs and one page copied (the older path, __split_huge_zero_page_pmd). The huge zero
folio is shared by every reader in every process and must stay zero (the zero-page
analogue of Dirty COW). The mutant sets the write bit on the huge zero PMD: the store
lands in the shared zero folio, and every other huge zero mapping reads it. Program: two
blocks read (both the huge zero PMD), write into one: the other reads 5 (faithful: 0).""",
    "split_walk_stops_at_first_pmd": """\
A folio split stops its rmap walk after freezing the first huge PMD it meets.
Rule: try_to_migrate_one with TTU_SPLIT_HUGE_PMD freezes a PMD into migration entries
and walks on to the folio's other mappings (the 6.18.y stable fix "mm/huge_memory: fix
early failure try_to_migrate() when split huge pmd for shared thp"). 6.18 as released
(commit 60fbb14396d5) did `ret = false; break` after split_huge_pmd_locked: the rmap walk
ends, a THP still mapped elsewhere cannot be frozen, and the split fails (-EAGAIN) with
the first PMD left split into PTEs of the still-large folio. The mutant is that kernel.
Program: p0 writes a THP, forks p1, split_folio -> EBUSY (faithful: ok).""",
    "zero_remap_drops_soft_dirty": """\
A folio split maps an all-zero page to the zero page without its soft-dirty bit.
Rule: try_to_map_unused_to_zeropage carries the migration entry's soft-dirty (and
uffd-wp) bit into the zero-page PTE (6.18: "mm/rmap: fix soft-dirty and uffd-wp bit
loss when remapping zero-filled mTHP subpage to shared zeropage"); before that fix the
bits were lost and a soft-dirty tracker missed pages written since the last clear. The
mutant drops the bit. Program: write one page of a THP, split_folio: `state` of a zero
page shows no softdirty (faithful: zero pte r softdirty).""",
}
_MUTANT_CODE = {
    "no_anon_exclusive_reuse": MUTANT_NO_ANON_EXCLUSIVE_REUSE,
    "cow_keeps_exclusive": MUTANT_COW_KEEPS_EXCLUSIVE,
    "fork_no_wrprotect": MUTANT_FORK_NO_WRPROTECT,
    "fork_keeps_exclusive": MUTANT_FORK_KEEPS_EXCLUSIVE,
    "reuse_ignores_refcount": MUTANT_REUSE_IGNORES_REFCOUNT,
    "private_file_write_to_pagecache": MUTANT_PRIVATE_FILE_WRITE_TO_PAGECACHE,
    "mprotect_upgrades_cow_page": MUTANT_MPROTECT_UPGRADES_COW_PAGE,
    "zero_page_writable": MUTANT_ZERO_PAGE_WRITABLE,
    "munmap_leaves_last_page": MUTANT_MUNMAP_LEAVES_LAST_PAGE,
    "wipeonfork_copies": MUTANT_WIPEONFORK_COPIES,
    "split_vma_loses_anon_vma": MUTANT_SPLIT_VMA_LOSES_ANON_VMA,
    "dontneed_shared_drops_pagecache": MUTANT_DONTNEED_SHARED_DROPS_PAGECACHE,
    "fault_around_allocates": MUTANT_FAULT_AROUND_ALLOCATES,
    "fork_shares_pinned_page": MUTANT_FORK_SHARES_PINNED_PAGE,
    "ro_pin_skips_unshare": MUTANT_RO_PIN_SKIPS_UNSHARE,
    "rw_pin_skips_cow_break": MUTANT_RW_PIN_SKIPS_COW_BREAK,
    "poke_writes_pagecache": MUTANT_POKE_WRITES_PAGECACHE,
    "restore_without_notifier": MUTANT_RESTORE_WITHOUT_NOTIFIER,
    "cow_without_invalidation": MUTANT_COW_WITHOUT_INVALIDATION,
    "ksm_merges_pinned_page": MUTANT_KSM_MERGES_PINNED_PAGE,
    "fork_keeps_swap_exclusive": MUTANT_FORK_KEEPS_SWAP_EXCLUSIVE,
    "split_drops_dirty": MUTANT_SPLIT_DROPS_DIRTY,
    "split_marks_shared_exclusive": MUTANT_SPLIT_MARKS_SHARED_EXCLUSIVE,
    "huge_zero_written_in_place": MUTANT_HUGE_ZERO_WRITTEN_IN_PLACE,
    "split_walk_stops_at_first_pmd": MUTANT_SPLIT_WALK_STOPS_AT_FIRST_PMD,
    "zero_remap_drops_soft_dirty": MUTANT_ZERO_REMAP_DROPS_SOFT_DIRTY,
}
assert _MUTANT_CODE.keys() == MUTANTS.keys(), "every mutant needs a doc and a code"

_OPCODE = {
    _ops.Mmap: OP_MMAP, _ops.Munmap: OP_MUNMAP, _ops.Mprotect: OP_MPROTECT,
    _ops.Madvise: OP_MADVISE, _ops.Read: OP_READ, _ops.Write: OP_WRITE,
    _ops.Fork: OP_FORK, _ops.Exit: OP_EXIT, _ops.File: OP_FILE,
    _ops.FileRead: OP_FREAD, _ops.FileWrite: OP_FWRITE, _ops.State: OP_STATE,
    _ops.Same: OP_SAME, _ops.Pin: OP_PIN, _ops.Poke: OP_POKE, _ops.PinRead: OP_PREAD,
    _ops.PinWrite: OP_PWRITE, _ops.Unpin: OP_UNPIN, _ops.Mirror: OP_MIRROR,
    _ops.Unmirror: OP_UNMIRROR, _ops.DevRead: OP_DREAD, _ops.DevWrite: OP_DWRITE,
    _ops.DevExclusive: OP_DEXCL, _ops.DevAtomic: OP_DATOMIC, _ops.DevEvents: OP_DEVENTS,
    _ops.Lock: OP_LOCK, _ops.Unlock: OP_UNLOCK, _ops.KsmScan: OP_KSM_SCAN,
    _ops.Set: OP_SET, _ops.Split: OP_SPLIT,                         # thp.pyx
    _ops.SplitFolio: OP_SPLIT_FOLIO,                                # folio_split.pyx
    _ops.WpRange: OP_WP_RANGE, _ops.CleanRecord: OP_CLEAN_RECORD,   # dirty.pyx
    _ops.ClearRefs: OP_CLEAR_REFS,                                  # softdirty.pyx
}   # every other op class has no model rules yet: OP_ENOSYS
_PIN_MODE = {_ops.PinMode.R: 0, _ops.PinMode.RW: GUP_WRITE,
             _ops.PinMode.R_LONGTERM: GUP_LONGTERM,
             _ops.PinMode.RW_LONGTERM: GUP_WRITE | GUP_LONGTERM}

_PROT_CODE = {_ops.Prot.NONE: PROT_NONE, _ops.Prot.R: PROT_R, _ops.Prot.RW: PROT_RW}
_PROT_OF_CODE = {v: k for k, v in _PROT_CODE.items()}
_MAPF_BIT = {_ops.MapFlag.PRIVATE: MAPF_PRIVATE, _ops.MapFlag.SHARED: MAPF_SHARED,
             _ops.MapFlag.ANON: MAPF_ANON, _ops.MapFlag.POPULATE: MAPF_POPULATE,
             _ops.MapFlag.PFNMAP: MAPF_PFNMAP}
_ADVICE_CODE = {_ops.Advice.DONTNEED: ADV_DONTNEED, _ops.Advice.DONTFORK: ADV_DONTFORK,
                _ops.Advice.DOFORK: ADV_DOFORK, _ops.Advice.WIPEONFORK: ADV_WIPEONFORK,
                _ops.Advice.KEEPONFORK: ADV_KEEPONFORK,
                _ops.Advice.POPULATE_READ: ADV_POPULATE_READ,
                _ops.Advice.POPULATE_WRITE: ADV_POPULATE_WRITE,
                _ops.Advice.PAGEOUT: ADV_PAGEOUT, _ops.Advice.MERGEABLE: ADV_MERGEABLE,
                _ops.Advice.UNMERGEABLE: ADV_UNMERGEABLE,
                _ops.Advice.HUGEPAGE: ADV_HUGEPAGE, _ops.Advice.NOHUGEPAGE: ADV_NOHUGEPAGE,
                _ops.Advice.COLLAPSE: ADV_COLLAPSE}   # others: ADV_UNSUPPORTED

_ENTRY_KIND = {ENTRY_ZERO: _state.EntryKind.ZERO, ENTRY_ANON: _state.EntryKind.ANON,
               ENTRY_FILE: _state.EntryKind.FILE, ENTRY_DEVEXCL: _state.EntryKind.DEVEXCL,
               ENTRY_SWAP: _state.EntryKind.SWAP, ENTRY_HZERO: _state.EntryKind.HZERO,
               ENTRY_PFN: _state.EntryKind.PFN}
# `set KEY VALUE`: key -> (SET_* code, value word -> code; None: the number itself)
_SET_CODE = {
    _ops.SetKey.THP: (SET_THP, {"never": THP_NEVER, "madvise": THP_MADVISE,
                                "always": THP_ALWAYS}),
    _ops.SetKey.THP_ZERO: (SET_THP_ZERO, {"0": 0, "1": 1}),
    _ops.SetKey.THP_ALLOC: (SET_THP_ALLOC, {"ok": 0, "fail": 1}),
    _ops.SetKey.MAX_PTES_NONE: (SET_MAX_PTES_NONE, None),
}
_EVENT_KIND = {MMU_NOTIFY_UNMAP: "unmap", MMU_NOTIFY_CLEAR: "clear",
               MMU_NOTIFY_PROTECTION_VMA: "protection_vma",
               MMU_NOTIFY_PROTECTION_PAGE: "protection_page", MMU_NOTIFY_EXCLUSIVE: "exclusive",
               MMU_NOTIFY_RELEASE: "release", MMU_NOTIFY_SOFT_DIRTY: "soft_dirty"}
_MIRROR_PERM = {MIRROR_R: "r", MIRROR_RW: "rw", MIRROR_ATOMIC_RW: "atomic"}
_U64 = (1 << 64) - 1
_YES = _results.text_result("yes")
_NO = _results.text_result("no")

_INV_NAMES = {
    INV_OUTSIDE_VMA: "no entry outside a VMA",
    INV_ZERO_WRITABLE: "zero page never writable (the only special entry)",
    INV_FREE_MAPPED: "no entry maps a free or unknown frame",
    INV_I1: "I1 writable anon => AnonExclusive",
    INV_I2: "I2 AnonExclusive => mapped at most once",
    INV_REFCOUNT: "refcount == mappings + page-cache reference + pins",
    INV_MAPCOUNT: "mapcount == PTEs mapping the frame",
    INV_PAGECACHE: "PG_pagecache <=> in exactly one page cache",
    INV_VMA_ORDER: "VMAs sorted, non-empty, non-overlapping",
    INV_FREE_LIST: "free list length == nr_free",
    INV_ZERO_COUNTS: "the zero page carries no counts",
    INV_TABLE_BITMAP: "page-table used bitmap == non-none entries",
    INV_PINCOUNT: "pincount == live pins holding the frame",
    INV_I3: "I3 pinned anon => AnonExclusive",
    INV_DX_PAGE: "a non-present entry is swap, or device-exclusive on an AnonExclusive anon page",
    INV_MIRROR_PROC: "mirror entries only for live processes",
    INV_MIRROR_SUB: "a live subscription of the device covers each mirror entry",
    INV_MIRROR_FRAME: "a mirror entry maps the frame of the CPU entry (present or DX)",
    INV_MIRROR_PERM: "mirror rw => CPU entry writable or DX; atomic => DX",
    INV_MIRROR_COUNT: "device nr_mirror == its mirror entries",
    INV_EVENT_SUB: "a pending event names a subscription of its device, range inside it",
    INV_SUB_INDEX: "an mm's subscription index == its live subscriptions (seq >= 0)",
    INV_SWAP_ENTRY: "a swap entry / swapped file page names a slot in use",
    INV_SWAP_COUNT: "slot count == swap entries + swapped file pages referencing it",
    INV_SWAP_FREE: "a slot nothing references or caches is free (free list == nr_free)",
    INV_SWAP_CACHE: "slot.cache <=> PG_swapcache folio linked back to that slot",
    INV_SWP_EXCL: "a swap entry's exclusive marker => its slot's only reference, uncached",
    INV_KSM: "a KSM page is anon and never AnonExclusive",
    INV_THP_PMD: "a huge PMD lies in one private anon VMA and maps a THP head or the huge zero folio",
    INV_THP_COUNTS: "THP entire_mapcount == huge PMDs mapping it; tails are tails",
    INV_THP_MMID: "THP MM-id total == large mapcount",
    INV_PFNMAP: "pfn entries (the linear pgoff's device pfn; special PMDs 2 MiB aligned, "
                "wholly inside) only in pfnmap VMAs, which hold no other kind",
}


def _page_view(uint64_t code, frame):
    """PageView of a STATE_* code (the same words `state` prints)."""
    return _state.PageView(_ENTRY_KIND[code & 0xf],
                           _state.Level.PUD if code & STATE_PUD else
                           _state.Level.PMD if code & STATE_PMD else _state.Level.PTE,
                           bool(code & STATE_WRITABLE), bool(code & STATE_DIRTY),
                           bool(code & STATE_SOFT_DIRTY), bool(code & STATE_EXCL), frame)


cdef inline int64_t _num(object x, str what) except? -1:
    """An op's page number/count as int64: negative is a harness bug, huge clamps."""
    if x < 0:
        raise ValueError(f"{what}={x:#x} must be >= 0 (pages); fix the op construction")
    return x if x < NUM_CLAMP else NUM_CLAMP


cdef inline int64_t _handle(str name, str prefix="h") except -1:
    """k of a pin handle "h{k}" or subscription "m{k}" (a k never created: EINVAL at
    run time)."""
    if len(name) < 2 or name[0] != prefix or not name[1:].isdigit():
        raise ValueError(f"name {name!r} must be {prefix}<k>, e.g. {prefix}1")
    k = int(name[1:])
    return k if k < NUM_CLAMP else NUM_CLAMP


cdef inline int64_t _u64_bits(object x):
    """A 64-bit value (wrapping modulo 2^64) as the int64 with the same bits."""
    x = x & _U64
    return x - (1 << 64) if x >= (1 << 63) else x


@cython.final
@cython.no_gc_clear
cdef class ImplMachine:
    """The kernel-shaped model: same public API as the reference machine (api.Machine)."""

    cdef machine_t *m
    cdef dict _procs            # "p{k}" -> k
    cdef dict _files            # file name -> index into machine.files
    cdef dict _file_names       # index -> file name (named files only)
    cdef dict _devs             # device name -> slot index into machine.devs
    cdef list _dev_names        # slot index -> device name
    cdef dict _state_results    # STATE_* code -> Result
    cdef dict _flag_bits        # frozenset of MapFlag -> MAPF_* bits
    cdef mm_op_t *_ops
    cdef mm_res_t *_res
    cdef int64_t _cap
    cdef readonly object mutant

    def __cinit__(self, mutant=None):
        self.m = NULL
        self._ops = NULL
        self._res = NULL
        self._cap = 0
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError(f"unknown mutant {mutant!r}; known mutants: "
                             f"{', '.join(sorted(MUTANTS))} (or None for the faithful model)")
        self.mutant = mutant
        self.m = <machine_t *>malloc(sizeof(machine_t))
        if self.m == NULL:
            raise MemoryError("cannot allocate the impl machine")
        self.m.kmem.bytes = 0
        self.m.kmem.oom = 0
        self.m.kmem.pool = NULL
        self.m.kmem.nr_pool = 0
        self.m.procs = NULL
        self.m.nr_procs = 0
        self.m.cap_procs = 0
        self.m.files = NULL
        self.m.nr_files = 0
        self.m.cap_files = 0
        self.m.last_anon_vma = 0
        self.m.pins = NULL
        self.m.nr_pins = 0
        self.m.cap_pins = 0
        self.m.subs = NULL
        self.m.nr_subs = self.m.cap_subs = 0
        self.m.devs = NULL
        self.m.nr_devs = self.m.cap_devs = 0
        self.m.drained = NULL
        self.m.nr_drained = self.m.cap_drained = 0
        self.m.mutant = _MUTANT_CODE[mutant] if mutant is not None else MUTANT_NONE
        self.m.bits = NULL                      # clean_record results (dirty.pyx)
        self.m.nr_bits = self.m.cap_bits = 0
        self.m.warnings = 0                     # WARN_ONs reached (dirty.pyx)
        self.m.thp_mode = THP_MADVISE               # sysfs defaults (thp.md "Settings")
        self.m.thp_zero = 1
        self.m.thp_alloc_fail = 0
        self.m.max_ptes_none = HPAGE_PMD_NR - 1
        self.m.last_mm_id = 0
        self.m.mem.sections = NULL
        self.m.mem.nr_sections = 0
        swap_info_init(&self.m.swap)
        if mem_map_init(&self.m.mem, &self.m.kmem) < 0:
            raise MemoryError("cannot allocate the frame table")
        cdef mm_t *p0 = mm_alloc(self.m)
        if p0 == NULL or _proc_add(self.m, p0) != 0:
            raise MemoryError("cannot allocate process p0")
        self._procs = {}
        self._files = {}
        self._file_names = {}
        self._devs = {}
        self._dev_names = []
        self._state_results = {ENTRY_NONE: _results.text_result("none")}
        self._flag_bits = {}

    def __dealloc__(self):
        cdef int32_t i
        cdef machine_t *m = self.m
        if m == NULL:
            return
        hmm_destroy(m)                          # first: exits then fire no notifiers
        for i in range(m.nr_procs):
            if m.procs[i].alive:
                exit_mmap(m, m.procs[i])
            kfree(&m.kmem, m.procs[i], sizeof(mm_t))
        kfree(&m.kmem, m.procs, m.cap_procs * sizeof(mm_t *))
        for i in range(m.nr_files):
            shmem_evict_inode(m, m.files[i])
            kfree(&m.kmem, m.files[i], sizeof(shmem_t))
        kfree(&m.kmem, m.files, m.cap_files * sizeof(shmem_t *))
        pins_destroy(m)
        swap_info_destroy(&m.swap, &m.kmem)
        mem_map_destroy(&m.mem, &m.kmem)
        kfree(&m.kmem, m.bits, m.cap_bits * sizeof(int64_t))   # clean_record results
        table_pool_trim(&m.kmem, 0)
        free(m)
        free(self._ops)
        free(self._res)

    # --- encoding ----------------------------------------------------------------

    cdef int32_t _proc(self, str name) except -2:
        cdef object k = self._procs.get(name)
        if k is None:
            if len(name) < 2 or name[0] != "p" or not name[1:].isdigit():
                raise ValueError(f"process name {name!r} must be p<k>, e.g. p0")
            k = int(name[1:])
            if k > 0x7fffffff:
                k = 0x7fffffff                  # never created: ESRCH
            self._procs[name] = k
        return k

    cdef int32_t _dev(self, str name) except -1:
        """Slot index of a device name d<k>; devices exist implicitly (first sight)."""
        cdef object idx = self._devs.get(name)
        cdef int32_t i
        if idx is None:
            if len(name) < 2 or name[0] != "d" or not name[1:].isdigit():
                raise ValueError(f"device name {name!r} must be d<k>, e.g. d0")
            i = hmm_dev_new(self.m)
            if i < 0:
                raise MemoryError("cannot allocate a device slot")
            self._devs[name] = i
            self._dev_names.append(name)
            return i
        return idx

    cdef int32_t _file(self, str name) except -1:
        """Index of a file name, registering a not-yet-created slot on first sight."""
        cdef object idx = self._files.get(name)
        cdef int32_t i
        if idx is None:
            i = shmem_new(self.m, 0, False)
            if i < 0:
                raise MemoryError("cannot allocate a shmem file slot")
            self._files[name] = i
            self._file_names[i] = name
            return i
        return idx

    cdef int _encode(self, object op, mm_op_t *o) except -1:
        cdef int32_t code = _OPCODE.get(type(op), OP_ENOSYS)
        o.code = code
        o.proc = -1
        o.a0 = o.a1 = o.a2 = o.a3 = 0
        o.a4 = o.a5 = -1
        if code == OP_ENOSYS or code == OP_KSM_SCAN:
            return 0
        if code == OP_SET:
            key, words = _SET_CODE[op.key]
            o.a0 = key
            o.a1 = words[op.value] if words is not None else _num(int(op.value, 0), "value")
            return 0
        if code == OP_FILE:
            o.a0 = self._file(op.file)
            o.a1 = _num(op.npages, "npages")
            o.a2 = 1 if op.devmem else 0
            return 0
        if code == OP_WP_RANGE or code == OP_CLEAN_RECORD:   # a0 file, a1 pgoff, a2 npages
            o.a0 = self._file(op.file)
            o.a1 = _num(op.pgoff, "pgoff")
            o.a2 = _num(op.npages, "npages")
            return 0
        if code == OP_FREAD or code == OP_FWRITE:
            o.a0 = self._file(op.file)
            o.a1 = _num(op.pgoff, "pgoff")
            if code == OP_FWRITE:
                o.a2 = _u64_bits(op.value)
            return 0
        if code == OP_UNMIRROR:
            o.a0 = _handle(op.sub, "m")
            return 0
        if code == OP_DEVENTS:
            o.a0 = self._dev(op.dev)
            return 0
        if code == OP_PREAD or code == OP_PWRITE or code == OP_UNPIN:
            o.a0 = _handle(op.pin)
            if code != OP_UNPIN:
                o.a1 = _num(op.index, "index")
            if code == OP_PWRITE:
                o.a2 = _u64_bits(op.value)
            return 0
        o.proc = self._proc(op.proc)
        if code == OP_READ or code == OP_STATE or code == OP_LOCK or code == OP_UNLOCK \
                or code == OP_SPLIT or code == OP_SPLIT_FOLIO:
            o.a0 = _num(op.vpn, "vpn")
        elif code >= OP_MIRROR and code <= OP_DATOMIC:
            o.a0 = self._dev(op.dev)
            o.a1 = _num(op.vpn, "vpn")
            if code == OP_MIRROR:
                o.a2 = _num(op.npages, "npages")
            elif code == OP_DWRITE:
                o.a2 = _u64_bits(op.value)
            elif code == OP_DATOMIC:
                o.a2 = _u64_bits(op.add)
        elif code == OP_WRITE:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _u64_bits(op.value)
        elif code == OP_MMAP:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _num(op.npages, "npages")
            o.a2 = _PROT_CODE[op.prot]
            bits = self._flag_bits.get(op.flags)
            if bits is None:
                bits = 0
                for f in op.flags:
                    bits |= _MAPF_BIT[f]
                self._flag_bits[op.flags] = bits
            o.a3 = bits
            if op.file is not None:
                o.a4 = self._file(op.file)
            if op.off is not None:
                o.a5 = _num(op.off, "off")
        elif code == OP_MUNMAP:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _num(op.npages, "npages")
        elif code == OP_MPROTECT:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _num(op.npages, "npages")
            o.a2 = _PROT_CODE[op.prot]
        elif code == OP_MADVISE:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _num(op.npages, "npages")
            o.a2 = _ADVICE_CODE.get(op.advice, ADV_UNSUPPORTED)
        elif code == OP_PIN:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _num(op.npages, "npages")
            o.a2 = _PIN_MODE[op.mode]
        elif code == OP_POKE:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = _u64_bits(op.value)
        elif code == OP_SAME:
            o.a0 = _num(op.vpn, "vpn")
            o.a1 = self._proc(op.proc2)
            o.a2 = _num(op.vpn2, "vpn2")
        return 0

    cdef object _decode(self, mm_res_t *r):
        cdef int32_t kind = r.kind
        if kind == RES_OK:
            return _results.OK
        if kind == RES_VALUE:
            return _results.value(r.payload)
        if kind == RES_ERRNO:
            return _results.errno(_results.Errno(r.payload))
        if kind == RES_SIGNAL:
            return _results.signal(_results.Signal(r.payload))
        if kind == RES_PROC:
            return _results.name(f"p{r.payload}")
        if kind == RES_PIN:
            return _results.name(f"h{r.payload}")
        if kind == RES_SUB:
            return _results.name(f"m{r.payload}")
        if kind == RES_BITS:                    # clean_record: count, then the set bits
            return _results.text_result(self._bits_text(r.payload >> 32, r.payload & 0xffffffff))
        if kind == RES_EVENTS:
            items = self._event_texts(r.payload >> 32, r.payload & 0xffffffff)
            return _results.text_result(" ".join(items) if items else "none")
        if kind == RES_SAME:
            return _YES if r.payload else _NO
        res = self._state_results.get(r.payload)
        if res is None:
            res = _results.text_result(_page_view(r.payload, None).describe())
            self._state_results[r.payload] = res
        return res

    cdef str _bits_text(self, int64_t first, int64_t n):
        """clean_record's `COUNT bits=a,b,...` from machine.bits[first, first + n)."""
        cdef int64_t i
        bits = ",".join(hex(self.m.bits[first + i]) for i in range(1, n))
        return f"{self.m.bits[first]:#x} bits={bits or 'none'}"

    cdef list _event_texts(self, int64_t first, int64_t n):
        """`devents` items of events drained[first, first + n) (or of a device's
        pending list), sorted as state.event_sort_key orders them."""
        return self._events_text(&self.m.drained[first], n)

    cdef list _events_text(self, mmu_event_t *ev, int64_t n):
        cdef int64_t i
        items = []
        for i in range(n):
            owner = self._dev_names[ev[i].owner] if ev[i].owner != NO_OWNER else None
            items.append(_state.event_text(f"m{ev[i].sub + 1}", _EVENT_KIND[ev[i].kind],
                                           ev[i].start, ev[i].end, owner))
        items.sort(key=_state.event_sort_key)
        return items

    cdef int _reserve(self, int64_t n) except -1:
        cdef mm_op_t *o
        cdef mm_res_t *r
        if n <= self._cap:
            return 0
        o = <mm_op_t *>realloc(self._ops, n * sizeof(mm_op_t))
        if o == NULL:
            raise MemoryError(f"cannot allocate an op buffer of {n} ops")
        self._ops = o
        r = <mm_res_t *>realloc(self._res, n * sizeof(mm_res_t))
        if r == NULL:
            raise MemoryError(f"cannot allocate a result buffer of {n} ops")
        self._res = r
        self._cap = n
        return 0

    # --- public API (api.Machine) ----------------------------------------------------

    def run_batch(self, ops):
        """Run ops in order in one nogil loop; return their Results (a list)."""
        cdef int64_t n = len(ops), i, done
        self._reserve(n if n > 0 else 1)
        for i in range(n):
            self._encode(ops[i], &self._ops[i])
        with nogil:
            done = run_ops(self.m, self._ops, self._res, n)
            table_pool_trim(&self.m.kmem, 0)    # the quicklist only serves within a batch
        if self.m.kmem.oom:
            self.m.nr_drained = 0
            self.m.nr_bits = 0
            raise MemoryError(f"impl out of memory at op {done} of the batch "
                              f"({self.m.kmem.bytes:#x} bytes held); the machine is unusable")
        results = [self._decode(&self._res[i]) for i in range(n)]
        self.m.nr_drained = 0                   # the devents results are decoded
        self.m.nr_bits = 0                      # and the clean_record ones
        if self._cap > 4096:                    # do not keep a huge op buffer around
            free(self._ops)
            free(self._res)
            self._ops = NULL
            self._res = NULL
            self._cap = 0
        return results

    def execute(self, op):
        """Run one op; errno and signal results are values, never exceptions."""
        self._reserve(1)
        self._encode(op, &self._ops[0])
        do_op(self.m, &self._ops[0], &self._res[0])
        table_pool_trim(&self.m.kmem, TABLE_POOL_KEEP)
        if self.m.kmem.oom:
            self.m.nr_drained = 0
            self.m.nr_bits = 0
            raise MemoryError(f"impl out of memory running {op!r}")
        res = self._decode(&self._res[0])
        self.m.nr_drained = 0
        self.m.nr_bits = 0
        return res

    def check_invariants(self):
        """Raise api.InvariantError naming the first broken invariant (values in hex)."""
        cdef inv_report_t rep
        with nogil:
            check_machine(self.m, &rep)
        if self.m.kmem.oom:
            raise MemoryError("impl out of memory while checking invariants")
        if rep.code == INV_OK:
            return
        where = f"p{rep.proc} vpn={rep.vpn:#x} " if rep.proc >= 0 else ""
        raise InvariantError(
            f"impl invariant broken: {_INV_NAMES[rep.code]}: {where}pfn={rep.pfn:#x} "
            f"expected={rep.expected:#x} got={rep.got:#x}")

    def snapshot(self):
        """RawSnapshot with pfn ints as frame keys (the zero page as state.ZERO_KEY) and
        ("slot", s) tuples as swap-slot keys."""
        cdef machine_t *m = self.m
        cdef int32_t k, i
        cdef int64_t j, n
        cdef mm_t *mm
        cdef vma_t *v
        cdef entry_buf_t buf
        cdef cache_page_t *cache
        cdef uint32_t pfn, s
        cdef folio_t *folio
        cdef swap_slot_t *slot
        raw = _state.RawSnapshot()
        referenced = set()
        thps = set()
        slots = set()
        for k in range(m.nr_procs):
            mm = m.procs[k]
            if not mm.alive:
                continue
            pv = _state.ProcView()
            for i in range(mm.nr_vmas):
                v = &mm.vmas[i]
                name = self._file_names.get(v.file) if v.file != NO_FILE else None
                flags = []
                if v.madv & VM_DONTCOPY:
                    flags.append("dontfork")
                if v.madv & VM_HUGEPAGE:
                    flags.append("hugepage")
                if v.madv & VM_NOHUGEPAGE:
                    flags.append("nohugepage")
                if v.madv & VM_MERGEABLE:
                    flags.append("mergeable")
                if v.madv & VM_WIPEONFORK:
                    flags.append("wipeonfork")
                if v.softdirty:
                    flags.append("softdirty")   # VM_SOFTDIRTY
                if v.pfnmap:
                    flags.append("pfnmap")      # VM_PFNMAP|VM_IO|VM_DONTEXPAND
                pv.vmas.append(_state.VmaView(
                    v.start, v.end, _PROT_OF_CODE[v.prot], bool(v.shared), name,
                    v.pgoff if name is not None else 0, tuple(sorted(flags)), v.anon_vma != 0))
            buf.items = NULL
            buf.n = buf.cap = 0
            buf.oom = 0
            collect_entries(mm, &buf)
            if buf.oom:
                entry_buf_free(&buf)
                raise MemoryError("impl out of memory while taking a snapshot")
            for j in range(buf.n):
                pte = buf.items[j].pte
                if pte_is_dev(pte):                  # a device page: ("dev", F, pgoff)
                    i = find_vma(mm, buf.items[j].vpn)
                    key = ("dev", self._file_names[mm.vmas[i].file],
                           linear_page_index(&mm.vmas[i], buf.items[j].vpn))
                    pv.pages[buf.items[j].vpn] = _page_view(
                        pud_state_code(pte) if buf.items[j].level == 2 else
                        pmd_state_code(m, pte) if pmd_trans_huge(pte) else pte_state_code(m, pte),
                        key)
                    continue
                if pmd_trans_huge(pte):              # a huge PMD: one entry at haddr
                    pfn = pte_pfn(pte)
                    if is_hzero_pfn(&m.mem, pfn):
                        key = _state.HZERO_KEY
                    else:
                        key = ("thp", pfn)
                        thps.add(pfn)
                    pv.pages[buf.items[j].vpn] = _page_view(pmd_state_code(m, pte), key)
                    continue
                if pte_special(pte):
                    key = _state.ZERO_KEY
                elif is_swap_pte(pte):
                    key = ("slot", swp_offset(pte))
                    slots.add(swp_offset(pte))
                else:
                    key = pte_pfn(pte)
                    referenced.add(key)
                pv.pages[buf.items[j].vpn] = _page_view(pte_state_code(m, pte), key)
            entry_buf_free(&buf)
            raw.procs[f"p{k}"] = pv
        for i in range(m.nr_pins):
            if m.pins[i].live:
                keys = []
                for j in range(m.pins[i].npages):
                    pfn = m.pins[i].pfns[j]
                    if pfn == 0:
                        keys.append(_state.ZERO_KEY)
                    elif is_hzero_pfn(&m.mem, pfn):
                        keys.append(_state.HZERO_KEY)
                    else:
                        keys.append(pfn)
                        referenced.add(pfn)
                raw.pins[f"h{i + 1}"] = keys
        for i, fname in self._file_names.items():
            if not m.files[i].live:
                continue
            if m.files[i].devmem:                    # a BO: its values, no page cache
                raw.devmem[fname] = self._devmem_view(m.files[i])
                continue
            pages = {}
            n = m.files[i].nr_pages + m.files[i].nr_swapped
            if n:
                cache = <cache_page_t *>malloc(n * sizeof(cache_page_t))
                if cache == NULL:
                    raise MemoryError("impl out of memory while taking a snapshot")
                n = shmem_collect(m.files[i], cache, n)
                for j in range(n):
                    if cache[j].pfn == 0:                # paged out: its swap slot
                        pages[cache[j].pgoff] = ("slot", cache[j].slot)
                        slots.add(cache[j].slot)
                    else:
                        pages[cache[j].pgoff] = cache[j].pfn
                        referenced.add(cache[j].pfn)
                free(cache)
            raw.files[fname] = pages
        self._snapshot_devices(raw, referenced)
        raw.warnings = m.warnings
        for s in slots:
            slot = swap_slot(&m.swap, s)
            if slot.cache != 0:
                referenced.add(slot.cache)
            raw.slots[("slot", s)] = _state.SlotView(slot.count, slot.value,
                                                     slot.cache if slot.cache != 0 else None)
        for key in referenced:
            pfn = key
            folio = pfn_folio(&m.mem, pfn)
            if folio.flags & (PG_head | PG_tail):   # a THP subpage: map, the folio's pins
                h = pfn & ~(<uint32_t>HPAGE_PMD_MASK)
                thps.add(h)
                raw.frames[key] = _state.FrameView(
                    folio.mapcount, pfn_folio(&m.mem, h).pincount, folio.value,
                    folio_test_locked(pfn_folio(&m.mem, h)), False,
                    ("thp", h), pfn - h)
                continue
            raw.frames[key] = _state.FrameView(folio.mapcount, folio.pincount, folio.value,
                                               folio_test_locked(folio),
                                               (folio.flags & PG_ksm) != 0)
        for h in thps:
            folio = pfn_folio(&m.mem, h)
            vals = []
            for j in range(HPAGE_PMD_NR):
                if pfn_folio(&m.mem, h + j).value != 0:
                    vals.append((j, pfn_folio(&m.mem, h + j).value))
            raw.folios[("thp", h)] = _state.ThpView(thp_entire(&m.mem, h)[0], folio.pincount,
                                                    tuple(vals), folio_test_locked(folio))
        return raw

    cdef _devmem_view(self, shmem_t *f):
        """DevmemView of BO f: size, non-zero values ascending, tracked."""
        cdef int64_t n = f.nr_vals, j
        cdef int64_t *pgoffs
        cdef uint64_t *vals
        values = []
        if n:
            pgoffs = <int64_t *>malloc(n * sizeof(int64_t))
            vals = <uint64_t *>malloc(n * sizeof(uint64_t))
            if pgoffs == NULL or vals == NULL:
                free(pgoffs)
                free(vals)
                raise MemoryError("impl out of memory while taking a snapshot")
            n = devmem_collect(f, pgoffs, vals, n)
            values = [(pgoffs[j], vals[j]) for j in range(n)]
            free(pgoffs)
            free(vals)
        return _state.DevmemView(f.size, tuple(values), bool(f.tracked))

    cdef _snapshot_devices(self, raw, set referenced):
        """Devices with mirror entries or pending events, and the live subscriptions."""
        cdef machine_t *m = self.m
        cdef hmm_dev_t *d
        cdef mmu_interval_sub_t *s
        cdef int32_t i, p
        cdef int64_t j
        cdef entry_buf_t buf
        cdef uint32_t pfn
        for i in range(m.nr_devs):
            d = m.devs[i]
            if d.nr_mirror == 0 and d.nr_events == 0:
                continue
            dv = _state.DeviceView()
            for p in range(d.cap_pt):
                if d.pt[p] == NULL:
                    continue
                buf.items = NULL
                buf.n = buf.cap = 0
                buf.oom = 0
                walk_pte_runs(d.pt[p], 0, PGTABLE_SPAN, _collect_run, &buf)
                if buf.oom:
                    entry_buf_free(&buf)
                    raise MemoryError("impl out of memory while taking a snapshot")
                for j in range(buf.n):
                    pfn = pte_pfn(buf.items[j].pte)
                    if pfn == 0:
                        key = _state.ZERO_KEY
                    elif is_hzero_pfn(&m.mem, pfn):
                        key = _state.HZERO_KEY
                    else:
                        key = pfn
                        referenced.add(key)
                    dv.mirror[(f"p{p}", buf.items[j].vpn)] = (
                        key, _MIRROR_PERM[buf.items[j].pte & MIRROR_PERM_MASK])
                entry_buf_free(&buf)
            dv.events = self._events_text(d.events, d.nr_events)
            raw.devices[self._dev_names[i]] = dv
        for i in range(m.nr_subs):
            s = &m.subs[i]
            if s.live:
                raw.subs[f"m{i + 1}"] = _state.SubView(self._dev_names[s.dev], f"p{s.proc}",
                                                       s.start, s.end, s.seq)

    # --- measurements -------------------------------------------------------------------

    def memory_bytes(self):
        """Bytes held by the C structures (tables, frame sections, VMAs, caches, procs)."""
        return self.m.kmem.bytes + sizeof(machine_t)

    def frames_in_use(self):
        """Allocated frames (zero page excluded): all of them are free again once
        every process exited and no named file holds pages."""
        return (self.m.mem.nr_frames - 1 - self.m.mem.nr_free
                - (HPAGE_PMD_NR if self.m.mem.hzero_pfn != 0 else 0))   # the huge zero folio

    def page_tables(self):
        """Page-table pages held by live processes (PGDs included)."""
        cdef int32_t k
        cdef int64_t n = 0
        for k in range(self.m.nr_procs):
            if self.m.procs[k].alive:
                n += pgtable_count(self.m.procs[k].pgd)
        return n
