"""ReferenceMachine: the oracle. Dispatches ops to the rule modules, owns the names
(p0.., f0..) and reports observations (SPEC §4) and invariants (SPEC §5).

Module map (one kernel concept each): folio (pages, zero page), shmem (files),
vma (split/merge/anon_vma), pagetable (PTE bits), mm (address space, map/zap),
fault (faults and COW), mmap (mmap/munmap), mprotect, madvise, fork, gup (pins
and /proc/pid/mem writes), notifier (interval notifiers, device tables), hmm
(device faults and device-exclusive entries).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from . import ops as O
from .api import InvariantError
from .fault import handle_mm_fault
from .devmem import BufferObject, DevPage, huge_aligned
from .folio_split import split_folio, thp_at
from .ops import HPAGE_PUD_NR
from .folio import HPAGE_PMD_NR, Folio, HugeZeroPage, SubPage, Thp, ZeroPage, folio_store
from .fork import dup_mmap
from .gup import PinHandle, pin_user_pages, poke, unpin_user_pages
from .dirty import bits_text, clean_record_shared_mapping_range, wp_shared_mapping_range
from .softdirty import clear_refs_soft_dirty
from .hmm import DeviceOps
from .ksm import ksm_scan
from .notifier import Notifiers
from .madvise import do_madvise
from .mm import Mm
from .mmap import do_mmap, do_munmap, exit_mmap
from .mprotect import do_mprotect
from .pagetable import HugePte, PudPte
from .results import ENOSYS, OK, Errno, Result, errno, name, signal, text_result, value
from .shmem import ShmemFile
from .swap import SwapSlot
from .state import (HZERO_KEY, NONE_PAGE, ZERO_KEY, DeviceView, DevmemView, FrameView, ProcView,
                    RawSnapshot, SlotView, SubView, ThpView, VmaView, event_sort_key)
from .sysfs import ThpSettings

_Ret = Union[None, Errno]


def _status(err: _Ret) -> Result:
    return OK if err is None else errno(err)


def _frame_key(page) -> object:
    """The snapshot key of a page a pin or a mirror holds."""
    if isinstance(page, ZeroPage):
        return ZERO_KEY
    if isinstance(page, HugeZeroPage):
        return HZERO_KEY
    return page


class ReferenceMachine:
    """Plain-Python model of the issue-3 world; see the rule modules for the kernel rules."""

    def __init__(self) -> None:
        self.thp = ThpSettings()             # shared by every mm (sysfs is global)
        self.warnings = 0                    # kernel WARN_ONs the rules reach (dirty.py)
        self.notifiers = Notifiers()
        self.procs: dict[str, Mm] = {"p0": self._new_mm("p0")}
        self.devops = DeviceOps(self.notifiers, self.procs)
        self.nprocs = 1                      # processes ever created: next is p{nprocs}
        self.files: dict[str, ShmemFile] = {}
        self.pins: dict[str, PinHandle] = {}  # live handles; h{k} for the k-th successful pin
        self.npins = 0
        self._dispatch: dict[type, Callable[[O.Op], Result]] = {
            O.Mmap: self._mmap, O.Munmap: self._munmap, O.Mprotect: self._mprotect,
            O.Madvise: self._madvise, O.Read: self._read, O.Write: self._write,
            O.Fork: self._fork, O.Exit: self._exit, O.File: self._file,
            O.FileRead: self._fread, O.FileWrite: self._fwrite, O.State: self._state,
            O.Same: self._same, O.Pin: self._pin, O.PinRead: self._pread,
            O.PinWrite: self._pwrite, O.Unpin: self._unpin, O.Poke: self._poke,
            O.Mirror: self._mirror, O.Unmirror: self._unmirror, O.DevRead: self._dread,
            O.DevWrite: self._dwrite, O.DevExclusive: self._dexcl, O.DevAtomic: self._datomic,
            O.DevEvents: self._devents, O.Lock: self._lock, O.Unlock: self._unlock,
            O.KsmScan: self._ksm_scan, O.Set: self._set, O.Split: self._split, O.SplitFolio: self._split_folio,
            O.WpRange: self._wp_range, O.CleanRecord: self._clean_record,   # mapping_dirty_helpers
            O.ClearRefs: self._clear_refs,                                    # clear_refs_write
        }

    def _new_mm(self, pname: str) -> Mm:
        """An address space whose invalidations reach the interval notifiers."""
        mm = Mm(pname)
        mm.thp = self.thp
        notifiers = self.notifiers
        mm.notify = lambda kind, start, end, owner: notifiers.invalidate(
            pname, kind, start, end, owner)
        mm.watched = lambda: any(s.proc == pname for s in notifiers.subs.values())
        mm.rmap = self._rmap_order
        return mm

    # --- the contract ----------------------------------------------------------------

    def execute(self, op: O.Op) -> Result:
        handler = self._dispatch.get(type(op))
        if handler is None:
            return ENOSYS                    # ops of later issues
        for field in ("proc", "proc2"):
            pname = getattr(op, field, None)
            if pname is not None and pname not in self.procs:
                return errno(Errno.ESRCH)
        result = handler(op)
        self._free_dropped_objects()
        return result

    def snapshot(self) -> RawSnapshot:
        snap = RawSnapshot()
        for pname, mm in self.procs.items():
            pv = ProcView()
            for v in mm.vmas:
                named = v.file.name if v.file is not None else None
                pv.vmas.append(VmaView(v.start, v.end, v.prot, v.shared, named,
                                       v.pgoff if named is not None else 0,
                                       v.view_flags(), v.anon_vma is not None))   # + VM_SOFTDIRTY
            for vpn in sorted(mm.ptes):
                pte = mm.ptes[vpn]
                if (isinstance(pte, HugePte) and vpn % HPAGE_PMD_NR) or (
                        isinstance(pte, PudPte) and vpn % HPAGE_PUD_NR):
                    continue                       # a huge PMD/PUD is one entry, at its head
                page = pte.view()
                pv.pages[vpn] = page
                self._note_frame(snap, page.frame)
            snap.procs[pname] = pv
        for hname, h in self.pins.items():
            snap.pins[hname] = [_frame_key(p) for p in h.pages]
            for p in h.pages:
                self._note_frame(snap, p)
        for dname, dev in self.notifiers.devices.items():
            if not dev.mirror and not dev.events:
                continue
            snap.devices[dname] = DeviceView(
                {key: (_frame_key(p), perm) for key, (p, perm) in dev.mirror.items()},
                sorted(dev.events, key=event_sort_key))
            for p, _ in dev.mirror.values():
                self._note_frame(snap, p)
        for sname, sub in self.notifiers.subs.items():
            snap.subs[sname] = SubView(sub.dev, sub.proc, sub.start, sub.end, sub.seq)
        snap.warnings = self.warnings
        for fname, f in self.files.items():
            if isinstance(f, BufferObject):
                snap.devmem[fname] = DevmemView(f.size, tuple(sorted(f.values.items())),
                                                f.tracked)
                continue
            snap.files[fname] = {pgoff: folio for pgoff, folio in f.pages.items()}
            snap.files[fname].update(f.swapped)
            for key in snap.files[fname].values():
                self._note_frame(snap, key)
        return snap

    @classmethod
    def _note_frame(cls, snap: RawSnapshot, key) -> None:
        """Record the view of a frame key (a folio, a THP, a THP's page) or a swap slot
        (and its cache folio)."""
        if isinstance(key, SubPage):
            thp = key.thp
            snap.frames[key] = FrameView(key.mapcount, thp.pincount, key.value, thp.locked,
                                         False, thp, key.idx)
            cls._note_frame(snap, thp)
        elif isinstance(key, Thp):
            if key not in snap.folios:
                snap.folios[key] = ThpView(key.entire, key.pincount, tuple(
                    (p.idx, p.value) for p in key.pages if p.value), key.locked)
        elif isinstance(key, Folio):
            snap.frames[key] = FrameView(key.mapcount, key.pincount, key.value, key.locked,
                                         key.ksm)
        elif isinstance(key, SwapSlot):
            snap.slots[key] = SlotView(key.count, key.value, key.cache)
            cls._note_frame(snap, key.cache)

    def check_invariants(self) -> None:
        refs: dict[Folio, int] = {}
        maps: dict[Folio, int] = {}
        slot_refs: dict[SwapSlot, int] = {}
        thps: dict[Thp, dict[str, int]] = {}     # per THP: its mappings per mm ("" = PMDs)
        for pname, mm in self.procs.items():
            # VMAs sorted, non-empty, non-overlapping
            for a, b in zip(mm.vmas, mm.vmas[1:]):
                if not (a.start < a.end <= b.start):
                    raise InvariantError(f"{pname}: VMAs overlap or unsorted: "
                                         f"[{a.start:#x},{a.end:#x}) [{b.start:#x},{b.end:#x})")
            inside = sum(len(mm.vpns_in(v.start, v.end)) for v in mm.vmas)
            if inside != len(mm.ptes):
                stray = next(v for v in mm.ptes if mm.find_vma(v) is None)
                raise InvariantError(f"{pname}: entry at {stray:#x} outside every VMA")
            for vpn, pte in mm.ptes.items():
                if isinstance(pte, HugePte):
                    if vpn % HPAGE_PMD_NR == 0:
                        self._check_huge_pmd(pname, mm, vpn, pte, thps)
                    continue
                if isinstance(pte, PudPte):
                    if vpn % HPAGE_PUD_NR == 0:
                        self._check_huge_pud(pname, mm, vpn, pte)
                    continue
                if pte.swap is not None:
                    slot_refs[pte.swap] = slot_refs.get(pte.swap, 0) + 1
                    continue
                if pte.is_zero:
                    if pte.writable:
                        raise InvariantError(f"{pname}: zero page mapped writable at {vpn:#x}")
                    continue
                if isinstance(pte.page, DevPage) != bool(mm.find_vma(vpn).pfnmap):
                    raise InvariantError(f"{pname}: pfn entry and pfnmap VMA disagree at "
                                         f"{vpn:#x}: {pte!r}")
                if isinstance(pte.page, DevPage):
                    continue                              # device memory: never counted
                page = pte.page
                assert isinstance(page, Folio)
                # I1: a writable anon PTE maps an AnonExclusive page
                if page.anon and pte.writable and not page.anon_exclusive:
                    raise InvariantError(f"{pname}: writable anon PTE at {vpn:#x} maps a "
                                         f"non-exclusive page {page!r}")
                if page.ksm and page.anon_exclusive:
                    raise InvariantError(f"{pname}: KSM page marked exclusive at {vpn:#x}")
                maps[page] = maps.get(page, 0) + 1
                if isinstance(page, SubPage):
                    per_mm = thps.setdefault(page.thp, {})
                    per_mm[pname] = per_mm.get(pname, 0) + 1
                    continue
                refs[page] = refs.get(page, 0) + 1
        for f in self._all_files():
            for folio in f.pages.values():
                refs[folio] = refs.get(folio, 0) + 1
            for slot in f.swapped.values():
                slot_refs[slot] = slot_refs.get(slot, 0) + 1
        for slot, n in slot_refs.items():
            # swap_map count == entries referencing the slot; the cache link is mutual
            if slot.count != n:
                raise InvariantError(f"swap count {slot.count:#x} != {n:#x} entries: {slot!r}")
            if slot.cache is not None:
                if slot.cache.swap_slot is not slot:
                    raise InvariantError(f"swap cache link broken: {slot!r}")
                refs.setdefault(slot.cache, 0)
        for page in list(refs):
            if page.swap_slot is not None:
                refs[page] += 1                                   # the swap cache's reference
                if page.swap_slot.cache is not page:
                    raise InvariantError(f"folio claims a swap slot that caches another: "
                                         f"{page!r}")
        pins: dict[Folio, int] = {}
        thp_pins: dict[Thp, int] = {}
        for hname, h in self.pins.items():
            for page in h.pages:
                if isinstance(page, SubPage):
                    thp_pins[page.thp] = thp_pins.get(page.thp, 0) + 1
                    thps.setdefault(page.thp, {})
                    # I3 for a THP page: exclusive while PTE-mapped, through the head while
                    # PMD-mapped (only the head's flag is kept then); unmapped: nothing to check
                    if (page.mapcount and not page.anon_exclusive) or (
                            page.thp.entire and not page.thp.head.anon_exclusive):
                        raise InvariantError(f"{hname}: pinned THP page not exclusive {page!r}")
                elif isinstance(page, Folio):
                    pins[page] = pins.get(page, 0) + 1
                    refs.setdefault(page, 0)
                    # I3: a pinned anon page is AnonExclusive (gup_must_unshare, fork copies)
                    if page.anon and not page.anon_exclusive:
                        raise InvariantError(f"{hname}: pinned anon page not exclusive {page!r}")
        self._check_mirrors()
        for page in refs:
            if page.pincount != pins.get(page, 0):
                raise InvariantError(f"pincount {page.pincount:#x} != "
                                     f"{pins.get(page, 0):#x} pins: {page!r}")
        for page, n in maps.items():
            # I2: an AnonExclusive page is mapped at most once
            if page.anon and page.anon_exclusive and n > 1:
                raise InvariantError(f"AnonExclusive page mapped {n} times: {page!r}")
            if page.mapcount != n:
                raise InvariantError(f"mapcount {page.mapcount:#x} != {n:#x} PTEs: {page!r}")
        for page, n in refs.items():
            # refcount = PTE mappings + page cache + swap cache + pins
            if page.refcount != n + page.pincount:
                raise InvariantError(f"refcount {page.refcount:#x} != {n:#x} refs: {page!r}")
        for thp, per_mm in thps.items():
            self._check_thp(thp, per_mm, thp_pins.get(thp, 0))

    @staticmethod
    def _check_huge_pud(pname: str, mm: Mm, vpn: int, pte: PudPte) -> None:
        """A special PUD: no PMD table below it, in pfnmap VMAs only, 2^18 consecutive
        pages of one BO from a 1 GiB-aligned page."""
        if (vpn >> 18) in mm.pmd_tables:
            raise InvariantError(f"{pname}: PUD leaf and a PMD table at {vpn:#x}")
        vmas = list(mm.vmas_in(vpn, vpn + HPAGE_PUD_NR))
        huge = pte.pud.folio
        if not vmas or not all(v.pfnmap and v.file is huge.bo for v in vmas) \
                or huge.pgoff % HPAGE_PUD_NR:
            raise InvariantError(f"{pname}: special PUD at {vpn:#x} outside a pfnmap of its "
                                 f"BO or not 1 GiB-aligned in it")

    @staticmethod
    def _check_huge_pmd(pname: str, mm: Mm, vpn: int, pte: HugePte,
                        thps: dict[Thp, dict[str, int]]) -> None:
        """A huge PMD: no PTE table beside it, inside one private anon VMA, read-only on
        the huge zero folio, I1 through the head page; counted for _check_thp."""
        vma = mm.find_vma(vpn)
        if (vpn >> 9) in mm.tables:
            raise InvariantError(f"{pname}: huge PMD and a PTE table at {vpn:#x}")
        if pte.pmd.special or (vma is not None and vma.pfnmap):
            if not (pte.pmd.special and vma is not None and vma.pfnmap
                    and huge_aligned(vma, vpn >> 9)):
                raise InvariantError(f"{pname}: special PMD at {vpn:#x} outside an aligned "
                                     f"pfnmap block")
            return
        if vma is None or vma.end < vpn + HPAGE_PMD_NR or vma.shared or not vma.is_anon:
            raise InvariantError(f"{pname}: huge PMD at {vpn:#x} not inside a private anon VMA")
        pmd = pte.pmd
        if not isinstance(pmd.folio, Thp):
            if pmd.writable:
                raise InvariantError(f"{pname}: huge zero PMD writable at {vpn:#x}")
            return
        if pmd.writable and not pmd.folio.head.anon_exclusive:
            raise InvariantError(f"{pname}: writable PMD at {vpn:#x} maps a non-exclusive THP")
        per_mm = thps.setdefault(pmd.folio, {})
        per_mm[pname] = per_mm.get(pname, 0) + 1
        per_mm[""] = per_mm.get("", 0) + 1

    @staticmethod
    def _check_thp(thp: Thp, per_mm: dict[str, int], pins: int) -> None:
        """refcount = PMDs + PTEs + pins; entire = PMDs; the large mapcount agrees with
        the mappings found."""
        pmds = per_mm.get("", 0)
        mappings = sum(n for mm, n in per_mm.items() if mm)
        if thp.entire != pmds or thp.pincount != pins or thp.large_mapcount() != mappings:
            raise InvariantError(f"THP counts: entire {thp.entire} pmds {pmds}, pin "
                                 f"{thp.pincount} pins {pins}, mapcount "
                                 f"{thp.large_mapcount()} mappings {mappings}: {thp!r}")
        if thp.refcount != mappings + pins:
            raise InvariantError(f"THP refcount {thp.refcount} != {mappings + pins}: {thp!r}")
        # The MM-id slots may undercount (mappings added while no slot was free are not
        # tracked), never overcount; a clear shared bit must be right: one mm maps it.
        for slot in thp.mm_slots:
            if slot is not None and slot[1] > per_mm.get(slot[0], 0):
                raise InvariantError(f"THP mm slot {slot} > {per_mm.get(slot[0], 0)}: {thp!r}")
        mms = [mm for mm, n in per_mm.items() if mm and n]
        if not thp.shared and len(mms) > 1:
            raise InvariantError(f"THP mapped by {mms} but not marked shared: {thp!r}")

    def _check_mirrors(self) -> None:
        """No stale device view: every device entry is watched by a live subscription and
        matches what the process maps there now (rw needs a writable or exclusive entry,
        atomic needs the device-exclusive entry)."""
        for dname, dev in self.notifiers.devices.items():
            for (pname, vpn), (page, perm) in dev.mirror.items():
                where = f"{dname} mirror {pname} {vpn:#x} ({perm})"
                mm = self.procs.get(pname)
                if mm is None or not self.notifiers.covered(dname, pname, vpn):
                    raise InvariantError(f"{where}: no live process or subscription")
                pte = mm.ptes.get(vpn)
                if pte is None or pte.page is not page:
                    raise InvariantError(f"{where}: the process maps {pte!r}, the device "
                                         f"{page!r}")
                if perm == "atomic" and not pte.devexcl:
                    raise InvariantError(f"{where}: atomic access without the exclusive entry")
                if perm == "rw" and not (pte.writable or pte.devexcl):
                    raise InvariantError(f"{where}: device writable, CPU entry read-only")

    # --- helpers ------------------------------------------------------------------------

    def _all_files(self) -> list[ShmemFile]:
        seen = {id(f): f for f in self.files.values() if isinstance(f, ShmemFile)}
        for mm in self.procs.values():
            for v in mm.vmas:
                if isinstance(v.file, ShmemFile):
                    seen.setdefault(id(v.file), v.file)
        return list(seen.values())

    def _free_dropped_objects(self, extra: Optional[list] = None) -> None:
        """Release hidden shmem objects that no VMA maps any more (last fput)."""
        dropped = [f for mm in self.procs.values() for f in mm.dropped_objects] + (extra or [])
        if not dropped:
            return
        for mm in self.procs.values():
            mm.dropped_objects.clear()
        mapped = {id(v.file) for mm in self.procs.values() for v in mm.vmas if v.file is not None}
        for f in {id(f): f for f in dropped}.values():
            if id(f) not in mapped:
                f.release()

    # --- op handlers -----------------------------------------------------------------------

    def _mmap(self, op: O.Mmap) -> Result:
        file = None
        if op.file is not None:
            file = self.files.get(op.file)
            if file is None:
                return errno(Errno.EBADF)
        r = do_mmap(self.procs[op.proc], op.vpn, op.npages, op.prot, op.flags, file, op.off)
        return errno(r) if isinstance(r, Errno) else value(r)

    def _munmap(self, op: O.Munmap) -> Result:
        return _status(do_munmap(self.procs[op.proc], op.vpn, op.npages))

    def _mprotect(self, op: O.Mprotect) -> Result:
        return _status(do_mprotect(self.procs[op.proc], op.vpn, op.npages, op.prot))

    def _madvise(self, op: O.Madvise) -> Result:
        return _status(do_madvise(self.procs[op.proc], op.vpn, op.npages, op.advice))

    def _read(self, op: O.Read) -> Result:
        mm = self.procs[op.proc]
        sig = handle_mm_fault(mm, op.vpn, write=False)
        return signal(sig) if sig is not None else value(mm.ptes[op.vpn].page.value)

    def _write(self, op: O.Write) -> Result:
        mm = self.procs[op.proc]
        sig = handle_mm_fault(mm, op.vpn, write=True)
        if sig is None and not mm.ptes[op.vpn].writable:
            sig = handle_mm_fault(mm, op.vpn, write=True)   # the store retried after a restore
        if sig is not None:
            return signal(sig)
        pte = mm.ptes[op.vpn]
        assert pte.writable, f"write fault left {pte!r}"
        if isinstance(pte.page, DevPage):
            pte.page.store(op.value)                      # device memory (devmem.py)
        else:
            assert isinstance(pte.page, Folio), f"write fault left {pte!r}"
            folio_store(pte.page, op.value)
        pte.mkdirty()
        return OK

    def _fork(self, op: O.Fork) -> Result:
        child_name = f"p{self.nprocs}"
        child = self._new_mm(child_name)
        err = dup_mmap(self.procs[op.proc], child)
        if err is not None:
            exit_mmap(child)                               # the failed child's teardown
            self._free_dropped_objects(child.dropped_objects)
            return errno(err)                              # a failed fork creates no name
        self.nprocs += 1
        self.procs[child_name] = child
        return name(child_name)

    def _exit(self, op: O.Exit) -> Result:
        mm = self.procs[op.proc]
        self.notifiers.release(op.proc)                # mmu_notifier_release
        del self.procs[op.proc]
        exit_mmap(mm)
        self._free_dropped_objects(mm.dropped_objects)
        return OK

    def _file(self, op: O.File) -> Result:
        if op.file in self.files:
            return errno(Errno.EEXIST)
        if op.npages >= O.FILE_LIMIT_PAGES:
            return errno(Errno.EINVAL)                  # ftruncate: negative loff_t
        self.files[op.file] = (BufferObject(op.file, op.npages) if op.devmem
                               else ShmemFile(op.file, op.npages))
        return OK

    def _file_for_io(self, op: Union[O.FileRead, O.FileWrite]) -> Union[ShmemFile, Result]:
        """fdget + rw_verify_area for read(2)/write(2): the file, or the errno result."""
        f = self.files.get(op.file)
        if f is None:
            return errno(Errno.EBADF)
        if op.pgoff >= O.FILE_LIMIT_PAGES:
            return errno(Errno.EINVAL)                  # pos < 0 as a loff_t
        return f

    def _fread(self, op: O.FileRead) -> Result:
        f = self._file_for_io(op)
        return f if isinstance(f, Result) else value(f.read(op.pgoff))

    def _fwrite(self, op: O.FileWrite) -> Result:
        f = self._file_for_io(op)
        if isinstance(f, Result):
            return f
        f.write(op.pgoff, op.value & O.U64_MASK)
        return OK

    def _pin(self, op: O.Pin) -> Result:
        h = pin_user_pages(self.procs[op.proc], op.vpn, op.npages, op.mode.write,
                           op.mode.longterm)
        if isinstance(h, Errno):
            return errno(h)
        self.npins += 1                                 # a failed pin creates no name
        hname = f"h{self.npins}"
        self.pins[hname] = h
        return name(hname)

    def _pin_page(self, op: Union[O.PinRead, O.PinWrite]) -> Union[PinHandle, Result]:
        """The live handle and a valid index, or EINVAL (no such pin, or out of range)."""
        h = self.pins.get(op.pin)
        if h is None or op.index >= len(h.pages):
            return errno(Errno.EINVAL)
        return h

    def _pread(self, op: O.PinRead) -> Result:
        h = self._pin_page(op)
        return h if isinstance(h, Result) else value(h.pages[op.index].value)

    def _pwrite(self, op: O.PinWrite) -> Result:
        h = self._pin_page(op)
        if isinstance(h, Result):
            return h
        if not h.write:
            return errno(Errno.EPERM)                   # DMA write through a read-only pin
        page = h.pages[op.index]
        assert isinstance(page, Folio), f"a FOLL_WRITE pin holds the zero page: {op}"
        folio_store(page, op.value)
        return OK

    def _unpin(self, op: O.Unpin) -> Result:
        h = self.pins.pop(op.pin, None)
        if h is None:
            return errno(Errno.EINVAL)
        unpin_user_pages(h)
        return OK

    def _poke(self, op: O.Poke) -> Result:
        return _status(poke(self.procs[op.proc], op.vpn, op.value))

    def _wp_range(self, op: O.WpRange) -> Result:
        """wp_shared_mapping_range over the file's mapping (dirty.py)."""
        f = self.files.get(op.file)
        if f is None:
            return errno(Errno.EBADF)
        if isinstance(f, BufferObject):
            f.tracked = True                            # vmw_bo_dirty_add: MKWRITE tracking
        n, self.warnings = wp_shared_mapping_range(self.procs, f, op.pgoff, op.npages,
                                                   self.warnings)
        return value(n)

    def _clean_record(self, op: O.CleanRecord) -> Result:
        """clean_record_shared_mapping_range, bitmap_pgoff = pgoff (dirty.py)."""
        f = self.files.get(op.file)
        if f is None:
            return errno(Errno.EBADF)
        if isinstance(f, BufferObject):
            f.tracked = True
        total, bits, self.warnings = clean_record_shared_mapping_range(
            self.procs, f, op.pgoff, op.npages, self.warnings)
        return text_result(bits_text(total, bits))

    def _clear_refs(self, op: O.ClearRefs) -> Result:
        """clear_refs_write(CLEAR_REFS_SOFT_DIRTY) (softdirty.py); ESRCH checked above."""
        clear_refs_soft_dirty(self.procs[op.proc])
        return OK

    def _ksm_scan(self, op: O.KsmScan) -> Result:
        procs = self._rmap_order()
        return value(ksm_scan(procs))

    def _mirror(self, op: O.Mirror) -> Result:
        r = self.notifiers.insert(op.dev, op.proc, op.vpn, op.npages)
        return errno(r) if isinstance(r, Errno) else name(r)

    def _unmirror(self, op: O.Unmirror) -> Result:
        return _status(self.notifiers.remove(op.sub))

    def _dread(self, op: O.DevRead) -> Result:
        r = self.devops.read(op.dev, op.proc, op.vpn)
        return errno(r) if isinstance(r, Errno) else value(r)

    def _dwrite(self, op: O.DevWrite) -> Result:
        return _status(self.devops.write(op.dev, op.proc, op.vpn, op.value))

    def _dexcl(self, op: O.DevExclusive) -> Result:
        r = self.devops.exclusive(op.dev, op.proc, op.vpn)
        return errno(r) if isinstance(r, Errno) else OK

    def _datomic(self, op: O.DevAtomic) -> Result:
        r = self.devops.atomic_add(op.dev, op.proc, op.vpn, op.add)
        return errno(r) if isinstance(r, Errno) else value(r)

    def _devents(self, op: O.DevEvents) -> Result:
        events = sorted(self.notifiers.take_events(op.dev), key=event_sort_key)
        return text_result(" ".join(events) if events else "none")

    def _lock_target(self, op: Union[O.Lock, O.Unlock]) -> Optional[Folio]:
        """The frame an entry at vpn maps (present or device-exclusive), not the zero page."""
        mm = self.procs[op.proc]
        pte = mm.ptes.get(op.vpn) if mm.find_vma(op.vpn) is not None else None
        return pte.page if pte is not None and isinstance(pte.page, Folio) else None

    def _lock(self, op: O.Lock) -> Result:
        folio = self._lock_target(op)
        if folio is None:
            return errno(Errno.EFAULT)
        if folio.locked:
            return errno(Errno.EBUSY)                   # folio_trylock fails
        folio.locked = True
        return OK

    def _unlock(self, op: O.Unlock) -> Result:
        folio = self._lock_target(op)
        if folio is None or not folio.locked:
            return errno(Errno.EINVAL)
        folio.locked = False
        return OK

    def _set(self, op: O.Set) -> Result:
        """The sysfs knobs and the THP allocation outcome."""
        k, v = op.key, op.value
        if k is O.SetKey.THP:
            self.thp.enabled = v
        elif k is O.SetKey.THP_ZERO:
            self.thp.use_zero_page = v == "1"
        elif k is O.SetKey.THP_ALLOC:
            self.thp.alloc_ok = v == "ok"
        else:
            self.thp.max_ptes_none = int(v, 0)
        return OK

    def _split(self, op: O.Split) -> Result:
        """split_huge_pmd_address, forced: EFAULT without a VMA, EINVAL without a huge PMD."""
        mm = self.procs[op.proc]
        if mm.find_vma(op.vpn) is None:
            return errno(Errno.EFAULT)
        return OK if mm.split_huge_pmd(op.vpn >> 9) else errno(Errno.EINVAL)

    def _split_folio(self, op: O.SplitFolio) -> Result:
        """debugfs split_huge_pages at one address: EFAULT without a VMA, EINVAL unless a
        present entry maps a THP page, EBUSY when the folio lock is taken or the split
        is refused (can_split_folio)."""
        mm = self.procs[op.proc]
        if mm.find_vma(op.vpn) is None:
            return errno(Errno.EFAULT)
        thp = thp_at(mm, op.vpn)
        if thp is None:
            return errno(Errno.EINVAL)
        if thp.locked:                                  # folio_trylock
            return errno(Errno.EBUSY)
        err = split_folio(self._rmap_order(), thp, op.vpn & ~(HPAGE_PMD_NR - 1))
        return OK if err is None else errno(err)

    def _rmap_order(self) -> list[Mm]:
        """Every live process, by pid: the order an rmap walk meets them in."""
        return [self.procs[p] for p in sorted(self.procs, key=lambda n: int(n[1:]))]

    def _state(self, op: O.State) -> Result:
        pte = self.procs[op.proc].ptes.get(op.vpn)
        return text_result((pte.view() if pte is not None else NONE_PAGE).describe())

    def _same(self, op: O.Same) -> Result:
        a = self.procs[op.proc].ptes.get(op.vpn)
        b = self.procs[op.proc2].ptes.get(op.vpn2)
        same = a is not None and b is not None and a.page is not None and a.page is b.page
        return text_result("yes" if same else "no")
