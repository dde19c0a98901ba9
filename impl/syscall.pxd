# syscall: the encoded op and result records of the batch API and the dispatcher.
#
# Argument layout per op code (all numbers clamped to NUM_CLAMP by the encoder):
#   OP_MMAP      a0 vpn, a1 npages, a2 prot, a3 MAPF_* bits, a4 file index or -1, a5 off or -1
#   OP_MUNMAP    a0 vpn, a1 npages
#   OP_MPROTECT  a0 vpn, a1 npages, a2 prot
#   OP_MADVISE   a0 vpn, a1 npages, a2 ADV_*
#   OP_READ      a0 vpn              OP_WRITE  a0 vpn, a1 value (uint64 bits)
#   OP_FORK / OP_EXIT: proc only
#   OP_FILE      a0 file, a1 npages, a2 devmem
#   OP_FREAD     a0 file, a1 pgoff   OP_FWRITE a0 file, a1 pgoff, a2 value
#   OP_STATE     a0 vpn              OP_SAME   a0 vpn, a1 proc2, a2 vpn2
#   OP_PIN       a0 vpn, a1 npages, a2 GUP_WRITE|GUP_LONGTERM bits (gup.pyx)
#   OP_POKE      a0 vpn, a1 value    OP_UNPIN  a0 handle k of "h{k}"
#   OP_PREAD     a0 handle, a1 index OP_PWRITE a0 handle, a1 index, a2 value
#   OP_MIRROR    a0 dev, a1 vpn, a2 npages      OP_UNMIRROR a0 subscription k of "m{k}"
#   OP_DREAD     a0 dev, a1 vpn      OP_DWRITE a0 dev, a1 vpn, a2 value
#   OP_DEXCL     a0 dev, a1 vpn      OP_DATOMIC a0 dev, a1 vpn, a2 add (uint64 bits)
#   OP_DEVENTS   a0 dev              OP_LOCK / OP_UNLOCK a0 vpn
#   OP_KSM_SCAN  no arguments (proc -1)
#   (dev: the device slot index the encoder gave the name d<k>)

ctypedef struct mm_op_t:
    int32_t code        # OP_*
    int32_t proc        # process index k of "p{k}", -1 when the op names none (do_op
                        # checks ESRCH exactly for proc >= 0)
    int64_t a0
    int64_t a1
    int64_t a2
    int64_t a3
    int64_t a4
    int64_t a5

ctypedef struct mm_res_t:
    int32_t kind        # RES_*
    uint64_t payload    # value / errno / signal / process index / state code / yes

cdef inline void res_set(mm_res_t *r, int32_t kind, uint64_t payload) noexcept nogil:
    r.kind = kind
    r.payload = payload

cdef inline void res_status(mm_res_t *r, int err) noexcept nogil:
    """The result of an ok-or-errno op: err > 0 is the errno, 0 is ok, < 0 (OOM) leaves
    the result unset for run_batch to report."""
    if err > 0:
        res_set(r, RES_ERRNO, <uint64_t>err)
    elif err == 0:
        res_set(r, RES_OK, 0)

cdef mm_t *proc_lookup(machine_t *m, int32_t proc) noexcept nogil
cdef uint64_t pte_state_code(machine_t *m, uint64_t pte) noexcept nogil
cdef void do_op(machine_t *m, mm_op_t *op, mm_res_t *r) noexcept nogil
cdef int64_t run_ops(machine_t *m, mm_op_t *ops, mm_res_t *res, int64_t n) noexcept nogil
