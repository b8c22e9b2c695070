"""The split test now lives in :mod:`workflows.split_test` (spec validation needs it too)."""

from workflows.split_test import DEFAULT_ALPHA, acceptance_range, binomial_two_sided_p_value

__all__ = ["DEFAULT_ALPHA", "acceptance_range", "binomial_two_sided_p_value"]
