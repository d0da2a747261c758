"""Class-balanced and deferred re-sampling shared among processes (DDP): explicit ranks, and torchrun with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gitaug.resampling import ClassBalancedSampler, DeferredResampler

LABELS = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)


def interleave(shares: list[list[int]]) -> list[int]:
    """Rank r's k-th index sits at position k * R + r of the global draw."""
    return [share[k] for k in range(len(shares[0])) for share in shares]


@pytest.mark.parametrize("replicas", [2, 3, 7])
def test_shares_of_a_balanced_draw_rebuild_the_single_process_draw(replicas):
    whole = ClassBalancedSampler(LABELS, num_samples=1000, seed=5)
    parts = [ClassBalancedSampler(LABELS, num_samples=1000, seed=5, num_replicas=replicas, rank=r) for r in range(replicas)]
    for epoch in (0, 3):
        whole.set_epoch(epoch)
        for part in parts:
            part.set_epoch(epoch)
        expected = list(whole)
        shares = [list(part) for part in parts]
        per_rank = -(-1000 // replicas)
        assert [len(share) for share in shares] == [per_rank] * replicas == [len(part) for part in parts]
        rebuilt = interleave(shares)
        # Padded like DistributedSampler: the draw, then its own first positions.
        assert rebuilt == expected + expected[: per_rank * replicas - 1000]


def test_deferred_resampler_shares_the_permutation_then_the_balanced_draw():
    whole = DeferredResampler(LABELS, start_epoch=1, seed=2)
    parts = [DeferredResampler(LABELS, start_epoch=1, seed=2, num_replicas=4, rank=r) for r in range(4)]
    for epoch in range(3):
        whole.set_epoch(epoch)
        for part in parts:
            part.set_epoch(epoch)
        assert all(part.resampling_active == (epoch >= 1) for part in parts)
        shares = [list(part) for part in parts]
        assert [len(share) for share in shares] == [250] * 4 == [len(part) for part in parts]
        assert interleave(shares) == list(whole)
        if epoch == 0:  # instance sampling: every item exactly once, split into disjoint shares
            assert sorted(i for share in shares for i in share) == list(range(1000))


def test_a_permutation_that_does_not_divide_is_padded_with_its_start():
    labels = [0, 0, 1, 1, 1]
    whole = list(DeferredResampler(labels, start_epoch=5, seed=0))
    shares = [list(DeferredResampler(labels, start_epoch=5, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shares] == [2, 2, 2]
    assert interleave(shares) == whole + whole[:1]
    # More ranks than items: the draw repeats whole to fill every share.
    many = [list(DeferredResampler([0, 1], start_epoch=5, seed=0, num_replicas=5, rank=r)) for r in range(5)]
    assert [len(s) for s in many] == [1] * 5 and sorted({i for s in many for i in s}) == [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_replicas": 0}, "num_replicas must be a positive integer, got 0"),
        ({"num_replicas": 2, "rank": 2}, r"rank must be an integer in \[0, num_replicas=2\), got 2"),
        ({"num_replicas": 2, "rank": -1}, "got -1"),
        ({"rank": 1}, r"num_replicas=1\), got 1"),  # no process group: one replica
    ],
)
def test_replica_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedSampler(LABELS, **kwargs)
    with pytest.raises(ValueError, match=message):
        DeferredResampler(LABELS, start_epoch=1, **kwargs)


WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributed as dist
    from gitaug.resampling import ClassBalancedSampler, DeferredResampler

    dist.init_process_group("gloo")
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    # No num_replicas / rank: both come from the process group.
    balanced = ClassBalancedSampler(labels, num_samples=3001, seed=11)
    deferred = DeferredResampler(labels, start_epoch=1, seed=11)
    record = {"world": balanced.num_replicas, "rank": balanced.rank, "balanced": [], "deferred": [], "lengths": []}
    for epoch in range(2):
        balanced.set_epoch(epoch)
        deferred.set_epoch(epoch)
        record["balanced"].append(list(balanced))
        record["deferred"].append(list(deferred))
        record["lengths"].append([len(balanced), len(deferred)])
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, record)
    if dist.get_rank() == 0:
        with open(sys.argv[1], "w") as out:
            json.dump(gathered, out)
    dist.destroy_process_group()
    """
)


def test_torchrun_ranks_share_one_global_draw(tmp_path):
    script, out = tmp_path / "worker.py", tmp_path / "shares.json"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    records = sorted(json.loads(out.read_text()), key=lambda record: record["rank"])
    assert [(r["world"], r["rank"]) for r in records] == [(2, 0), (2, 1)]

    single_balanced = ClassBalancedSampler(LABELS, num_samples=3001, seed=11)
    single_deferred = DeferredResampler(LABELS, start_epoch=1, seed=11)
    for epoch in range(2):
        single_balanced.set_epoch(epoch)
        single_deferred.set_epoch(epoch)
        balanced_shares = [r["balanced"][epoch] for r in records]
        assert [r["lengths"][epoch][0] for r in records] == [1501, 1501]
        expected = list(single_balanced)
        assert interleave(balanced_shares) == expected + expected[:1]  # 3001 padded to 3002
        union = [i for share in balanced_shares for i in share]
        frequencies = torch.bincount(LABELS[union], minlength=3).double() / len(union)
        assert torch.allclose(frequencies, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)

        deferred_shares = [r["deferred"][epoch] for r in records]
        assert interleave(deferred_shares) == list(single_deferred)
        if epoch == 0:  # instance sampling: a permutation splits into disjoint halves
            assert not set(deferred_shares[0]) & set(deferred_shares[1])
            assert sorted(deferred_shares[0] + deferred_shares[1]) == list(range(1000))
    # Epoch 1 re-samples class-balanced on every rank.
    deferred_epoch1 = [i for r in records for i in r["deferred"][1]]
    frequencies = torch.bincount(LABELS[deferred_epoch1], minlength=3).double() / len(deferred_epoch1)
    assert torch.allclose(frequencies, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.05)
