"""How long `import hf_modular` takes next to importing transformers, timed together.

    python examples/import_time.py [--rounds 7]

Each round starts a fresh interpreter per statement, in turn (interleaved, so a busy spell of the
machine slows every row alike), and the table shows the median wall time and its ratio to
`import transformers`. Prints a markdown table (docs/benchmarks.md keeps the measured one).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "import transformers": "import transformers",
    "from transformers import T5Config (what any config costs)": "from transformers import T5Config",
    "import hf_modular": "import hf_modular",
    "from transformers import AutoModelForSeq2SeqLM": "from transformers import AutoModelForSeq2SeqLM",
    "import hf_modular; from transformers import AutoModelForSeq2SeqLM (registration included)": (
        "import hf_modular; from transformers import AutoModelForSeq2SeqLM"
    ),
    "from transformers import T5ForConditionalGeneration": "from transformers import T5ForConditionalGeneration",
    "import hf_modular + load a modular model class": "import hf_modular; hf_modular.ModularT5ForConditionalGeneration",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(args.rounds):
        for name, statement in STATEMENTS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], check=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["import transformers"])
    print(f"| statement | median s ({args.rounds} interleaved rounds) | vs `import transformers` |")
    print("|---|---:|---:|")
    for name, values in times.items():
        print(f"| `{name}` | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f}x |")


if __name__ == "__main__":
    main()
