"""Beyond the paper: the bias across horizons, its remedies, and PES."""
