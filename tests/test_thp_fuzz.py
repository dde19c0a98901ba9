"""Issue 5 "Fuzzing": the byte decoder, the Hypothesis strategies and the lockstep machine
reach the THP ops (madvise hugepage / nohugepage / collapse, split, set thp /
thp_zero / thp_alloc / max_ptes_none), whole 512-aligned private anon blocks with
hugepage and writes inside them, CPU and range ops that cut such blocks, and the
dirty-tracking ops (clear_refs, wp_range, clean_record) on files a shared mapping maps.

Outcomes are measured on the reference model (the oracle), never on the decoder's own
tracker. Thresholds are floors (about half of what the decoder reaches on these seeds,
or less), so they fail when reach collapses, not when it moves a little. Figures on
200 programs of 2 KB when written (decoder before issue 5 in brackets): THP ops 4.7%
of decoded ops (1.5%), dirty ops 1.7% (1.1%); per program: a whole-block mapping with
hugepage (or thp always) and a write inside it 0.66 (0), a write into a huge PMD 0.37
(0), a split that finds a huge PMD 0.13 (0), a folio split that splits 0.19 (added
with the op), an ok collapse 0.46 (0.15), a
clean_record that records dirty pages 0.11 (0.01).
"""
from __future__ import annotations

import random
from collections import Counter
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test

from mmdiff.fuzz import strategies as S
from mmdiff.fuzz.decoder import decode, encode
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.text import format_prog, parse
from mmdiff.reference import ops as O
from mmdiff.reference.folio import Thp
from mmdiff.reference.machine import ReferenceMachine
from mmdiff.reference.pagetable import HugePte
from mmdiff.reference.results import ResultKind

HP = O.HPAGE_PMD_NR
THP_ADVICE = (O.Advice.HUGEPAGE, O.Advice.NOHUGEPAGE, O.Advice.COLLAPSE)
PRIVATE_ANON = frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON})


def _inputs(seed: int, n: int, size: int = 2048):
    r = random.Random(seed)
    for _ in range(n):
        yield r.randbytes(size)


def _is_thp_op(op) -> bool:
    return isinstance(op, (O.Split, O.Set)) or (isinstance(op, O.Madvise)
                                                 and op.advice in THP_ADVICE)


def _whole_blocks(op) -> bool:
    return (isinstance(op, O.Mmap) and op.file is None and op.flags == PRIVATE_ANON
            and op.vpn > 0 and op.npages > 0 and op.vpn % HP == 0 and op.npages % HP == 0)


def _huge_block_written(ops) -> bool:
    """Does the program map whole 512-aligned private anon blocks at a fixed address,
    make them THP-eligible (madvise hugepage over the mapping, or `set thp always`
    in effect), then write inside them? (Read from the program text alone.)"""
    blocks, always = [], False
    for op in ops:
        if isinstance(op, O.Set) and op.key is O.SetKey.THP:
            always = op.value == "always"
        elif _whole_blocks(op):
            blocks.append([op.proc, op.vpn, op.vpn + op.npages, False])
        elif isinstance(op, O.Madvise) and op.advice is O.Advice.HUGEPAGE:
            for b in blocks:
                if b[0] == op.proc and op.vpn <= b[1] and b[2] <= op.vpn + op.npages:
                    b[3] = True
        elif isinstance(op, O.Write):
            if any(b[0] == op.proc and b[1] <= op.vpn < b[2] and (b[3] or always)
                   for b in blocks):
                return True
    return False


def _huge_blocks(mm) -> set[int]:
    """The block indexes (vpn >> 9) of mm that a THP maps with a huge PMD."""
    return {v >> 9 for v, e in mm.ptes.items()
            if isinstance(e, HugePte) and isinstance(e.pmd.folio, Thp)}


# --- the decoder ---------------------------------------------------------------------------

def test_decoder_op_mix_gives_thp_and_dirty_ops_a_real_share():
    count, total = Counter(), 0
    for data in _inputs(seed=51, n=300):
        for op in decode(data).ops():
            total += 1
            count["thp"] += _is_thp_op(op)
            count["dirty"] += isinstance(op, (O.ClearRefs, O.WpRange, O.CleanRecord))
            count[op.advice.value if isinstance(op, O.Madvise) else op.NAME] += 1
    share = {k: v / total for k, v in count.items()}
    assert share["thp"] >= 0.025 and share["dirty"] >= 0.01, share
    for name in ("split", "set", "hugepage", "collapse", "clear_refs", "clean_record"):
        assert share[name] >= 0.003, (name, share)
    assert share["nohugepage"] > 0 and share["wp_range"] > 0, share


def test_decoded_mmaps_are_often_whole_private_anon_blocks():
    """A good share of anon mmaps are private, 512-page multiples at 512-aligned VPNs."""
    anon = blocks = 0
    for data in _inputs(seed=52, n=200):
        for op in decode(data).ops():
            if isinstance(op, O.Mmap) and op.file is None:
                anon += 1
                blocks += _whole_blocks(op)
    assert blocks >= 0.12 * anon, (blocks, anon)


@cache
def _reference_stats(n: int = 150, seed: int = 53) -> dict:
    """Per program (share of n decoded 2 KB programs run on the reference): what THP
    and dirty-tracking states it reached."""
    per: Counter = Counter()
    for data in _inputs(seed=seed, n=n):
        m, seen = ReferenceMachine(), set()
        ops = decode(data).ops()
        if _huge_block_written(ops):
            seen.add("block with hugepage written")
        for op in ops:
            mm = m.procs.get(getattr(op, "proc", "") or "")
            huge = _huge_blocks(mm) if mm is not None and isinstance(
                op, (O.Munmap, O.Mprotect, O.Madvise, O.Fork, O.Pin, O.Poke)) else set()
            if huge and isinstance(op, (O.Munmap, O.Mprotect, O.Madvise)):
                end = op.vpn + min(op.npages, 1 << 30)
                for idx in huge:
                    if op.vpn < (idx + 1) * HP and idx * HP < end:
                        whole = op.vpn <= idx * HP and (idx + 1) * HP <= end
                        seen.add(f"{op.NAME} {'whole' if whole else 'part of'} a THP")
            elif huge and isinstance(op, O.Fork):
                seen.add("fork with a THP")
            elif huge and isinstance(op, (O.Pin, O.Poke)) and op.vpn >> 9 in huge:
                seen.add(f"{op.NAME} in a THP")
            res = m.execute(op)
            if isinstance(op, O.Write) and res.kind is ResultKind.OK:
                if op.vpn >> 9 in _huge_blocks(m.procs[op.proc]):
                    seen.add("write into a THP")
            elif isinstance(op, (O.Split, O.SplitFolio)):
                seen.add(f"{op.NAME} {res}")
            elif isinstance(op, O.Madvise) and op.advice is O.Advice.COLLAPSE:
                seen.add(f"collapse {res}")
            elif isinstance(op, O.CleanRecord) and res.kind is ResultKind.TEXT \
                    and not str(res).startswith("0x0 "):
                seen.add("clean_record found dirty pages")
            elif isinstance(op, O.WpRange) and res.kind is ResultKind.VALUE and res.payload:
                seen.add("wp_range protected pages")
            elif isinstance(op, O.Set) and op.key is not O.SetKey.MAX_PTES_NONE:
                seen.add(f"set {op.key.value} {op.value}")
        per.update(seen)
    return {k: v / n for k, v in per.items()}


def test_decoded_programs_map_write_and_cut_thps():
    per = _reference_stats()

    def at_least(key: str, want: float) -> None:
        assert per.get(key, 0) >= want, (key, per)

    at_least("block with hugepage written", 0.3)
    at_least("write into a THP", 0.15)
    at_least("split ok", 0.04)
    at_least("split EINVAL", 0.2)
    at_least("split_folio ok", 0.08)
    at_least("collapse ok", 0.2)
    at_least("fork with a THP", 0.1)
    at_least("munmap part of a THP", 0.03)
    at_least("mprotect part of a THP", 0.03)
    at_least("madvise part of a THP", 0.03)
    for mode in ("always", "madvise", "never"):
        at_least(f"set thp {mode}", 0.05)
    at_least("set thp_alloc fail", 0.05)
    at_least("set thp_zero 0", 0.05)


def test_decoded_dirty_tracking_finds_dirty_pages():
    per = _reference_stats()
    assert per.get("clean_record found dirty pages", 0) >= 0.04, per
    assert per.get("wp_range protected pages", 0) >= 0.02, per


def test_thp_alloc_fail_does_not_stay_on_for_long():
    """Most `set thp_alloc fail` lines are followed within 12 ops by `set thp_alloc ok`
    (the decoder substitutes it for a later read or write), and some fault or
    collapse comes in between."""
    fails = soon = 0
    for data in _inputs(seed=54, n=300):
        ops = decode(data).ops()
        for i, op in enumerate(ops):
            if isinstance(op, O.Set) and op.key is O.SetKey.THP_ALLOC and op.value == "fail":
                fails += 1
                soon += any(isinstance(o, O.Set) and o.key is O.SetKey.THP_ALLOC
                            for o in ops[i + 1:i + 13])
    assert fails >= 30 and soon >= 0.7 * fails, (soon, fails)


def test_round_trip_of_thp_and_dirty_programs():
    """Ops the decoder would substitute (a read or write right after a whole-block
    mmap or while thp_alloc fail holds, a clean_record with nothing dirtied) and
    every THP / dirty op encode exactly."""
    F = O.MapFlag
    ops = [
        O.Set(O.SetKey.THP, "madvise"),
        O.Mmap("p0", 0x200, 0x400, O.Prot.RW, PRIVATE_ANON),
        O.Write("p0", 0x210, 1),                 # not madvised first: stays a write
        O.Read("p0", 0x3ff),
        O.Madvise("p0", 0x200, 0x400, O.Advice.HUGEPAGE),
        O.Write("p0", 0x400, 2),
        O.Set(O.SetKey.THP_ALLOC, "fail"),
        O.Read("p0", 0x401), O.Write("p0", 0x402, 3), O.Write("p0", 0x403, 4),
        O.Madvise("p0", 0x200, 0x200, O.Advice.COLLAPSE),
        O.Set(O.SetKey.THP_ALLOC, "ok"),
        O.Split("p0", 0x401),
        O.Split("p0", 0x12345),
        O.Set(O.SetKey.THP_ZERO, "0"),
        O.Set(O.SetKey.MAX_PTES_NONE, "17"),
        O.Fork("p0"),
        O.File("f0", 8),
        O.CleanRecord("f0", 0, 8),               # nothing dirtied, no shared mapping
        O.Mmap("p1", 0x100, 8, O.Prot.RW, frozenset({F.SHARED}), "f0", 0),
        O.WpRange("f0", 0, 8),                   # a shared mapping, nothing dirtied
        O.Write("p1", 0x102, 5),
        O.CleanRecord("f0", 2, 1),
        O.WpRange("f0", 1, 0),
        O.ClearRefs("p1"),
        O.Madvise("p1", 0x200, 0x200, O.Advice.NOHUGEPAGE),
    ]
    prog = Prog.of(ops)
    parse(format_prog(prog))
    assert decode(encode(prog)).ops() == ops


def test_decoded_thp_programs_encode_back_exactly():
    for data in _inputs(seed=55, n=120):
        prog = decode(data)
        assert decode(encode(prog)).ops() == prog.ops(), data.hex()


# --- strategies --------------------------------------------------------------------------

def _drawn_programs(n: int, **kw) -> list[Prog]:
    out: list[Prog] = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(S.programs(**kw))
    def draw(prog) -> None:
        out.append(prog)

    draw()
    return out


def test_programs_draw_thp_and_dirty_ops_aimed_at_blocks():
    progs = _drawn_programs(150)
    seen: Counter = Counter()
    for prog in progs:
        ops = prog.ops()
        seen["block written"] += _huge_block_written(ops)
        for op in ops:
            seen[op.advice.value if isinstance(op, O.Madvise) else op.NAME] += 1
            seen["whole-block mmap"] += _whole_blocks(op)
            seen["split in a block"] += isinstance(op, O.Split) and HP <= op.vpn < 3 * HP
    for key in ("hugepage", "collapse", "nohugepage", "split", "set", "clear_refs",
                "wp_range", "clean_record", "whole-block mmap", "split in a block"):
        assert seen[key] >= 3, (key, seen)
    assert seen["block written"] >= 2, seen
    # the same aim with only the THP kinds and writes drawn
    written = sum(_huge_block_written(p.ops()) for p in _drawn_programs(
        100, weights={"huge_mmap": 2, "thp": 1, "block": 2, "write": 3}))
    assert written >= 20, written


def test_programs_end_thp_alloc_fail_within_a_few_ops():
    fails = ended = 0
    for prog in _drawn_programs(300, min_ops=16, weights={"thp": 6, "write": 2, "huge_mmap": 1}):
        ops = prog.ops()
        for i, op in enumerate(ops[:-8]):       # fails with 8 ops after them
            if isinstance(op, O.Set) and op.key is O.SetKey.THP_ALLOC and op.value == "fail":
                fails += 1
                ended += any(isinstance(o, O.Set) and o.key is O.SetKey.THP_ALLOC
                             for o in ops[i + 1:i + 9])
    assert fails >= 6 and ended >= 0.6 * fails, (ended, fails)   # 8 of 8 when written


# --- the lockstep machine --------------------------------------------------------------------

def test_machine_thp_rules_reach_huge_pmds_and_cut_them():
    """Driven by hand: a hugepage block written is a THP; a single-page munmap inside
    it splits it (both models agree: the machine checks after each step)."""
    from mmdiff.fuzz import machine as M
    m = M.LockstepMachine()
    blk = m.huge_mmap("p0", HP, HP, O.Prot.RW, "hugepage", 1, 7)
    assert str(m.reference.execute(O.State("p0", HP))).startswith("anon pmd"), m.ops
    m.models_agree()
    m.block_touch(blk, "p0", O.Munmap, 0, (HP - 1, 1), 0, O.Prot.RW)
    m.models_agree()
    assert str(m.reference.execute(O.State("p0", HP + 1))).startswith("anon pte"), m.ops
    m.thp_setting((O.SetKey.THP_ALLOC, "fail"), blk, 5, 3, 2)
    assert m.ops[-1] == O.Set(O.SetKey.THP_ALLOC, "ok"), m.ops
    fm = m.shared_map("p0", m.f0(8), 0x100, 4, 0, 1, 9)
    m.dirty_track(fm, "p0", O.CleanRecord, 0, 0, 0, 1)
    assert str(m._step(O.State("p0", 0x101))) != "none"
    m.models_agree()


def test_machine_runs_reach_thp_and_dirty_ops():
    """Bounded Hypothesis runs of the real machine with the THP and dirty families on
    (each is on in a third of the runs of TestLockstep) draw the new rules: THP
    advices, splits, settings, clean_record / wp_range / clear_refs, writes into THPs
    and range ops that cut them; the models agree throughout."""
    from hypothesis.stateful import initialize, multiple

    from mmdiff.fuzz import machine as M
    seen: Counter = Counter()

    class Recording(M.LockstepMachine):
        @initialize(target=M.LockstepMachine.subs)
        def topics(self):
            self.topics = {"thp", "dirty"}
            return multiple()

        def teardown(self) -> None:
            ref = ReferenceMachine()
            for op in self.ops:
                huge = _huge_blocks(ref.procs[op.proc]) \
                    if getattr(op, "proc", None) in ref.procs else set()
                if isinstance(op, (O.Munmap, O.Mprotect, O.Madvise)) and any(
                        op.vpn < (i + 1) * HP and i * HP < op.vpn + op.npages
                        and not (op.vpn <= i * HP and (i + 1) * HP <= op.vpn + op.npages)
                        for i in huge):
                    seen["range op cuts a THP"] += 1
                ref.execute(op)
                if isinstance(op, O.Write) and op.proc in ref.procs \
                        and op.vpn >> 9 in _huge_blocks(ref.procs[op.proc]):
                    seen["write into a THP"] += 1
                seen[op.advice.value if isinstance(op, O.Madvise) else op.NAME] += 1

    run_state_machine_as_test(Recording, settings=settings(
        max_examples=120, stateful_step_count=30, deadline=None, derandomize=True,
        database=None, suppress_health_check=list(HealthCheck)))
    for key in ("hugepage", "collapse", "split", "set", "clean_record", "wp_range",
                "clear_refs", "write into a THP", "range op cuts a THP"):
        assert seen[key] >= 3, (key, seen)


@pytest.mark.parametrize("mode", ["always", "madvise"])
def test_huge_mmap_strategy_blocks_fault_in_thps(mode):
    """The strategies' whole-block mmaps at fixed addresses, madvised or under thp
    always, give a huge PMD on the reference when written."""
    m = ReferenceMachine()
    m.execute(O.Set(O.SetKey.THP, mode))
    for vpn in sorted({v for v in S.BLOCK_STARTS if v}):
        assert m.execute(O.Mmap("p0", vpn, HP, O.Prot.RW, S.ANON_FLAGS[0])).payload == vpn
        if mode == "madvise":
            m.execute(O.Madvise("p0", vpn, HP, O.Advice.HUGEPAGE))
        m.execute(O.Write("p0", vpn + 3, 1))
        assert vpn >> 9 in _huge_blocks(m.procs["p0"]), vpn
