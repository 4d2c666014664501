import dataclasses
import json

import pytest

from effcourse import paths, results
from effcourse.results import ReportCard


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    return tmp_path


def card(**changes) -> ReportCard:
    base = ReportCard(
        model="m", lesson="01", kind="keras", deployed_as="float32 LiteRT", accuracy=0.5, accuracy_low=0.4,
        accuracy_high=0.6, test_images=100, params=1000, nonzero_params=900,
        sparsity=0.1, macs=10_000, nonzero_macs=9_000, bytes=8_000, gzip_bytes=4_000, latency_ms=1.0,
        latency_p95_ms=1.5, latency_runs=10, threads=2, throughput_ips=500.0, throughput_batch=256,
        energy_mj=0.5, energy_method="estimated: CPU time x 5.0 W/core", profile="smoke", data="SYNTHETIC",
        hardware="cpu", versions={"tensorflow": "2.21.0"}, timestamp="2026-01-01T00:00:00+00:00",
    )
    return dataclasses.replace(base, **changes)


def summary(**changes) -> dict:
    """A recorded comparison as report.Comparison.to_dict writes it."""
    return {"id": "a", "title": "t", "lesson": "02", "reference": "m", "timestamp": "2026-01-01T00:00:00+00:00",
            "profile": "smoke", "data": "SYNTHETIC", "conditions": "c", "files": {}, "rows": [{"model": "m"}],
            **changes}


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


def test_lines_of_the_wrong_shape_are_skipped_with_one_warning(workdir):
    results.record(card())
    with results.store_path().open("a") as f:
        f.write("[1]\n\n42\n")
    with pytest.warns(UserWarning, match=r"lines 2 \(not a JSON object\), 4 .* of \$EFFCOURSE_WORKDIR/results.jsonl"):
        assert results.load() == [card()]
    good = summary()
    for record in ([1, 2], {"title": "x"}, {**good, "rows": [1]}, {**good, "timestamp": 5}, good):
        results.record_comparison(record)
        results.record_training(record)
    with pytest.warns(UserWarning, match=r"lines 1 \(not a JSON object\), 2 \(no id, lesson, timestamp, conditions, "
                                         r"rows of the right type\), 3 \(no rows .*\), 4 \(no timestamp .*\) of "):
        assert results.load_comparisons(since="2026") == [good]
    with pytest.warns(UserWarning, match="trainings.jsonl"):
        assert results.load_trainings() == [good]


def test_a_working_folder_that_cannot_be_used_is_named_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "a-file"))
    with pytest.raises(paths.WorkdirError, match=r"\$EFFCOURSE_WORKDIR is a file, not a folder.*point EFFCOURSE_"):
        results.load()


def test_table_of_cards():
    table = results.table([card(), card(model="small", params=100, accuracy=0.45)])
    assert list(table["model"]) == ["m", "small"]
    assert list(table["accuracy %"]) == [50.0, 45.0]
    assert table.loc[0, "95% interval"] == "40.0-60.0"
    assert table.loc[0, "gzip KiB"] == pytest.approx(4000 / 1024, abs=0.05)
    # cards measured apart: no latency or energy column invites comparing them
    assert not any("latency" in column or "mJ" in column for column in table.columns)


def test_an_estimated_energy_says_so_on_the_card():
    text = str(card())
    assert "energy per inference (estimated)" in text and "cannot rank models" in text
    measured = str(card(energy_method="measured: RAPL package"))
    assert "(estimated)" not in measured and "measured: RAPL package" in measured


def test_comparisons_are_stored_and_filtered(workdir):
    results.record_comparison(summary(id="a", lesson="02", timestamp="2026-01-01T00:00:00+00:00"))
    results.record_comparison(summary(id="b", lesson="03", timestamp="2026-01-02T00:00:00+00:00"))
    assert [c["id"] for c in results.load_comparisons()] == ["a", "b"]
    assert [c["id"] for c in results.load_comparisons(lesson="03")] == ["b"]
    assert [c["id"] for c in results.load_comparisons(since="2026-01-01T12:00:00+00:00")] == ["b"]


def test_store_is_json_lines(workdir):
    results.record(card())
    assert json.loads(results.store_path().read_text().splitlines()[0])["model"] == "m"


def test_benchmark_results_are_read_from_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "BENCHMARKS", tmp_path)
    assert results.benchmark("absent") is None
    (tmp_path / "run.json").write_text(json.dumps({"machine": {"gpu": "NVIDIA H200"}}))
    assert results.benchmark("run") == {"machine": {"gpu": "NVIDIA H200"}}
    (tmp_path / "broken.json").write_text('{"machine": ')
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        results.benchmark("broken")
    (tmp_path / "run-seed1.json").write_text(json.dumps({"seed": 1}))
    (tmp_path / "other.json").write_text("{}")
    expected = {"run": {"machine": {"gpu": "NVIDIA H200"}}, "run-seed1": {"seed": 1}}
    assert results.benchmarks("run") == expected and list(results.benchmarks("run")) == ["run", "run-seed1"]
    assert results.benchmarks("absent") == {}


def test_the_committed_gpu_results_name_their_machine_and_the_float32_reference():
    for name in ("gpu_mixed_precision-h200-device-feed", "gpu_mixed_precision-h200-wide"):
        run = results.benchmark(name)
        assert run["machine"]["gpu"] == "NVIDIA H200" and run["settings"]["train_images"] > 0
        for model, ratios in run["training"]["ratios to float32 of the same width"].items():
            if model.startswith("float32") and "highest" not in model:
                assert ratios["throughput x float32"].startswith("1.00x")
