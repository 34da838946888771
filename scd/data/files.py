"""Where the raw benchmark files live, how to fetch them, and how to trust them.

The data is never committed: it is read from ``SCD_DATA_DIR`` (default: an ignored ``data/``
folder in the checkout) and can be re-downloaded from the upstream repositories at pinned
commits, checked against the SHA-256 sums below (the same list as ``SHA256SUMS``).
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from scd.core.io import DataError, atomic_write_bytes, project_path, sha256_of

UPSTREAM = {
    "jmed-llm": ("sociocom/JMED-LLM", "3774a34e4a26a7b8a7851f421ecad91a04c2f59b"),
    "pubmedqa": ("pubmedqa/pubmedqa", "1cbae8e92f72f20c8d3747cbb3bf5bc53554d997"),
}

SHA256 = {
    "jmed-llm/datasets/all/CRADE.csv": "238a954aaa5b84b08adfc4839f21d8ca2d0ab1ddbc54631846e326102f9aa4d2",
    "jmed-llm/datasets/all/CRNER.csv": "d0cd14334f29b8b5b34c437da4d8742ca86dd2ebc247c844af5a0efca3790e52",
    "jmed-llm/datasets/all/JMMLU-Med.csv": "6d2be1468275bf10aecb4bb2e6bebfbf4c47f0d3faaaf3984640b8f0032d8eb3",
    "jmed-llm/datasets/all/NRNER.csv": "10fa51537e7333b3c47211409113da6645f2d0849c24af6153c7b00dadb963bb",
    "jmed-llm/datasets/all/RRNER.csv": "784f6a2b1016eaa547d865f00d0497bce6f54f164a2a7f487a1bda1d01c8f306",
    "jmed-llm/datasets/all/RRTNM.csv": "a0f476e98c510b5c0cc81a9cdcf352836208ab2a1aea6c77bcaf7fede5935436",
    "jmed-llm/datasets/all/SMDIS.csv": "ed6c182076356fda221266b486967d5d3066cacca55a9083c8289aa02e64f034",
    "jmed-llm/datasets/crade.csv": "21e41f3f52ea5138339d3c034eed8c50d96abb8f7f08a867fd319c02a9aeac26",
    "jmed-llm/datasets/jmmlu_med.csv": "b8ab3275a92ca2bc24bd63e7d0aa823564a3c8d8f9518e377511856574b92c60",
    "jmed-llm/datasets/mrner_disease.csv": "eb2164166417b719d7975a9feb6464fad605bd84f86105f7cd8cec1307f0bae0",
    "jmed-llm/datasets/mrner_medicine.csv": "7797c76c8c7ee4557d0e810644ce2b49df3971d572b428a4932e4075c856edfa",
    "jmed-llm/datasets/nrner.csv": "1d3e22a77404cfec60d2a7caef626f475f2d385d26d4b2b22487331ca8a5d5f1",
    "jmed-llm/datasets/rrtnm.csv": "4362ec23e2260abb9388402a9682e66261c417e475243e345b25b8f0903eabbb",
    "jmed-llm/datasets/smdis.csv": "ee2fb38d87661a579c8483cda057e79999a806944a60d71533085c3d7f60b7fd",
    "pubmedqa/data/ori_pqal.json": "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d",
    "pubmedqa/data/test_ground_truth.json": "939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51",
}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: explicit argument, else $SCD_DATA_DIR, else ./data."""
    chosen = Path(path or os.environ.get("SCD_DATA_DIR") or project_path("data")).expanduser()
    if not chosen.is_dir():
        raise DataError(
            f"data directory {chosen} does not exist: set SCD_DATA_DIR to the folder holding "
            "jmed-llm/ and pubmedqa/ (e.g. ../shared/data), or run `python -m scd download`"
        )
    return chosen


def data_file(rel: str, data_root: Path) -> Path:
    path = data_root / rel
    if not path.is_file():
        raise DataError(f"missing data file {path}: expected the upstream file {rel} in {data_root}")
    return path


def verify(data_root: Path, files: list[str] | None = None) -> dict[str, str]:
    """Check every (or the given) file against the pinned sums; returns {rel: sha}."""
    sums = {}
    for rel in files or sorted(SHA256):
        got = sha256_of(data_file(rel, data_root))
        if got != SHA256[rel]:
            raise DataError(f"checksum mismatch for {data_root / rel}: expected sha256 {SHA256[rel]}, got {got}")
        sums[rel] = got
    return sums


def upstream_url(rel: str) -> str:
    folder, _, inner = rel.partition("/")
    repo, commit = UPSTREAM[folder]
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{inner}"


def download(dest: str | os.PathLike, url_for=upstream_url, timeout: float = 30.0) -> Path:
    """Fetch every benchmark file at its pinned commit into ``dest`` and verify it.

    ``url_for`` maps a relative path to a URL; tests point it at local ``file://`` copies.
    Files already present with the right checksum are kept, so an interrupted download resumes.
    """
    data_root = Path(dest)
    for rel, expected in sorted(SHA256.items()):
        target = data_root / rel
        if target.is_file() and sha256_of(target) == expected:
            continue
        url = url_for(rel)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                payload = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(
                f"could not download {url} ({exc}); this machine may be offline: copy the data "
                f"folder by hand and set SCD_DATA_DIR to it"
            ) from exc
        got = hashlib.sha256(payload).hexdigest()
        if got != expected:
            raise DataError(f"checksum mismatch for {url}: expected sha256 {expected}, got {got}")
        atomic_write_bytes(target, payload)
    return data_root
