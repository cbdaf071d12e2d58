"""The result of evaluating every assembly: one row per ratio, as markdown, JSON and a plot.

Plain data (no torch, no model code), so model cards and the Hub integration can render a table
without importing the evaluation loop, which imports the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import DataError
from ...markdown import markdown_table


@dataclass
class AssemblyResult:
    ratio: str
    plan: str
    layer_ratio: float
    params: int
    encoder_layers: int
    decoder_layers: int
    eval_loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[int, float] = field(default_factory=dict)  # batch size -> median greedy decode time
    speedup: dict[int, float] = field(default_factory=dict)  # batch size -> teacher latency / this latency


@dataclass
class AssemblyTable:
    rows: list[AssemblyResult]

    def to_markdown(self) -> str:
        metric_names = sorted({m for r in self.rows for m in r.metrics})
        batch_sizes = sorted({b for r in self.rows for b in r.latency_ms})
        header = ["ratio", "enc", "dec", "params", "loss", *metric_names]
        header += [f"ms/batch@{b}" for b in batch_sizes] + [f"speedup@{b}" for b in batch_sizes]
        rows = []
        for r in self.rows:
            cells = [r.ratio, str(r.encoder_layers), str(r.decoder_layers), f"{r.params:,}", f"{r.eval_loss:.3f}"]
            cells += [f"{r.metrics[m]:.4g}" if m in r.metrics else "" for m in metric_names]
            cells += [f"{r.latency_ms[b]:.1f}" if b in r.latency_ms else "" for b in batch_sizes]
            cells += [f"{r.speedup[b]:.2f}x" if b in r.speedup else "" for b in batch_sizes]
            rows.append(cells)
        return markdown_table(header, rows) + "\n"

    def to_json(self) -> str:
        return json.dumps([asdict(r) for r in self.rows], indent=2)

    @classmethod
    def from_json(cls, text: str) -> AssemblyTable:
        """The inverse of ``to_json`` (batch-size keys come back as ints)."""
        try:
            rows = []
            for row in json.loads(text):
                for key in ("latency_ms", "speedup"):
                    row[key] = {int(b): float(v) for b, v in row.get(key, {}).items()}
                rows.append(AssemblyResult(**row))
        except (ValueError, TypeError, AttributeError) as error:
            raise DataError(f"not an assembly table (the JSON evaluate_assemblies writes): {error}") from error
        return cls(rows)

    def plot(self, path: str | Path, metric: str | None = None, batch_size: int | None = None) -> Path:
        """Quality (``metric``, default the eval loss) against decode speedup; needs matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("plotting needs matplotlib: pip install 'hf_modular[plot]'") from error
        batch_size = batch_size or max(b for r in self.rows for b in r.speedup)
        ys = [r.metrics[metric] if metric else r.eval_loss for r in self.rows]
        xs = [r.speedup[batch_size] for r in self.rows]
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot(xs, ys, "o-")
        for x, y, r in zip(xs, ys, self.rows, strict=True):
            axis.annotate(r.ratio, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        axis.set_xlabel(f"greedy decode speedup vs teacher (batch {batch_size})")
        axis.set_ylabel(metric or "eval loss")
        axis.grid(alpha=0.3)
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return path
