import dataclasses
import json

import pytest

from effcourse import paths, results
from effcourse.report import ReportCard


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    return tmp_path


def card(**changes) -> ReportCard:
    base = ReportCard(
        model="m", lesson="01", kind="keras", accuracy=0.5, test_images=100, params=1000, nonzero_params=900,
        sparsity=0.1, macs=10_000, nonzero_macs=9_000, bytes=8_000, gzip_bytes=4_000, latency_ms=1.0,
        latency_p95_ms=1.5, latency_runs=10, threads=2, throughput_ips=500.0, throughput_batch=256,
        energy_mj=0.5, energy_method="estimated: CPU time x 5.0 W/core", profile="smoke", data="SYNTHETIC",
        hardware="cpu", versions={"tensorflow": "2.21.0"}, timestamp="2026-01-01T00:00:00+00:00",
    )
    return dataclasses.replace(base, **changes)


def test_record_and_load_round_trip(workdir):
    c = card()
    results.record(c)
    assert results.store_path().parent == workdir
    assert results.load() == [c]


def test_filters_and_latest(workdir):
    results.record(card(timestamp="2026-01-01T00:00:00+00:00", accuracy=0.4))
    results.record(card(timestamp="2026-01-02T00:00:00+00:00", accuracy=0.6))  # same model re-measured
    results.record(card(model="other", lesson="02", timestamp="2026-01-03T00:00:00+00:00"))
    results.record(card(profile="workshop", timestamp="2026-01-04T00:00:00+00:00"))
    assert [c.accuracy for c in results.load(lesson="01", profile="smoke")] == [0.6]
    assert len(results.load(lesson="01", profile="smoke", latest=False)) == 2
    assert [c.model for c in results.load(lesson="02")] == ["other"]
    assert [c.profile for c in results.load(since="2026-01-03T12:00:00+00:00")] == ["workshop"]


def test_unreadable_line_is_skipped_with_a_warning(workdir):
    results.record(card())
    with results.store_path().open("a") as f:
        f.write("{not json\n")
    with pytest.warns(UserWarning, match="line 2"):
        assert len(results.load()) == 1


def test_compare_table_and_conditions():
    table = results.compare([card(), card(model="small", params=100, accuracy=0.45)])
    assert list(table["model"]) == ["m", "small"]
    assert list(table["accuracy %"]) == [50.0, 45.0]
    assert table.loc[0, "gzip KiB"] == pytest.approx(4000 / 1024, abs=0.05)
    assert "energy method" in table.columns
    assert results.describe_conditions(table) == "measured on: smoke profile, SYNTHETIC, cpu"


def test_plot_tradeoffs_has_one_point_per_card():
    fig = results.plot_tradeoffs([card(), card(model="small", gzip_bytes=1000, latency_ms=0.2)])
    assert [len(ax.collections) for ax in fig.axes] == [2, 2]
    with pytest.raises(ValueError, match="No report cards"):
        results.plot_tradeoffs([])


def test_store_is_json_lines(workdir):
    results.record(card())
    assert json.loads(results.store_path().read_text().splitlines()[0])["model"] == "m"
