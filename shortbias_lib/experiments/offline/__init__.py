"""Offline meta-optimization of an inverse-time decay schedule on MNIST (Section 3.2)."""
