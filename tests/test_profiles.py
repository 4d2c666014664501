import pytest

from effcourse import profiles


def test_default_profile_is_workshop(monkeypatch):
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    assert profiles.current().name == "workshop"


def test_env_var_picks_profile_case_insensitively(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, " Full ")
    assert profiles.current().name == "full"


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "quick")
    with pytest.raises(profiles.ProfileError) as err:
        profiles.current()
    message = str(err.value)
    assert "'quick'" in message
    for name in ("smoke", "workshop", "full"):
        assert name in message


def test_epochs_scale_with_profile():
    assert profiles.get("full").epochs(60) == 60
    assert profiles.get("workshop").epochs(60) == 10  # 30% = 18, capped at 10
    assert profiles.get("workshop").epochs(10) == 3
    assert profiles.get("smoke").epochs(60) == 2
    assert profiles.get("smoke").epochs(1) == 1
    with pytest.raises(ValueError):
        profiles.get("full").epochs(0)


def test_profiles_grow_in_data_and_repeats():
    smoke, workshop, full = (profiles.get(n) for n in ("smoke", "workshop", "full"))
    assert smoke.train_images < workshop.train_images and full.train_images is None
    assert smoke.test_images < workshop.test_images and full.test_images is None
    assert smoke.latency_runs < workshop.latency_runs < full.latency_runs
