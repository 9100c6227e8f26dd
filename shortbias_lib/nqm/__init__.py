"""The noisy quadratic model of Section 2 and what the book builds on it."""
