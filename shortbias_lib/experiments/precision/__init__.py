"""Precision and sensitivity of long-horizon hypergradients."""
