"""The training and meta-optimization engine that every experiment uses."""
