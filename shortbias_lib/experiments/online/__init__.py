"""Online stochastic meta-descent on MNIST and CIFAR-10 (Section 3.3)."""
