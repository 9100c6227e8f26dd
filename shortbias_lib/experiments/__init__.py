"""The book's experiments: Figure 3 (:mod:`.figure3`), and one subpackage each for
:mod:`.offline`, :mod:`.online`, :mod:`.precision` and :mod:`.beyond`.

Each declares its sizes per profile and runs through :func:`shortbias_lib.runs.run_or_resume`
(``python -m shortbias_lib NAME`` runs the same functions). No experiment imports another: what
they share lives in :mod:`shortbias_lib.engine` and :mod:`shortbias_lib.runs`. Import each
experiment from its own module or subpackage (this package loads none of them).
"""
