"""Searching stage widths x input views for the best subnet under a budget:
greedy, as AutoSlim, on a held-out split of the training data, with FLOPs or
a per-stage latency table as the cost (``tools/search_subnet.py``)."""
from .held_out import HeldOutSplit, default_held_out, held_out_split
from .latency import StageLatencyTable, build_latency_table, check_latency_table
from .scoring import HeldOutScorer
from .search import check_budgets, export_command, search_subnet
from .space import (best_under, drop_per_cost, evaluation_bound, greedy_walk,
                    lower_one_stage, search_grid)

__all__ = ['HeldOutSplit', 'default_held_out', 'held_out_split', 'StageLatencyTable',
           'build_latency_table', 'check_latency_table', 'HeldOutScorer', 'check_budgets',
           'export_command', 'search_subnet', 'best_under', 'drop_per_cost',
           'evaluation_bound', 'greedy_walk', 'lower_one_stage', 'search_grid']
