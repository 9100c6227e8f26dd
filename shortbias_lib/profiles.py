"""Run profiles: one code path, three sizes.

``smoke`` runs each notebook in seconds (the test suite), ``quick`` is the
default for the book (all of it within 30 minutes on 2 CPU cores) and
``paper`` is the paper's full scale, meant for one GPU.
"""

PROFILES = ("smoke", "quick", "paper")
DEFAULT_PROFILE = "quick"


def check_profile(profile, extra=()):
    """Return ``profile`` if it names a known profile (or one of an experiment's ``extra``
    profiles, e.g. the offline experiment's ``archive``), else raise ``ValueError``."""
    allowed = PROFILES + tuple(extra)
    if profile not in allowed:
        raise ValueError(
            f"profile must be one of {', '.join(allowed)}; got {profile!r}")
    return profile


def pick(profile, sizes):
    """Return ``sizes[profile]`` from a mapping with one entry per profile: the one style in
    which experiments and chapters declare their sizes.

    ``sizes`` needs an entry for each of :data:`PROFILES`; any other key is an extra profile
    of that experiment (e.g. the offline experiment's ``archive``), allowed here too.

    >>> pick("smoke", {"smoke": 10, "quick": 100, "paper": 1000})
    10
    >>> pick("archive", {"smoke": 1, "quick": 2, "paper": 3, "archive": 4})
    4
    """
    check_profile(profile, extra=tuple(name for name in sizes if name not in PROFILES))
    missing = [p for p in PROFILES if p not in sizes]
    if missing:
        raise KeyError(f"sizes lack an entry for profile(s) {missing}")
    return sizes[profile]
