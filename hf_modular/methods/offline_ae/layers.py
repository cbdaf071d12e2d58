"""The two row coders: a residual autoencoder (the method) and truncated SVD (the baseline).

Both see a weight matrix as rows (``nn.Linear.weight`` is out x in, so a row is what one output
unit reads) and store, per row, a few numbers (latents / coefficients), plus one decoder per group
of rows (decoder / right singular vectors). In joint mode a group is the rows of one matrix kind
across all layers, so the decoder is shared.

The autoencoder's decoder is a linear map plus a residual MLP: ``row = B z + b + W2 gelu(W1 z + b1)``.
It starts as truncated SVD at the latent size (latents ``U_d S_d``, ``B = V_d``, ``W2 = 0``), so its
training can only lower the reconstruction loss below that of rank-d SVD; the nonlinear part then
buys the ranks that the budget moved from the linear code to the MLP (docs/offline_ae.md, with the
measurements behind each choice). The latents are optimised directly (the published method trains
an encoder and discards it; direct latents are measured better and cost no stored number).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from .metric import Partner, factors, from_metric, to_metric

DECODER_KEYS = ("basis.weight", "basis.bias", "hidden.weight", "hidden.bias", "residual.weight")


def decoder_numbers(latent: int, hidden: int, columns: int) -> int:
    """Parameters of the decoder: the linear basis (with bias) and the residual MLP."""
    return latent * columns + columns + hidden * latent + hidden + columns * hidden


def autoencoder_shape(rows: int, columns: int, budget: int, decoder_fraction: float) -> tuple[int, int]:
    """(latent size d, MLP width h) whose latents + decoder fit ``budget`` numbers, the residual
    MLP taking about ``decoder_fraction`` of it and the linear code (latents, basis) the rest."""
    linear_budget = budget * (1.0 - decoder_fraction)
    latent = min(int((linear_budget - columns) // (rows + columns)), columns)
    hidden = (budget - rows * latent - decoder_numbers(latent, 0, columns)) // (latent + 1 + columns)
    if latent < 1 or hidden < 1:
        need = rows + decoder_numbers(1, 1, columns)
        raise ConfigError(
            f"a budget of {budget} numbers cannot hold an autoencoder for {rows} rows of {columns} "
            f"(one latent per row, the basis and the smallest MLP need {need} with decoder_fraction="
            f"{decoder_fraction}): use a lower ratio, joint mode or another decoder_fraction"
        )
    return latent, int(hidden)


def svd_rank(rows: int, columns: int, budget: int) -> int:
    """The largest rank whose factors (rows x r coefficients, r x columns basis) fit ``budget``."""
    rank = min(budget // (rows + columns), rows, columns)
    if rank < 1:
        raise ConfigError(
            f"a budget of {budget} numbers cannot hold even a rank-1 SVD of {rows}x{columns} "
            f"({rows + columns} numbers): use a lower ratio or joint mode"
        )
    return rank


class ResidualDecoder(nn.Module):
    """latent -> row: ``basis(z) + residual(gelu(hidden(z)))``."""

    def __init__(self, columns: int, latent: int, hidden: int):
        super().__init__()
        self.basis = nn.Linear(latent, columns)
        self.hidden = nn.Linear(latent, hidden)
        self.residual = nn.Linear(hidden, columns, bias=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.basis(latents) + self.residual(nn.functional.gelu(self.hidden(latents)))


def reconstruction_loss(rebuilt: torch.Tensor, rows: torch.Tensor, loss: str) -> torch.Tensor:
    """``mse``: squared error over the rows' mean square (the error the model sees);
    ``published``: 0.9091 mean(1 - cosine) + 0.0909 RMSE, the published mix."""
    if loss == "mse":
        return (rebuilt - rows).pow(2).mean() / rows.pow(2).mean().clamp_min(1e-30)
    cosine = nn.functional.cosine_similarity(rebuilt, rows, dim=1).mean()
    return 0.9091 * (1 - cosine) + 0.0909 * (rebuilt - rows).pow(2).mean().sqrt()


def fit_autoencoder(
    rows: torch.Tensor,
    latent: int,
    hidden: int,
    steps: int,
    learning_rate: float,
    loss: str,
    generator: torch.Generator,
    progress: object = None,
    blocks: list[tuple[int, torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Fit latents and decoder to ``rows`` (full batch, Adam, cosine-decayed learning rate), from
    the rank-``latent`` SVD, keeping the best iterate. ``blocks`` (row count, columns x columns map),
    when given, reads each block of rows through its own map in the loss: a joint group's members,
    each in the metric of its own inputs. Returns what is stored: ``latents`` and the decoder's
    tensors."""
    rows = rows.detach().float()
    scale = rows.pow(2).mean().sqrt().clamp_min(1e-30)  # fit unit-scale rows: one learning rate fits all
    units = rows / scale
    counts, maps = ([count for count, _ in blocks], [m.float() for _, m in blocks]) if blocks else (None, None)

    def seen(x: torch.Tensor) -> torch.Tensor:  # the rows as the loss reads them
        if maps is None:
            return x
        return torch.cat([part @ m for part, m in zip(x.split(counts), maps, strict=True)])

    target = seen(units)
    u, s, vh = torch.linalg.svd(units.double(), full_matrices=False)
    latents = nn.Parameter((u[:, :latent] * s[:latent]).float())
    spread = latents.detach().std(dim=0).clamp_min(1e-6)  # per-latent scale the MLP reads at unit size
    decoder = ResidualDecoder(rows.shape[1], latent, hidden)
    with torch.no_grad():
        decoder.basis.weight.copy_(vh[:latent].T.float())
        decoder.basis.bias.zero_()
        bound = 1 / math.sqrt(latent)  # seeded, independent of the global RNG
        decoder.hidden.weight.copy_((torch.rand((hidden, latent), generator=generator) * 2 - 1) * bound / spread)
        decoder.hidden.bias.copy_((torch.rand(hidden, generator=generator) * 2 - 1) * bound)
        decoder.residual.weight.zero_()  # the start is exactly rank-d SVD
    params = [latents, *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    best_loss, best = math.inf, None
    for step in range(steps + 1):
        optimizer.zero_grad()
        error = reconstruction_loss(seen(decoder(latents)), target, loss)
        if error.item() < best_loss:  # keep the best iterate: never worse than where it started
            best_loss, best = error.item(), [p.detach().clone() for p in params]
        if step == steps:
            break
        error.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress.update(1)
    with torch.no_grad():
        for param, value in zip(params, best, strict=True):
            param.copy_(value)
        # back to the rows' own scale: the output layers carry it
        decoder.basis.weight.mul_(scale)
        decoder.basis.bias.mul_(scale)
        decoder.residual.weight.mul_(scale)
    # row-major, as a file gives them back (the SVD start leaves them column-major, and the decoder's matmul
    # kernels, hence its last bits, depend on the layout)
    stored = {"latents": latents.detach().clone(memory_format=torch.contiguous_format)}
    stored.update({k: v.detach().clone() for k, v in decoder.state_dict().items()})
    return stored


PER_ROW_KEYS = ("latents", "coefficients")  # one code per row: the autoencoder's, SVD's


def decode_autoencoder(stored: dict[str, torch.Tensor]) -> torch.Tensor:
    latent, hidden = stored["hidden.weight"].shape[1], stored["hidden.weight"].shape[0]
    decoder = ResidualDecoder(stored["basis.weight"].shape[0], latent, hidden)
    decoder.load_state_dict({k: stored[k] for k in DECODER_KEYS})
    with torch.no_grad():
        return decoder(stored["latents"])


def fit_svd(rows: torch.Tensor, rank: int) -> dict[str, torch.Tensor]:
    """Truncated SVD: ``coefficients`` (U_r S_r, rows x r) and ``basis`` (V_r^T, r x columns)."""
    u, s, vh = torch.linalg.svd(rows.detach().double(), full_matrices=False)
    return {"coefficients": (u[:, :rank] * s[:rank]).float(), "basis": vh[:rank].float()}


def decode_svd(stored: dict[str, torch.Tensor]) -> torch.Tensor:
    return stored["coefficients"] @ stored["basis"]


@dataclass
class Group:
    """Rows coded together: one matrix (per_matrix) or one kind across layers (joint). A member with a
    partner is coded in the output metric (``metric.py``): its rows as that partner sees them."""

    id: str
    kind: str
    coder: str
    members: list[str]
    shapes: list[list[int]]
    dtypes: list[str]
    latent: int = 0
    hidden: int = 0
    rank: int = 0
    partners: list[Partner | None] = field(default_factory=list)
    stored: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        return self.shapes[0][1]

    @property
    def original_numbers(self) -> int:
        return sum(r * c for r, c in self.shapes)

    @property
    def stored_numbers(self) -> int:
        return sum(t.numel() for t in self.stored.values())

    @property
    def shared_numbers(self) -> int:
        """The stored numbers not tied to one row (autoencoder: basis and MLP; SVD: the basis): what
        sharing one coder across more rows amortises."""
        return sum(t.numel() for key, t in self.stored.items() if key not in PER_ROW_KEYS)

    def decode(self) -> torch.Tensor:
        """The coded rows (in the metric they were coded in)."""
        if self.coder == "svd":
            return decode_svd(self.stored)
        return decode_autoencoder(self.stored)

    def _factors(self, weight_of: Callable[[str], torch.Tensor]) -> list[torch.Tensor | None]:
        return [None if p is None else factors(p, weight_of(p.name)) for p in self._member_partners()]

    def _member_partners(self) -> list[Partner | None]:
        return self.partners or [None] * len(self.members)

    def coded_rows(self, weight_of: Callable[[str], torch.Tensor]) -> torch.Tensor:
        """What the coder fits: every member's rows, each in its metric (``weight_of`` gives a
        matrix's current weight: the members' originals and the partners' final values)."""
        return torch.cat(
            [
                weight_of(m).float() if r is None else to_metric(weight_of(m).float(), r)
                for m, r in zip(self.members, self._factors(weight_of), strict=True)
            ]
        )

    def rebuild(self, weight_of: Callable[[str], torch.Tensor]) -> list[torch.Tensor]:
        """Each member's weight rebuilt from the codes (float32), back from its metric; ``weight_of``
        gives the partners' final weights."""
        rows, start, out = self.decode(), 0, []
        for (count, _), r in zip(self.shapes, self._factors(weight_of), strict=True):
            part = rows[start : start + count]
            out.append(part if r is None else from_metric(part, r))
            start += count
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "coder": self.coder,
            "members": [
                {"name": n, "shape": s, "dtype": d, "partner": None if p is None else p.to_dict()}
                for n, s, d, p in zip(self.members, self.shapes, self.dtypes, self._member_partners(), strict=True)
            ],
            "latent": self.latent,
            "hidden": self.hidden,
            "rank": self.rank,
            "tensors": {k: list(v.shape) for k, v in self.stored.items()},
        }
