# invariants: SPEC §5 / rules.md self-checks over the whole machine, in C.

cdef enum:
    INV_OK = 0
    INV_OUTSIDE_VMA = 1      # a present entry at a vpn no VMA covers
    INV_ZERO_WRITABLE = 2    # a zero-page entry is writable (or special entry not pfn 0)
    INV_FREE_MAPPED = 3      # an entry maps a frame on the free list
    INV_I1 = 4               # writable anon entry whose page is not AnonExclusive
    INV_I2 = 5               # AnonExclusive page mapped more than once
    INV_REFCOUNT = 6         # refcount != mappings + page-cache reference + pins
    INV_MAPCOUNT = 7         # mapcount != PTEs mapping the frame
    INV_PAGECACHE = 8        # PG_pagecache disagrees with the files' caches
    INV_VMA_ORDER = 9        # VMAs unsorted, overlapping or empty
    INV_FREE_LIST = 10       # free-list length != nr_free
    INV_ZERO_COUNTS = 11     # the zero page carries counts
    INV_TABLE_BITMAP = 12    # a table's used bitmap disagrees with its entries
    INV_PINCOUNT = 13        # pincount != live pin handles holding the frame
    INV_I3 = 14              # a pinned anon page is not AnonExclusive
    INV_DX_PAGE = 15         # a non-present entry neither swap nor DX, or DX on a page not anon+AE
    INV_MIRROR_PROC = 16     # a mirror entry of a process that is not alive
    INV_MIRROR_SUB = 17      # a mirror entry no live subscription of its device covers
    INV_MIRROR_FRAME = 18    # a mirror entry whose frame the CPU entry does not map
    INV_MIRROR_PERM = 19     # rw over a read-only present entry, atomic over a present one
    INV_MIRROR_COUNT = 20    # a device's nr_mirror != its mirror entries
    INV_EVENT_SUB = 21       # a pending event naming no subscription of its device
    INV_SUB_INDEX = 22       # an mm's subscription index != its live subscriptions (or seq < 0)
    INV_SWAP_ENTRY = 23      # a swap entry / swapped file page naming a free or unknown slot
    INV_SWAP_COUNT = 24      # slot count != swap entries + swapped file pages referencing it
    INV_SWAP_FREE = 25       # a slot with count 0 and no cache not freed (or a bad free list)
    INV_SWAP_CACHE = 26      # swap-cache link broken (slot.cache <-> PG_swapcache + back link)
    INV_SWP_EXCL = 27        # a swap entry's exclusive marker on a slot others reference
    INV_KSM = 28             # a KSM page that is not anon, or is AnonExclusive
    INV_THP_PMD = 29         # a huge PMD not inside one private anon VMA, or not a THP head / hzero
    INV_THP_COUNTS = 30      # THP: entire_mapcount != huge PMDs mapping it, or a tail record bad
    INV_THP_MMID = 31        # THP: MM-id total != large mapcount (entire + PTE mapcounts)
    INV_PFNMAP = 32          # a pfn entry outside a pfnmap VMA / not its linear pgoff, a special
                             # PMD misaligned or not wholly inside, or another kind in a pfnmap VMA;
                             # a PUD leaf not 1 GiB aligned or not wholly in pfnmap VMAs of its BO

ctypedef struct inv_report_t:
    int32_t code             # INV_*
    int32_t proc             # process index, -1 when not about one
    int64_t vpn
    int64_t pfn
    int64_t expected
    int64_t got

cdef int check_machine(machine_t *m, inv_report_t *rep) noexcept nogil
