"""The real benchmarks load exactly: split sizes, no overlap, clear errors on bad input."""
import shutil
from collections import Counter
from pathlib import Path

import pytest

from scd.data import files
from scd.core.tasks import TASKS
from scd.data.splits import load_task
from scd.core.io import DataError

# (train, dev, test): test = the official file; dev+train = pool minus test (JMMLU-Med: minus one duplicate)
SIZES = {
    "jmmlu_med": (480, 100, 100), "crade": (1430, 100, 100), "rrtnm": (179, 45, 100),
    "smdis": (15160, 100, 100), "nrner": (1339, 100, 100), "mrner_disease": (95, 24, 100),
    "mrner_medicine": (14, 4, 100), "pubmedqa": (400, 100, 500),
}
POOL = {"jmmlu_med": 681, "crade": 1630, "rrtnm": 324, "smdis": 15360, "nrner": 1539,
        "mrner_disease": 219, "mrner_medicine": 118, "pubmedqa": 1000}


@pytest.fixture(scope="module")
def all_tasks(data_dir):
    return {name: load_task(name, data_dir) for name in TASKS}


def test_registry_has_the_eight_tasks():
    assert set(TASKS) == set(SIZES)


@pytest.mark.parametrize("name", list(SIZES))
def test_split_sizes_are_exact(all_tasks, name):
    s = all_tasks[name]
    assert (len(s["train"]), len(s["dev"]), len(s["test"])) == SIZES[name]
    dropped = s["stats"].get("pool_duplicates_dropped", 0)
    assert len(s["train"]) + len(s["dev"]) + len(s["test"]) + dropped == POOL[name]


@pytest.mark.parametrize("name", list(SIZES))
def test_no_overlap_and_complete_records(all_tasks, name):
    s = all_tasks[name]
    for key in ("id", "question"):
        seen = [r[key] for split in ("train", "dev", "test") for r in s[split]]
        assert len(seen) == len(set(seen)), f"{name}: {key} shared between splits"
    for split in ("train", "dev", "test"):
        for r in s[split]:
            assert r["split"] == split and r["task"] == name and r["prompt"] and r["answer"]
            assert r["lang"] == ("en" if name == "pubmedqa" else "ja")
            assert r["tag"]


def test_answers_and_prompts_follow_the_task_format(all_tasks):
    assert all(r["answer"] in "ABCD" and r["prompt"].endswith("答え:") for r in all_tasks["crade"]["test"])
    assert {r["answer"] for r in all_tasks["rrtnm"]["train"]} <= set("ABCDE")
    assert all(r["answer"].startswith("[") for r in all_tasks["nrner"]["dev"])
    assert {r["answer"] for r in all_tasks["pubmedqa"]["test"]} == {"yes", "no", "maybe"}
    assert Counter(r["answer"] for r in all_tasks["pubmedqa"]["test"]) == Counter(yes=276, no=169, maybe=55)
    assert {r["tag"] for r in all_tasks["rrtnm"]["test"]} == {"T", "N", "M"}


def test_dev_is_stratified_and_fixed(all_tasks, data_dir):
    dev = all_tasks["crade"]["dev"]
    rest = all_tasks["crade"]["train"] + dev
    share = Counter(r["label"] for r in rest)["A"] / len(rest)
    assert abs(Counter(r["label"] for r in dev)["A"] / len(dev) - share) < 0.01
    again = load_task("crade", data_dir)
    assert [r["id"] for r in again["dev"]] == [r["id"] for r in dev]


def test_train_cap_is_counted(data_dir):
    s = load_task("smdis", data_dir, max_train=300)
    assert len(s["train"]) == 300 and s["stats"]["train_not_used"] == 15160 - 300
    assert len(s["test"]) == 100


def test_checksums_of_shared_data(data_dir):
    assert set(files.verify(data_dir)) == set(files.SHA256)


# ---------------------------------------------------------------- bad input
@pytest.fixture
def crade_copy(data_dir, tmp_path):
    for rel in ("jmed-llm/datasets/crade.csv", "jmed-llm/datasets/all/CRADE.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / rel, tmp_path / rel)
    return tmp_path


def _rewrite(path: Path, old: str, new: str, count: int = 1):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_task("crade", tmp_path / "nowhere")
    with pytest.raises(DataError, match="missing data file .*crade.csv"):
        load_task("crade", tmp_path)


def test_missing_column(crade_copy):
    _rewrite(crade_copy / "jmed-llm/datasets/crade.csv", "optionD,answer", "optionD,verdict")
    with pytest.raises(DataError, match=r"crade.csv row 1: missing column 'answer'"):
        load_task("crade", crade_copy)


def test_answer_letter_not_among_options(crade_copy):
    path = crade_copy / "jmed-llm/datasets/all/CRADE.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    row_end = next(i for i, line in enumerate(lines) if line.endswith(",A") and i > 0)
    lines[row_end] = lines[row_end][:-1] + "F"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"CRADE.csv row \d+: answer 'F' is not one of the options"):
        load_task("crade", crade_copy)


def test_empty_question(crade_copy):
    path = crade_copy / "jmed-llm/datasets/crade.csv"
    text = path.read_text(encoding="utf-8")
    header, _, rest = text.partition("\n")
    path.write_text(header + "\n" + 'disease,"",a,b,c,d,A\n' + rest, encoding="utf-8")
    with pytest.raises(DataError, match="crade.csv row 1: empty question"):
        load_task("crade", crade_copy)


def test_invalid_utf8_names_the_line(crade_copy):
    path = crade_copy / "jmed-llm/datasets/crade.csv"
    path.write_bytes(path.read_bytes().replace("膿".encode(), b"\xff\xfe", 1))
    with pytest.raises(DataError, match=r"crade.csv: not valid UTF-8 at byte \d+ \(line \d+\)"):
        load_task("crade", crade_copy)


def test_ner_answer_not_a_list(data_dir, tmp_path):
    for rel in ("jmed-llm/datasets/nrner.csv", "jmed-llm/datasets/all/NRNER.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / rel, tmp_path / rel)
    path = tmp_path / "jmed-llm/datasets/nrner.csv"
    text = path.read_text(encoding="utf-8")
    first_answer = text.index("\"['")
    path.write_text(text[:first_answer] + "\"{'x'}\"" + text[text.index("]\"", first_answer) + 2:], encoding="utf-8")
    with pytest.raises(DataError, match="nrner.csv row 1: answer must be a list of strings"):
        load_task("nrner", tmp_path)


def test_checksum_mismatch(crade_copy):
    _rewrite(crade_copy / "jmed-llm/datasets/crade.csv", "disease", "Disease")
    with pytest.raises(DataError, match="checksum mismatch for .*crade.csv"):
        files.verify(crade_copy, ["jmed-llm/datasets/crade.csv"])


def test_download_from_local_mirror_and_offline_failure(data_dir, tmp_path):
    mirror = lambda rel: (data_dir / rel).resolve().as_uri()  # noqa: E731 - stands in for the upstream URL
    root = files.download(tmp_path / "dl", url_for=mirror)
    assert set(files.verify(root)) == set(files.SHA256)
    assert files.upstream_url("pubmedqa/data/ori_pqal.json").endswith(
        "pubmedqa/pubmedqa/1cbae8e92f72f20c8d3747cbb3bf5bc53554d997/data/ori_pqal.json")
    with pytest.raises(DataError, match="could not download .*offline"):
        files.download(tmp_path / "offline", url_for=lambda rel: "http://127.0.0.1:9/" + rel, timeout=2)


def test_balanced_train_is_uniform_over_the_pool_labels_and_keeps_ids_unique():
    from scd.data.sampling import balanced_train

    train = [{"id": f"t:{i}", "label": "A" if i < 8 else "B"} for i in range(10)]
    items, repeated = balanced_train(train, 6, seed=1)
    assert Counter(r["label"] for r in items) == Counter(A=3, B=3) and repeated == 1
    assert len({r["id"] for r in items}) == 6 and sum(r["id"].endswith("#r1") for r in items) == 1
    assert {r["id"] for r in items if r["label"] == "B"} >= {"t:8", "t:9"}  # every minority item before a repeat
    assert balanced_train(train, 6, seed=1) == (items, repeated)  # seeded
    odd, _ = balanced_train(train, 7, seed=1)  # the remainder goes to the first label
    assert Counter(r["label"] for r in odd) == Counter(A=4, B=3)


def test_uniform_take_fills_labels_equally_as_far_as_they_go():
    from scd.data.sampling import uniform_take

    labels = ["A"] * 85 + ["B"] * 8 + ["C"] * 4 + ["D"] * 3
    assert Counter(labels[i] for i in uniform_take(labels, 12, seed=0)) == Counter(A=3, B=3, C=3, D=3)
    # C and D give all they have, A and B share the rest
    assert Counter(labels[i] for i in uniform_take(labels, 20, seed=0)) == Counter(A=7, B=6, C=4, D=3)
    assert Counter(labels[i] for i in uniform_take(labels, 40, seed=0)) == Counter(A=25, B=8, C=4, D=3)
    assert list(uniform_take(labels, 20, seed=0)) == list(uniform_take(labels, 20, seed=0))


def test_uniform_sampling_of_a_real_task(data_dir):
    from scd.data.splits import load_splits

    crade = load_splits("crade", max_train=400, sampling="uniform", dev_sampling="uniform")
    assert Counter(r["label"] for r in crade["train"]) == Counter(A=100, B=100, C=100, D=100)
    assert crade["stats"]["train_repeated"] > 0 and len({r["id"] for r in crade["train"]}) == 400
    dev = Counter(r["label"] for r in crade["dev"])
    assert max(dev.values()) - min(dev.values()) <= 1, dev
    assert Counter(r["label"] for r in load_splits("crade")["dev"])["A"] > len(crade["dev"]) / 2  # the pool's skew
    assert load_splits("nrner", max_train=50, sampling="uniform")["train"] == load_splits("nrner", max_train=50)["train"]
    assert load_splits("nrner", dev_sampling="uniform")["dev"] == load_splits("nrner")["dev"]  # NER: no labels


def test_corpus_can_exclude_every_dev_and_test_passage(data_dir):
    from scd.data.corpus import corpus_texts, eval_passages
    from scd.analysis.data_report import passage_overlap

    banned = eval_passages()
    full, clean = corpus_texts(["crade", "pubmedqa"]), corpus_texts(["crade", "pubmedqa"], exclude_eval=True)
    assert set(full) & banned and not set(clean) & banned  # the default corpus holds test passages
    assert set(clean) <= set(full) and len(clean) < len(full)
    overlap = passage_overlap().set_index(["task", "split"])
    assert overlap.loc[("crade", "test"), "passage_in_own_train"] == 100
    assert overlap.loc[("jmmlu_med", "test"), "passage_in_any_train"] <= 1
