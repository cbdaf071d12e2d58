"""Run by test_crash_safety.py: one of several processes saving DIFFERENT models into ONE folder.

argv: folder, writer id, rounds, out.json. Each round saves this writer's model, then loads the
folder and records which writer's model it found (by a fingerprint weight) or the error raised.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from hf_modular import ModularT5ForConditionalGeneration
from tests.conftest import tiny_teacher


def fingerprint(model) -> float:
    return float(model.state_dict()["shared.weight"][3, 0])


def main() -> None:
    folder, writer, rounds, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    torch.set_num_threads(1)
    model = ModularT5ForConditionalGeneration.from_teacher(tiny_teacher("t5", 2, 2, seed=100 + writer))
    seen, errors = [], []
    for _ in range(rounds):
        try:
            model.save_pretrained(folder)
        except Exception as error:
            errors.append(f"save: {type(error).__name__}: {error}")
        try:
            seen.append(fingerprint(ModularT5ForConditionalGeneration.from_pretrained(folder)))
        except Exception as error:
            errors.append(f"load: {type(error).__name__}: {error}")
    out.write_text(json.dumps({"mine": fingerprint(model), "seen": seen, "errors": errors}))


if __name__ == "__main__":
    main()
