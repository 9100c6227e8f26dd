"""Profiles: the names every experiment accepts and the per-profile settings."""

import pytest

from shortbias_lib.profiles import PROFILES, check_profile, pick


def test_profiles_accept_known_and_reject_unknown_names():
    assert [check_profile(p) for p in PROFILES] == list(PROFILES)
    with pytest.raises(ValueError, match="profile must be one of smoke, quick, paper; got 'fast'"):
        check_profile("fast")
    assert pick("paper", {"smoke": 1, "quick": 2, "paper": 3}) == 3
    with pytest.raises(KeyError, match="paper"):
        pick("smoke", {"smoke": 1, "quick": 2})
