"""Each chapter's facts: the numbers and verdicts its prose quotes, one function per section.

Named after the chapters (``book/NAME.py``): :mod:`.smd`, :mod:`.nqm_theory`, :mod:`.nqm_experiments`,
:mod:`.nqm_prediction`, :mod:`.offline_mnist`, :mod:`.hypergrad_precision`, :mod:`.online_smd`,
:mod:`.beyond`. The top floor, like the command line: a chapter's facts may import any experiment.
Import each chapter's module (this package loads none)."""
