"""The quickstart runs as written: every python block of docs/quickstart.md, in order, in one
namespace (the Hub steps against the fake Hub), from a scratch folder that sees examples/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.slow
def test_the_quickstart_runs_as_written(tmp_path, monkeypatch, fake_hub):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(ROOT / "docs" / "quickstart.md")
    assert len(blocks) == 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/quickstart.md", "exec"), namespace)
    assert (
        namespace["onnx_tokens"].tolist()
        == namespace["small"].generate(**namespace["batch"], max_new_tokens=12).tolist()
    )
    losses = [h["loss"] for h in namespace["trainer"].state.log_history if "loss" in h]
    assert losses[-1] < losses[0]  # trained (fp32 modules, whatever the fp16 teacher)
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in namespace["model"].parameters())
    outputs = namespace["tokenizer"].batch_decode(namespace["tokens"], skip_special_tokens=True)
    assert all(text.strip() for text in outputs), outputs
    assert set(fake_hub.branches("your-name/t5-g2p-modular")) == {"main", "3x"}
    assert (tmp_path / "quickstart-t5-3x" / "model.safetensors").exists()
    assert {"tokenizer.json", "README.md"} <= set(fake_hub.files("your-name/t5-g2p-modular"))


def test_every_doc_link_points_at_a_file():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
