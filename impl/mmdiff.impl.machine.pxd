# machine: the impl's one extension module, laid out like uvloop's loop.pxd: the
# shared constants, forward declarations, then one included .pxd per concept.
# machine.pyx includes the matching .pyx files.
#
# Why the dotted file name: setup.py builds impl/machine.pyx as the module
# mmdiff.impl.machine, but the source folder is impl/, not mmdiff/impl/. Cython
# finds a module's own .pxd either under the package path or as a dotted file
# name next to the source (Main.find_pxd_file); the dotted name is the one that
# works with this layout.

include "constants.pxi"

cdef struct machine_s
ctypedef machine_s machine_t
cdef struct mm_s
ctypedef mm_s mm_t
cdef struct itree_node_s
ctypedef itree_node_s itree_node_t

include "kmem.pxd"
include "folio.pxd"
include "pagetable.pxd"
include "swap.pxd"
include "shmem.pxd"
include "vma.pxd"
include "mm.pxd"
include "notifier.pxd"
include "fault.pxd"
include "fork.pxd"
include "syscall.pxd"
include "thp.pxd"
include "folio_split.pxd"
include "gup.pxd"
include "hmm.pxd"
include "mmap.pxd"
include "mprotect.pxd"
include "madvise.pxd"
include "vmscan.pxd"
include "ksm.pxd"
include "invariants.pxd"
include "snapshot.pxd"
include "dirty.pxd"
include "softdirty.pxd"
include "devmem.pxd"

# The whole simulated world: frames, processes, shmem objects.
cdef struct machine_s:
    kmem_t kmem             # allocation accounting (memory_bytes)
    mem_map_t mem           # frame table; pfn 0 is the zero page
    swap_info_t swap        # the swap device: slots and the swap cache's back links
    mm_t **procs            # process k ("p{k}") at index k; exited ones stay with alive = 0
    int32_t nr_procs
    int32_t cap_procs
    shmem_t **files         # named files (indexes from the encoder) and hidden objects
    int32_t nr_files
    int32_t cap_files
    int64_t last_anon_vma   # last anon_vma id handed out
    pin_t *pins             # pin handle "h{k}" at index k - 1, in creation order
    int32_t nr_pins
    int32_t cap_pins
    mmu_interval_sub_t *subs    # subscription "m{k}" at index k - 1, in creation order
    int32_t nr_subs
    int32_t cap_subs
    hmm_dev_t **devs        # device slots; the encoder maps each name d<k> to one
    int32_t nr_devs
    int32_t cap_devs
    mmu_event_t *drained    # events handed out by `devents` ops, until the API decodes them
    int32_t nr_drained
    int32_t cap_drained
    int32_t mutant          # MUTANT_* (0: faithful)
    int32_t thp_mode        # `set thp`: THP_NEVER / THP_MADVISE / THP_ALWAYS
    int32_t thp_zero        # `set thp_zero`: use the huge zero page for read faults
    int32_t thp_alloc_fail  # `set thp_alloc fail`: every THP allocation fails
    int32_t max_ptes_none   # `set max_ptes_none` (khugepaged only: stored, no effect)
    int32_t last_mm_id      # last MM id handed out (folio MM-id slots; 0 = none)
    int64_t *bits           # clean_record results (RES_BITS) until the API decodes them
    int32_t nr_bits
    int32_t cap_bits
    int64_t warnings        # kernel WARN_ONs the model hit (devmem.md: skipped special PMDs)
