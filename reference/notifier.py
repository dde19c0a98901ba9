"""MMU interval notifiers and the device side they protect (mm/mmu_notifier.c,
lib/test_hmm.c as the model driver).

A subscription (mmu_interval_notifier_insert) watches [start, end) of one process.
mmu_notifier_invalidate_range_start calls every live subscription whose interval
intersects the range (mn_itree_invalidate); the driver's callback records the
event, bumps the sequence (mmu_interval_set_seq) and drops the device mappings in
the range, except when the event is EXCLUSIVE and the driver itself is the owner
(it is converting that page for its own atomic access: nouveau_svm / test_hmm skip).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .folio import Folio, ZeroPage
from .ops import ADDR_LIMIT_PAGES
from .results import Errno
from .state import event_text

Page = Union[Folio, ZeroPage]


@dataclass
class Device:
    """A device's page table (mirror) and the invalidations it received since `devents`."""

    mirror: dict[tuple[str, int], tuple[Page, str]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


@dataclass
class Subscription:
    """struct mmu_interval_notifier: device, process, [start, end) in pages."""

    dev: str
    proc: str
    start: int
    end: int
    seq: int = 0


class Notifiers:
    """All subscriptions and devices of the machine."""

    def __init__(self) -> None:
        self.subs: dict[str, Subscription] = {}     # live subscriptions m1, m2, ...
        self.nsubs = 0                              # successful `mirror` ops so far
        self.devices: dict[str, Device] = {}

    def device(self, name: str) -> Device:
        """Devices exist implicitly: the first mention creates the record."""
        return self.devices.setdefault(name, Device())

    def insert(self, dev: str, proc: str, vpn: int, npages: int) -> Union[str, Errno]:
        """mmu_interval_notifier_insert: EOVERFLOW for an empty or wrapping interval."""
        if npages == 0 or vpn + npages > ADDR_LIMIT_PAGES:
            return Errno.EOVERFLOW
        self.nsubs += 1
        name = f"m{self.nsubs}"
        self.subs[name] = Subscription(dev, proc, vpn, vpn + npages)
        self.device(dev)
        return name

    def remove(self, name: str) -> Optional[Errno]:
        """mmu_interval_notifier_remove; the driver drops its mappings in the interval."""
        sub = self.subs.pop(name, None)
        if sub is None:
            return Errno.EINVAL
        self._drop(self.device(sub.dev), sub.proc, sub.start, sub.end)
        return None

    def covered(self, dev: str, proc: str, vpn: int) -> bool:
        """Does a live subscription of dev on proc watch vpn (hmm_range_fault needs one)?"""
        return any(s.dev == dev and s.proc == proc and s.start <= vpn < s.end
                   for s in self.subs.values())

    def invalidate(self, proc: str, kind: str, start: int, end: int,
                   owner: Optional[str]) -> None:
        """mmu_notifier_invalidate_range_start over [start, end) of proc."""
        for name, sub in self.subs.items():
            if sub.proc == proc and sub.start < end and start < sub.end:
                self._deliver(name, sub, kind, max(start, sub.start), min(end, sub.end), owner)

    def release(self, proc: str) -> None:
        """mn_itree_release at exit: every subscription of proc gets RELEASE over it all."""
        for name, sub in self.subs.items():
            if sub.proc == proc:
                self._deliver(name, sub, "release", sub.start, sub.end, None)

    def _deliver(self, name: str, sub: Subscription, kind: str, s: int, e: int,
                 owner: Optional[str]) -> None:
        """The driver callback (dmirror_interval_invalidate / nouveau_svm)."""
        dev = self.device(sub.dev)
        dev.events.append(event_text(name, kind, s, e, owner))
        if kind == "exclusive" and owner == sub.dev:
            return                                  # the owner's own conversion
        sub.seq += 1                                # mmu_interval_set_seq
        self._drop(dev, sub.proc, s, e)

    @staticmethod
    def _drop(dev: Device, proc: str, start: int, end: int) -> None:
        for key in [k for k in dev.mirror if k[0] == proc and start <= k[1] < end]:
            del dev.mirror[key]

    def take_events(self, dev: str) -> list[str]:
        """`devents`: the pending events, then none."""
        d = self.device(dev)
        events, d.events = d.events, []
        return events
