"""The benchmark script runs on the smoke profile and produces complete tables (speed is not checked)."""
import importlib.util
import os
import sys

import pandas as pd

from scd.core import numerics
from scd.core.io import read_json

BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_distill.py")
sys.path.insert(0, os.path.dirname(BENCH))  # deployment.py


def test_benchmark_produces_complete_tables(smoke_cfg, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_distill", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    has_trl = importlib.util.find_spec("trl") is not None
    assert bench.main(["--profile", "smoke", "--steps", "6", "--out", str(tmp_path), "--deploy-items", "4",
                       "--decode", "4,12", "--prefill", "8,16"] + ([] if has_trl else ["--no-trl"])) == 0
    training = pd.read_csv(tmp_path / "smoke_crade_training.csv")
    assert list(training["trainer"][:3]) == ["student SFT", "SCD+AW cached", "SCD+AW online"]
    assert (training["step_s"] > 0).all() and training[["tokens_per_s", "peak_rss_mb"]].notna().all().all()
    one_off = pd.read_csv(tmp_path / "smoke_crade_one_off.csv")
    assert len(one_off) == 6 and one_off["value"].notna().all()
    kept = one_off.loc[one_off["cost"].str.startswith("FKL kept"), "value"].item()
    assert 0 < kept <= 1.0 + 1e-6
    deploy = pd.read_csv(tmp_path / "smoke_crade_deployment.csv")
    # every figure positive, peak memory too: the peak is reset after the imports, so even a smoke
    # model's few MiB show (before: the interpreter's import peak hid them and both read 0)
    assert set(deploy.model) == {"teacher", "student"} and (deploy.value > 0).all()
    for model in ("teacher", "student"):
        rows = deploy[deploy.model == model]
        decode = rows[rows.measure.str.startswith("decode")]
        assert set(zip(decode.batch, decode.length)) == {(b, n) for b in (1, 16) for n in (4, 12)}
        assert set(rows[rows.measure.str.startswith("prefill")].length) == {8, 16}
        assert (rows.measure == "peak memory").sum() == 1 and (rows.measure == "latency on the test prompts").sum() == 2
    ratios = pd.read_csv(tmp_path / "smoke_crade_deployment_ratios.csv")
    assert len(ratios) == len(deploy) // 2
    assert (ratios.student_advantage > 0).all()
    params = ratios[ratios.measure == "parameters"].iloc[0]
    assert params.student_advantage == params.teacher / params.student > 1  # the student is the smaller model


def test_decode_throughput_generates_exactly_the_fixed_number_of_tokens(smoke_cfg):
    """EOS is suppressed: every sequence gets the same new tokens, whatever the model would stop at."""
    import torch

    import deployment
    from scd.train.models import load_model, load_tokenizer
    from scd.stages.base_sft import sft_stage

    teacher = sft_stage(smoke_cfg, "teacher", "crade", 0)
    model, tok = load_model(teacher.best_path).eval(), load_tokenizer(teacher.best_path)
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] += 50.0  # EOS would be every argmax
    ids = deployment._batch([[5, 6, 7]], 10, 2, "cpu")
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, min_new_tokens=12,
                         do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, 22)
    assert deployment.decode_tokens_per_s(model, [[5, 6, 7]], 12, 2, tok.pad_token_id, prompt_len=10, repeats=1) > 0


def test_determinism_benchmark_runs_on_smoke(smoke_cfg, tmp_path):
    """The benchmark writes the record it commits: per run the logged losses, a weights checksum, the
    thread count and kernel switches, and the machine's fingerprint. (Whether two runs agree is what
    the benchmark measures, not what this test asserts: on an AVX-512 Xeon a second run in the same
    process ends with other weights.)"""
    spec = importlib.util.spec_from_file_location("determinism", os.path.join(os.path.dirname(BENCH), "determinism.py"))
    det = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(det)
    runs_before = os.environ.get("SCD_RUNS_DIR")
    try:
        assert det.main(["--profile", "smoke", "--steps", "2", "--threads", "1,1", "--out", str(tmp_path)]) == 0
    finally:
        os.environ["SCD_RUNS_DIR"] = runs_before
    record = read_json(tmp_path / "smoke_teacher_base.json")
    (machine,) = record["machines"].values()
    first, second = machine["runs"]
    for run in (first, second):
        assert run["steps"] == 2 and run["threads"] == 1 and len(run["weights_sha256"]) == 16
        assert set(run["kernel_switches"]) == {"ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"}
    assert len(first["loss_curve"]) == len(second["loss_curve"])
    assert record["profile"] == "smoke" and machine["environment"]["cores"] >= 1
    assert machine["environment"]["numerics"]["switches"] == numerics.wanted()
    other = {"profile": "smoke", "role": "teacher", "environment": machine["environment"] | {"cpu": "Another CPU"},
             "runs": [first | {"weights_sha256": "0" * 16}]}
    both = det.merged(record, other)  # a second kind is added beside the first, and disagreement shows
    assert len(both["machines"]) == 2 and both["pinned_weights_agree"] is False
    assert both["pinned_cpu_kinds"] == sorted([machine["environment"]["cpu"], "Another CPU"])
