# Shared constants of the impl: entry bits, limits, op and result codes.
#
# Units: every address and length is in 4 KiB pages (vpn), file offsets in pages
# (pgoff). A pfn indexes the frame table (folio.pxd); pfn 0 is the zero page.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t

cdef enum:
    # --- paging geometry (x86-64, 4 levels, arch/x86/include/asm/pgtable_64_types.h)
    PTRS_PER_TABLE = 512
    TABLE_BYTES = 4096           # one page-table page: 512 x 8-byte entries
    TABLE_HDR_WORDS = 8          # before the entries: a 512-bit map of non-none entries
    TABLE_ALLOC_BYTES = 4096 + 64
    TABLE_ALIGN = 64             # upper entries keep _PAGE_TABLE in the low 6 bits
    TABLE_POOL_KEEP = 256        # zeroed tables kept for reuse after an op (see kmem.pyx)
    PTE_SHIFT = 0                # vpn bits 0..8 index the PTE table
    PMD_SHIFT = 9                # vpn bits 9..17 index the PMD table
    PUD_SHIFT = 18               # vpn bits 18..26 index the PUD table
    PGDIR_SHIFT = 27             # vpn bits 27..35 index the PGD
    TABLE_MASK = 511
    MMAP_MIN_PAGES = 16          # lowest vpn an address pick returns (hints round up to 64 KiB)
    HPAGE_PMD_NR = 512           # address alignment of huge-capable anon mmaps
    HPAGE_PMD_MASK = 511         # vpn & HPAGE_PMD_MASK: subpage index in a PMD block
    HPAGE_PUD_NR = 1 << 18       # pages a PUD leaf maps (1 GiB: one slot of the PUD table)
    HPAGE_PUD_MASK = (1 << 18) - 1
    TABLE_BASE_ALIGN = 256       # table allocations: entries at base + 64 keep bit 7 clear

    # --- present entry bits (arch/x86/include/asm/pgtable_types.h layout)
    _PAGE_PRESENT = 1 << 0
    _PAGE_RW = 1 << 1
    _PAGE_USER = 1 << 2
    _PAGE_ACCESSED = 1 << 5      # young
    _PAGE_DIRTY = 1 << 6
    _PAGE_PSE = 1 << 7           # huge leaf at PMD level (pmd_trans_huge; thp.pyx) or PUD level
    _PAGE_SPECIAL = 1 << 9       # _PAGE_BIT_SOFTW1: no struct page (zero page)
    _PAGE_SOFT_DIRTY = 1 << 11   # _PAGE_BIT_SOFTW3
    _PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED
    PTE_PFN_SHIFT = 12           # frame number in bits 12..51
    PTE_FLAGS_MASK = 0xfff

    # --- non-present encodings: a swap entry keeps present = 0 and stores its type in
    # bits 1..5, its offset from bit 12 on (include/linux/swapops.h). Two types exist:
    # SWP_TYPE_ZRAM (the one swap device: offset = the swap slot, never 0: slot 0 is
    # the header page) and SWP_DEVICE_EXCLUSIVE (6.15+: one type, offset = the pfn).
    # Type bits are even, so they never touch _PAGE_RW: pte_write() of a non-present
    # entry is false; nor _PAGE_DIRTY or _PAGE_SPECIAL.
    SWP_TYPE_SHIFT = 1
    SWP_TYPE_MASK = 0x1f
    SWP_TYPE_ZRAM = 0                # swap type 0: the first (only) swapon'd device
    SWP_DEVICE_EXCLUSIVE = 0x1e
    _PAGE_SWP_SOFT_DIRTY = 1 << 7    # x86 keeps the soft-dirty bit of a swap PTE in _PAGE_PSE
    _PAGE_SWP_EXCLUSIVE = 1 << 8     # pte_swp_exclusive: the page was PageAnonExclusive

    # --- folio flags (include/linux/page-flags.h)
    PG_anon = 1 << 0             # folio_test_anon
    PG_anon_exclusive = 1 << 1   # PageAnonExclusive
    PG_reserved = 1 << 2         # the zero page
    PG_free = 1 << 3             # on the free list
    PG_pagecache = 1 << 4        # in a shmem file's page cache (holds one ref)
    PG_locked = 1 << 5           # folio_lock held (by a `lock` op); cleared when freed
    PG_ksm = 1 << 6              # folio_test_ksm: a merged KSM page (anon, never exclusive)
    PG_dirty = 1 << 7            # stored to since it was read in (decides shmem pageout)
    PG_swapcache = 1 << 8        # in the swap cache (holds one ref; swap.pxd finds the slot)
    PG_ksm_stable = 1 << 9       # a KSM frame with a stable-tree node (merges go into it)
    PG_head = 1 << 10            # the head record of a THP (order-9 folio: 512 frames)
    PG_tail = 1 << 11            # a tail record of a THP (the head is pfn & ~511)
    PG_mm_shared = 1 << 12       # THP head: FOLIO_MM_IDS_SHARED_BIT ("maybe mapped shared")

    # --- GUP (mm/gup.c)
    PIN_MAX_PAGES = 1 << 18      # pages per pin: 1 GiB, io_uring's limit per buffer

    # --- frame table sections (SPARSEMEM-style mem_map chunks that never move)
    SECTION_SHIFT = 16
    SECTION_FRAMES = 1 << 16
    SECTION_MASK = (1 << 16) - 1

    # --- VMA fields
    PROT_NONE = 0
    PROT_R = 1
    PROT_RW = 3
    VM_DONTCOPY = 1 << 0         # MADV_DONTFORK
    VM_WIPEONFORK = 1 << 1       # MADV_WIPEONFORK
    VM_MERGEABLE = 1 << 2        # MADV_MERGEABLE: ksmd scans the VMA
    VM_HUGEPAGE = 1 << 3         # MADV_HUGEPAGE
    VM_NOHUGEPAGE = 1 << 4       # MADV_NOHUGEPAGE

    # --- THP settings (`set`): machine.thp_mode
    THP_NEVER = 0
    THP_MADVISE = 1
    THP_ALWAYS = 2
    SET_THP = 0                  # `set` keys (a0 of OP_SET; a1 the value code)
    SET_THP_ZERO = 1
    SET_THP_ALLOC = 2
    SET_MAX_PTES_NONE = 3
    NO_FILE = -1                 # vma.file of a private anon VMA

    # --- mmap flag bits of an encoded op (ops.MapFlag)
    MAPF_PRIVATE = 1 << 0
    MAPF_SHARED = 1 << 1
    MAPF_ANON = 1 << 2
    MAPF_POPULATE = 1 << 3
    MAPF_PFNMAP = 1 << 4

    # --- madvise advices (ops.Advice); unsupported ones are ADV_UNSUPPORTED
    ADV_UNSUPPORTED = 0
    ADV_DONTNEED = 1
    ADV_DONTFORK = 2
    ADV_DOFORK = 3
    ADV_WIPEONFORK = 4
    ADV_KEEPONFORK = 5
    ADV_POPULATE_READ = 6
    ADV_POPULATE_WRITE = 7
    ADV_PAGEOUT = 8
    ADV_MERGEABLE = 9
    ADV_UNMERGEABLE = 10
    ADV_HUGEPAGE = 11
    ADV_NOHUGEPAGE = 12
    ADV_COLLAPSE = 13

    FAULT_AROUND_PAGES = 16      # fault_around_bytes = 64 KiB

    # --- fault flags and results (include/linux/mm_types.h vm_fault_t)
    FAULT_FLAG_WRITE = 1 << 0
    FAULT_FLAG_UNSHARE = 1 << 1  # GUP R/O pin: make the page exclusive, keep it read-only
    VM_FAULT_OK = 0
    VM_FAULT_SIGBUS = 1
    VM_FAULT_OOM = 2
    VM_FAULT_FALLBACK = 3        # a huge-PMD handler declined: continue at PTE level

    # --- op codes of the batch encoding (syscall.pyx dispatches on them)
    OP_ENOSYS = 0
    OP_MMAP = 1
    OP_MUNMAP = 2
    OP_MPROTECT = 3
    OP_MADVISE = 4
    OP_READ = 5
    OP_WRITE = 6
    OP_FORK = 7
    OP_EXIT = 8
    OP_FILE = 9
    OP_FREAD = 10
    OP_FWRITE = 11
    OP_STATE = 12
    OP_SAME = 13
    OP_PIN = 14
    OP_POKE = 15
    OP_PREAD = 16
    OP_PWRITE = 17
    OP_UNPIN = 18
    OP_MIRROR = 19
    OP_UNMIRROR = 20
    OP_DREAD = 21
    OP_DWRITE = 22
    OP_DEXCL = 23
    OP_DATOMIC = 24
    OP_DEVENTS = 25
    OP_LOCK = 26
    OP_UNLOCK = 27
    OP_KSM_SCAN = 28
    OP_WP_RANGE = 40             # dirty.pyx: wp_shared_mapping_range
    OP_CLEAN_RECORD = 41         # dirty.pyx: clean_record_shared_mapping_range
    OP_CLEAR_REFS = 42           # softdirty.pyx: clear_refs_write(CLEAR_REFS_SOFT_DIRTY)
    OP_SET = 29
    OP_SPLIT = 30
    OP_SPLIT_FOLIO = 31          # folio_split.pyx: split_folio (debugfs split_huge_pages)

    # --- result kinds of the batch encoding (decoded in machine.pyx)
    RES_OK = 0
    RES_VALUE = 1
    RES_ERRNO = 2
    RES_SIGNAL = 3
    RES_PROC = 4                 # payload: index k of the created process "p{k}"
    RES_STATE = 5                # payload: STATE_* code of one entry
    RES_SAME = 6                 # payload: 1 yes / 0 no
    RES_PIN = 7                  # payload: k of the created pin handle "h{k}"
    RES_SUB = 8                  # payload: k of the created subscription "m{k}"
    RES_EVENTS = 9               # payload: first drained event << 32 | count (hmm.pxd)
    RES_BITS = 20                # clean_record: payload first << 32 | n of machine.bits
                                 # (bits[first] = PTEs cleaned, then n - 1 set bits)

    # --- state probe codes: kind in bits 0..3, bits from bit 4 on
    ENTRY_NONE = 0
    ENTRY_ZERO = 1
    ENTRY_ANON = 2
    ENTRY_FILE = 3
    ENTRY_DEVEXCL = 4            # a device-exclusive (non-present) entry
    ENTRY_SWAP = 5               # a swap entry (non-present; STATE_EXCL: its exclusive marker)
    ENTRY_HZERO = 6              # the huge zero page (PMD level only)
    ENTRY_PFN = 7                # a raw device pfn (VM_PFNMAP: devmem.pyx), PTE, special PMD or PUD
    STATE_WRITABLE = 1 << 4
    STATE_DIRTY = 1 << 5
    STATE_SOFT_DIRTY = 1 << 6
    STATE_EXCL = 1 << 7
    STATE_PMD = 1 << 8           # a huge PMD (level pmd)
    STATE_PUD = 1 << 9           # a PUD leaf (level pud: a special PUD of device memory)

    # --- errnos and signals (results.Errno / results.Signal numbers)
    EPERM = 1
    EAGAIN = 11
    ENOENT = 2
    EBADF = 9
    EBUSY = 16
    EOPNOTSUPP = 95
    ESRCH = 3
    EIO = 5
    ENOMEM = 12
    EFAULT = 14
    EEXIST = 17
    EINVAL = 22
    ENOSYS = 38
    EOVERFLOW = 75
    SIGBUS = 7
    SIGSEGV = 11

    # --- runtime mutants (ImplMachine(mutant=...)); 0 = faithful model
    # (machine.pyx MUTANTS documents each one; each is tested in one rule only)
    MUTANT_NONE = 0
    MUTANT_NO_ANON_EXCLUSIVE_REUSE = 1       # do_wp_page + change_pte_range
    MUTANT_COW_KEEPS_EXCLUSIVE = 2           # wp_page_copy
    MUTANT_FORK_NO_WRPROTECT = 3             # copy_present_pte
    MUTANT_FORK_KEEPS_EXCLUSIVE = 4          # copy_present_pte
    MUTANT_REUSE_IGNORES_REFCOUNT = 5        # do_wp_page (wp_can_reuse_anon_folio)
    MUTANT_PRIVATE_FILE_WRITE_TO_PAGECACHE = 6   # do_wp_page (Dirty COW)
    MUTANT_MPROTECT_UPGRADES_COW_PAGE = 7    # change_pte_range (can_change_pte_writable)
    MUTANT_ZERO_PAGE_WRITABLE = 8            # do_anonymous_page
    MUTANT_MUNMAP_LEAVES_LAST_PAGE = 9       # do_vmi_munmap (zap range)
    MUTANT_WIPEONFORK_COPIES = 10            # dup_mmap
    MUTANT_SPLIT_VMA_LOSES_ANON_VMA = 11     # __split_vma
    MUTANT_DONTNEED_SHARED_DROPS_PAGECACHE = 12  # madvise_dontneed_single_vma
    MUTANT_FAULT_AROUND_ALLOCATES = 13       # filemap_map_pages (do_fault_around)
    MUTANT_FORK_SHARES_PINNED_PAGE = 14      # copy_present_pte (folio_needs_cow_for_dma)
    MUTANT_RO_PIN_SKIPS_UNSHARE = 15         # gup_must_unshare
    MUTANT_RW_PIN_SKIPS_COW_BREAK = 16       # can_follow_write_pte (FOLL_WRITE)
    MUTANT_POKE_WRITES_PAGECACHE = 17        # can_follow_write_pte (FOLL_FORCE: Dirty COW)
    MUTANT_RESTORE_WITHOUT_NOTIFIER = 18     # remove_device_exclusive_entry
    MUTANT_COW_WITHOUT_INVALIDATION = 19     # wp_page_copy (mmu_notifier_invalidate_range_start)
    MUTANT_KSM_MERGES_PINNED_PAGE = 20       # write_protect_page (mapcount/refcount check)
    MUTANT_FORK_KEEPS_SWAP_EXCLUSIVE = 21    # copy_nonpresent_pte (pte_swp_clear_exclusive)
    MUTANT_SPLIT_DROPS_DIRTY = 22            # __split_huge_pmd_locked (pte_mkdirty)
    MUTANT_SPLIT_MARKS_SHARED_EXCLUSIVE = 23  # __split_huge_pmd_locked (RMAP_EXCLUSIVE)
    MUTANT_HUGE_ZERO_WRITTEN_IN_PLACE = 24   # do_huge_zero_wp_pmd
    MUTANT_SPLIT_WALK_STOPS_AT_FIRST_PMD = 25    # try_to_migrate_one (6.18 early abort)
    MUTANT_ZERO_REMAP_DROPS_SOFT_DIRTY = 26  # try_to_map_unused_to_zeropage

# Limits wider than a C int, as C macros (a .pxd cannot hold initialized variables).
cdef extern from *:
    """
    #define MMDIFF_TASK_SIZE_PAGES ((((int64_t)1) << 35) - 1)
    #define MMDIFF_ADDR_LIMIT_PAGES (((int64_t)1) << 52)
    #define MMDIFF_PGTABLE_SPAN (((int64_t)1) << 36)
    #define MMDIFF_NUM_CLAMP (((int64_t)1) << 60)
    #define MMDIFF_FILE_LIMIT_PAGES (((int64_t)1) << 51)
    #define MMDIFF_DEV_PFN_BIT (((uint32_t)1) << 31)
    """
    # TASK_SIZE_MAX in pages: 2^47 - 4096 bytes (the last page is a guard).
    const int64_t TASK_SIZE_PAGES "MMDIFF_TASK_SIZE_PAGES"
    # A range whose byte end passes 2^64 wraps: mprotect ENOMEM, madvise EINVAL.
    const int64_t ADDR_LIMIT_PAGES "MMDIFF_ADDR_LIMIT_PAGES"
    # vpns the 4-level table can index (512^4); walks never go past it.
    const int64_t PGTABLE_SPAN "MMDIFF_PGTABLE_SPAN"
    # Clamp for op numbers: above every limit, and a + b never overflows int64.
    const int64_t NUM_CLAMP "MMDIFF_NUM_CLAMP"
    # File pages from here on start at byte 2^63: a negative loff_t (MAX_LFS_FILESIZE).
    const int64_t FILE_LIMIT_PAGES "MMDIFF_FILE_LIMIT_PAGES"
    # Device pfns (devmem.pyx) have this bit set: frame-table pfns stay below it. The
    # low 31 bits are the BO page's pgoff (mod 2^31): a BO's page 0 is 1 GiB aligned.
    const uint32_t DEV_PFN_BIT "MMDIFF_DEV_PFN_BIT"
