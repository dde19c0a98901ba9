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
include "shmem.pyx"
include "vma.pyx"
include "mm.pyx"
include "fault.pyx"
include "fork.pyx"
include "syscall.pyx"
include "mmap.pyx"
include "mprotect.pyx"
include "madvise.pyx"
include "invariants.pyx"
include "snapshot.pyx"

from mmdiff.reference import ops as _ops
from mmdiff.reference import results as _results
from mmdiff.reference import state as _state
from mmdiff.reference.api import InvariantError

# Runtime mutants for the differ's self-test (a single int flag in C).
# no_anon_exclusive_reuse: PageAnonExclusive is ignored where the kernel trusts it:
#   do_wp_page reuses by refcount alone, and mprotect(rw) never upgrades an
#   exclusive anon entry (can_change_pte_writable). Program that shows it:
#     mmap p0 0x100 1 rw private,anon ; write p0 0x100 1 ; mprotect p0 0x100 1 r ;
#     mprotect p0 0x100 1 rw ; state p0 0x100
#   faithful: "anon pte rw dirty softdirty excl", mutant: "anon pte r dirty softdirty excl".
MUTANTS = {"no_anon_exclusive_reuse": MUTANT_NO_ANON_EXCLUSIVE_REUSE}

_OPCODE = {
    _ops.Mmap: OP_MMAP, _ops.Munmap: OP_MUNMAP, _ops.Mprotect: OP_MPROTECT,
    _ops.Madvise: OP_MADVISE, _ops.Read: OP_READ, _ops.Write: OP_WRITE,
    _ops.Fork: OP_FORK, _ops.Exit: OP_EXIT, _ops.File: OP_FILE,
    _ops.FileRead: OP_FREAD, _ops.FileWrite: OP_FWRITE, _ops.State: OP_STATE,
    _ops.Same: OP_SAME,
}   # every other op class is outside issue 3: OP_ENOSYS

_PROT_CODE = {_ops.Prot.NONE: PROT_NONE, _ops.Prot.R: PROT_R, _ops.Prot.RW: PROT_RW}
_PROT_OF_CODE = {v: k for k, v in _PROT_CODE.items()}
_MAPF_BIT = {_ops.MapFlag.PRIVATE: MAPF_PRIVATE, _ops.MapFlag.SHARED: MAPF_SHARED,
             _ops.MapFlag.ANON: MAPF_ANON, _ops.MapFlag.POPULATE: MAPF_POPULATE,
             _ops.MapFlag.PFNMAP: MAPF_PFNMAP}
_ADVICE_CODE = {_ops.Advice.DONTNEED: ADV_DONTNEED, _ops.Advice.DONTFORK: ADV_DONTFORK,
                _ops.Advice.DOFORK: ADV_DOFORK, _ops.Advice.WIPEONFORK: ADV_WIPEONFORK,
                _ops.Advice.KEEPONFORK: ADV_KEEPONFORK,
                _ops.Advice.POPULATE_READ: ADV_POPULATE_READ,
                _ops.Advice.POPULATE_WRITE: ADV_POPULATE_WRITE}   # others: ADV_UNSUPPORTED

_ENTRY_KIND = {ENTRY_ZERO: _state.EntryKind.ZERO, ENTRY_ANON: _state.EntryKind.ANON,
               ENTRY_FILE: _state.EntryKind.FILE}
_U64 = (1 << 64) - 1
_YES = _results.text_result("yes")
_NO = _results.text_result("no")

_INV_NAMES = {
    INV_OUTSIDE_VMA: "no entry outside a VMA",
    INV_ZERO_WRITABLE: "zero page never writable (the only special entry)",
    INV_FREE_MAPPED: "no entry maps a free or unknown frame",
    INV_I1: "I1 writable anon => AnonExclusive",
    INV_I2: "I2 AnonExclusive => mapped at most once",
    INV_REFCOUNT: "refcount == mappings + page-cache reference",
    INV_MAPCOUNT: "mapcount == PTEs mapping the frame",
    INV_PAGECACHE: "PG_pagecache <=> in exactly one page cache",
    INV_VMA_ORDER: "VMAs sorted, non-empty, non-overlapping",
    INV_FREE_LIST: "free list length == nr_free",
    INV_ZERO_COUNTS: "the zero page carries no counts",
    INV_TABLE_BITMAP: "page-table used bitmap == non-none entries",
}


def _page_view(uint64_t code, frame):
    """PageView of a STATE_* code (the same words `state` prints)."""
    return _state.PageView(_ENTRY_KIND[code & 0xf], _state.Level.PTE,
                           bool(code & STATE_WRITABLE), bool(code & STATE_DIRTY),
                           bool(code & STATE_SOFT_DIRTY), bool(code & STATE_EXCL), frame)


cdef inline int64_t _num(object x, str what) except? -1:
    """An op's page number/count as int64: negative is a harness bug, huge clamps."""
    if x < 0:
        raise ValueError(f"{what}={x:#x} must be >= 0 (pages); fix the op construction")
    return x if x < NUM_CLAMP else NUM_CLAMP


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
        self.m.mutant = MUTANTS[mutant] if mutant is not None else MUTANT_NONE
        self.m.mem.sections = NULL
        self.m.mem.nr_sections = 0
        if mem_map_init(&self.m.mem, &self.m.kmem) < 0:
            raise MemoryError("cannot allocate the frame table")
        cdef mm_t *p0 = mm_alloc(self.m)
        if p0 == NULL or _proc_add(self.m, p0) != 0:
            raise MemoryError("cannot allocate process p0")
        self._procs = {}
        self._files = {}
        self._file_names = {}
        self._state_results = {ENTRY_NONE: _results.text_result("none")}
        self._flag_bits = {}

    def __dealloc__(self):
        cdef int32_t i
        cdef machine_t *m = self.m
        if m == NULL:
            return
        for i in range(m.nr_procs):
            if m.procs[i].alive:
                exit_mmap(m, m.procs[i])
            kfree(&m.kmem, m.procs[i], sizeof(mm_t))
        kfree(&m.kmem, m.procs, m.cap_procs * sizeof(mm_t *))
        for i in range(m.nr_files):
            shmem_evict_inode(m, m.files[i])
            kfree(&m.kmem, m.files[i], sizeof(shmem_t))
        kfree(&m.kmem, m.files, m.cap_files * sizeof(shmem_t *))
        mem_map_destroy(&m.mem, &m.kmem)
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
        if code == OP_ENOSYS:
            return 0
        if code == OP_FILE:
            o.a0 = self._file(op.file)
            o.a1 = _num(op.npages, "npages")
            o.a2 = 1 if op.devmem else 0
            return 0
        if code == OP_FREAD or code == OP_FWRITE:
            o.a0 = self._file(op.file)
            o.a1 = _num(op.pgoff, "pgoff")
            if code == OP_FWRITE:
                o.a2 = _u64_bits(op.value)
            return 0
        o.proc = self._proc(op.proc)
        if code == OP_READ or code == OP_STATE:
            o.a0 = _num(op.vpn, "vpn")
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
        if kind == RES_SAME:
            return _YES if r.payload else _NO
        res = self._state_results.get(r.payload)
        if res is None:
            res = _results.text_result(_page_view(r.payload, None).describe())
            self._state_results[r.payload] = res
        return res

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
            raise MemoryError(f"impl out of memory at op {done} of the batch "
                              f"({self.m.kmem.bytes:#x} bytes held); the machine is unusable")
        results = [self._decode(&self._res[i]) for i in range(n)]
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
            raise MemoryError(f"impl out of memory running {op!r}")
        return self._decode(&self._res[0])

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
        """RawSnapshot with pfn ints as frame keys (the zero page as state.ZERO_KEY)."""
        cdef machine_t *m = self.m
        cdef int32_t k, i
        cdef int64_t j, n
        cdef mm_t *mm
        cdef vma_t *v
        cdef entry_buf_t buf
        cdef cache_page_t *cache
        cdef uint32_t pfn
        cdef folio_t *folio
        raw = _state.RawSnapshot()
        referenced = set()
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
                if v.madv & VM_WIPEONFORK:
                    flags.append("wipeonfork")
                pv.vmas.append(_state.VmaView(
                    v.start, v.end, _PROT_OF_CODE[v.prot], bool(v.shared), name,
                    v.pgoff if name is not None else 0, tuple(flags), v.anon_vma != 0))
            buf.items = NULL
            buf.n = buf.cap = 0
            buf.oom = 0
            collect_entries(mm, &buf)
            if buf.oom:
                entry_buf_free(&buf)
                raise MemoryError("impl out of memory while taking a snapshot")
            for j in range(buf.n):
                pte = buf.items[j].pte
                if pte_special(pte):
                    key = _state.ZERO_KEY
                else:
                    key = pte_pfn(pte)
                    referenced.add(key)
                pv.pages[buf.items[j].vpn] = _page_view(pte_state_code(m, pte), key)
            entry_buf_free(&buf)
            raw.procs[f"p{k}"] = pv
        for i, fname in self._file_names.items():
            if not m.files[i].live:
                continue
            pages = {}
            n = m.files[i].nr_pages
            if n:
                cache = <cache_page_t *>malloc(n * sizeof(cache_page_t))
                if cache == NULL:
                    raise MemoryError("impl out of memory while taking a snapshot")
                n = shmem_collect(m.files[i], cache, n)
                for j in range(n):
                    pages[cache[j].pgoff] = cache[j].pfn
                    referenced.add(cache[j].pfn)
                free(cache)
            raw.files[fname] = pages
        for key in referenced:
            pfn = key
            folio = pfn_folio(&m.mem, pfn)
            raw.frames[key] = _state.FrameView(folio.mapcount, folio.pincount, folio.value)
        return raw

    # --- measurements -------------------------------------------------------------------

    def memory_bytes(self):
        """Bytes held by the C structures (tables, frame sections, VMAs, caches, procs)."""
        return self.m.kmem.bytes + sizeof(machine_t)

    def frames_in_use(self):
        """Allocated frames (zero page excluded): all of them are free again once
        every process exited and no named file holds pages."""
        return self.m.mem.nr_frames - 1 - self.m.mem.nr_free

    def page_tables(self):
        """Page-table pages held by live processes (PGDs included)."""
        cdef int32_t k
        cdef int64_t n = 0
        for k in range(self.m.nr_procs):
            if self.m.procs[k].alive:
                n += pgtable_count(self.m.procs[k].pgd)
        return n
