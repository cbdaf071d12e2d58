"""The G2P example: a deterministic split, a tokenizer that round-trips, correct metrics, and the main job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from hf_modular.metrics import edit_distance

G2P = Path(__file__).resolve().parents[1] / "examples" / "g2p"
sys.path.insert(0, str(G2P))

from data import build_tokenizer, g2p_metrics, spell, split  # noqa: E402


def test_split_is_fixed_and_disjoint():
    parts = split()
    assert {k: len(v) for k, v in parts.items()} == {"test": 5000, "dev": 2000, "train": 119052}
    words = {k: {w for w, _ in v} for k, v in parts.items()}
    assert not (words["test"] & words["train"]) and not (words["dev"] & words["train"])
    # the seeded shuffle is part of the benchmark's definition: these must never change
    assert [w for w, _ in parts["test"][:3]] == ["aachen", "erstwhile", "claritin"]
    assert [w for w, _ in parts["dev"][:2]] == ["phariss", "disarray"]
    assert parts["train"][0] == ("depeche", ("D", "EH0", "P", "EH1", "SH"))


def test_tokenizer_round_trips(tmp_path):
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    ids = loaded(spell("phoneme"))["input_ids"]
    assert ids == tokenizer(spell("phoneme"))["input_ids"] and ids[-1] == loaded.eos_token_id
    assert loaded.decode(loaded("F OW1 N IY0 M")["input_ids"], skip_special_tokens=True) == "F OW1 N IY0 M"
    assert (loaded.pad_token_id, loaded.eos_token_id) == (0, 1)


def test_metrics():
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 5]) == 2
    assert g2p_metrics([[1, 2], [3]], [[1, 2], [4, 5]]) == {"PER": 50.0, "WER": 50.0}


@pytest.mark.slow
def test_main_job_runs_on_the_shipped_teacher(tmp_path):
    if not (G2P / "teachers" / "t5" / "model.safetensors").exists():
        pytest.fail("the shipped T5 teacher is missing from examples/g2p/teachers/t5")
    result = subprocess.run(
        [
            sys.executable,
            str(G2P / "run.py"),
            "--steps",
            "4",
            "--eval-words",
            "16",
            "--ratios",
            "2x",
            "--runs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "modular-t5" / "summary.json").read_text())
    assert set(summary) == {"1x", "2x"}
    assert summary["1x"]["PER_before"] == summary["1x"]["PER_after"]  # the teacher is never trained
    assert (tmp_path / "modular-t5" / "artifact" / "model.safetensors").exists()


def test_benchmark_page_writers_keep_what_they_do_not_own(tmp_path):
    from benchmark import replace_head, replace_section

    page = tmp_path / "benchmarks.md"
    page.write_text(
        "# old head\n\n<!-- section:g2p_t5 -->\nold t5\n<!-- /section:g2p_t5 -->\n\n"
        "<!-- section:latency -->\nrows\n<!-- /section:latency -->\n\na note after every section\n"
    )
    replace_head(page, "# new head\n")
    replace_section(page, "g2p_t5", "new t5")
    replace_section(page, "g2p_bart", "bart")  # a section the page lacks goes at its end
    text = page.read_text()
    assert text.startswith("# new head\n\n<!-- section:g2p_t5 -->\nnew t5\n") and "old" not in text
    assert "<!-- section:latency -->\nrows\n" in text and "a note after every section" in text
    assert text.rstrip().endswith("<!-- section:g2p_bart -->\nbart\n<!-- /section:g2p_bart -->")


def test_benchmark_cells_of_two_runs_sharing_one_file_merge(tmp_path):
    """Two benchmark stages running at once (--stage modular / sft) each add their cells to the one
    cache file; neither loses the other's, and a cell one finished is not computed again by the other."""
    from benchmark import Cells

    path = tmp_path / "cells.json"
    modular, sft = Cells(path), Cells(path)
    assert modular.get("t5/modular/train", lambda: {"steps": 1}) == {"steps": 1}
    assert sft.get("t5/sft/2x", lambda: {"PER": 14.4}) == {"PER": 14.4}  # written after the other run's cell
    assert json.loads(path.read_text()) == {"t5/modular/train": {"steps": 1}, "t5/sft/2x": {"PER": 14.4}}
    assert sft.get("t5/modular/train", lambda: pytest.fail("recomputed a cell the other run finished")) == {"steps": 1}
    assert Cells(path).get("t5/sft/2x", lambda: {"PER": 0.0}, stale=lambda cell: cell["PER"] > 14) == {"PER": 0.0}


def test_benchmark_judges_per_size_targets_on_the_means_over_seeds():
    """With --seeds, a size's gap to its SFT student is the gap of the means (seed 0's single run stays
    in view), and the page shows every seed's PER."""
    import argparse

    from benchmark import render_family, targets

    latency = {"1": 10.0, "32": 100.0}
    row = {"params": 1, "WER": 50.0, "latency_ms": latency}
    rows = [
        {**row, "method": "teacher", "ratio": "1x", "PER": 11.0, "layers": [6, 6]},
        {**row, "method": "modular", "ratio": "6x", "PER": 24.0, "layers": [1, 1], "layer_ratio": 6.0, "plan": "p"},
        {**row, "method": "SFT", "ratio": "6x", "PER": 21.5, "layers": [1, 1], "layer_ratio": 6.0},
        {**row, "method": "layer-drop", "ratio": "6x", "PER": 100.0, "layers": [1, 1], "layer_ratio": 6.0},
    ]
    args = argparse.Namespace(steps=20, modular_steps=15, eval_words=50, threads=1, seeds=1)
    assert "| 6x: modular PER within 2.0 of SFT | 24.00 vs 21.50 (+2.50) | NO |" in targets("t5", rows)

    rows[0]["seeds"] = {"6x": {"modular": [24.0, 22.0, 23.0], "SFT": [21.5, 21.0, 21.0], "plans": ["p", "p", "q"]}}
    args.seeds = 3
    assert (
        "| 6x: modular PER within 2.0 of SFT | means of 3 seeds 23.00 vs 21.17 (+1.83); seed 0 24.00 vs 21.50 "
        "(+2.50) | yes |"
    ) in targets("t5", rows)
    page = render_family("t5", rows, args)
    assert "--threads 1 --seeds 3`" in page
    # standard error of the gap: sqrt(1.0 / 3 + 0.08333 / 3) = 0.60
    assert "| 6x | p, q | 24.00, 22.00, 23.00 | 23.00 | 21.50, 21.00, 21.00 | 21.17 | +1.83 (0.60) |" in page
