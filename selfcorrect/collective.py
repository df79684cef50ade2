"""Collective decisions every rank must take together (each is one all-reduce; a single process skips it)."""

from __future__ import annotations

import torch


def any_rank(accelerator, flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one rank (still generating, asked to stop, bad gradients)."""
    if accelerator is None or accelerator.num_processes == 1:
        return flag
    value = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() > 0)


def max_over_ranks(accelerator, count: int) -> int:
    """The largest `count` over all ranks (e.g. how many contexts a padded collective generation call must hold)."""
    if accelerator is None or accelerator.num_processes == 1:
        return count
    value = torch.tensor([count], device=accelerator.device)
    return int(accelerator.reduce(value, reduction="max").item())
