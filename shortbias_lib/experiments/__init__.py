"""The book's experiments, one subpackage (or module) each; none imports another."""
