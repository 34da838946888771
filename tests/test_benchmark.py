"""The benchmark script runs on the smoke profile and produces complete tables (speed is not checked)."""
import importlib.util
import os

import pandas as pd

BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_distill.py")


def test_benchmark_produces_complete_tables(smoke_cfg, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_distill", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    has_trl = importlib.util.find_spec("trl") is not None
    assert bench.main(["--profile", "smoke", "--steps", "6", "--out", str(tmp_path)] + ([] if has_trl else ["--no-trl"])) == 0
    training = pd.read_csv(tmp_path / "smoke_crade_training.csv")
    assert list(training["trainer"][:3]) == ["student SFT", "SCD+AW cached", "SCD+AW online"]
    assert (training["step_s"] > 0).all() and training[["tokens_per_s", "peak_rss_mb"]].notna().all().all()
    one_off = pd.read_csv(tmp_path / "smoke_crade_one_off.csv")
    assert len(one_off) == 6 and one_off["value"].notna().all()
    kept = one_off.loc[one_off["cost"].str.startswith("FKL kept"), "value"].item()
    assert 0 < kept <= 1.0 + 1e-6
    deploy = pd.read_csv(tmp_path / "smoke_crade_deployment.csv")
    assert set(deploy["batch"]) == {1, 16} and (deploy["gen_tokens_per_s"] > 0).all()
