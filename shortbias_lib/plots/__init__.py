"""Plotting that no experiment owns: the book's style and panels, and the noisy quadratic's explorer."""
