"""Swap slots and the swap cache (mm/swapfile.c, mm/swap_state.c) of a zram-like
SWP_SYNCHRONOUS_IO device.

A slot keeps the contents written out, a count of the entries referencing it
(swap PTEs and swapped shmem pages: swap_map) and optionally the folio the swap
cache holds for it (SWAP_HAS_CACHE; the cache owns one folio reference). A slot
nothing references and nothing caches is free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .folio import Folio, folio_put


@dataclass(eq=False)
class SwapSlot:
    value: int
    count: int = 0                 # swap_map: entries referencing the slot
    cache: Optional[Folio] = None  # the swap-cache folio, if any

    def __repr__(self) -> str:
        return f"SwapSlot(val={self.value:#x} count={self.count} cached={self.cache is not None})"


def swap_cache_add(slot: SwapSlot, folio: Folio) -> None:
    """add_to_swap_cache: the cache takes a reference."""
    slot.cache, folio.swap_slot = folio, slot
    folio.refcount += 1


def swap_cache_del(folio: Folio) -> None:
    """delete_from_swap_cache: drop the cache's reference (the folio may be freed)."""
    slot = folio.swap_slot
    assert isinstance(slot, SwapSlot) and slot.cache is folio, f"not in the swap cache: {folio!r}"
    slot.cache, folio.swap_slot = None, None
    folio_put(folio)


def folio_free_swap(folio: Folio) -> bool:
    """folio_free_swap: leave the swap cache if no swap entry still needs the slot."""
    slot = folio.swap_slot
    if not isinstance(slot, SwapSlot) or slot.count > 0:
        return False
    swap_cache_del(folio)
    return True


def free_swap_cache(folio: Folio) -> None:
    """free_swap_cache (zap of a present entry): an unmapped, unlocked swap-cache folio
    whose slot no entry references leaves the cache."""
    if folio.swap_slot is not None and folio.mapcount == 0 and not folio.locked:
        folio_free_swap(folio)


def free_swap_and_cache(slot: SwapSlot) -> None:
    """free_swap_and_cache (zap of a swap entry): drop the reference; at zero, reclaim an
    unmapped, unlocked cache folio (__try_to_reclaim_swap with TTRS_UNMAPPED)."""
    assert slot.count > 0, f"swap_free of an unused slot {slot!r}"
    slot.count -= 1
    if slot.count == 0 and slot.cache is not None:
        free_swap_cache(slot.cache)
