"""The output metric: code each matrix as the matrix after it sees it.

A weight's error reaches the model only through what reads its output. A value matrix is read per
head by the output projection (``out = sum_h O_h A_h V_h x``), a key per head by the queries
(``scores_h = x^T Q_h^T K_h y``) and a query by the keys, an FFN input row by its column of the FFN
output. So instead of the rows ``W`` the coders fit ``R W``, one block per head (or per FFN unit),
where ``R_h^T R_h = M_h^T M_h`` (plus a tiny ridge) for the partner's block ``M_h``: the coder's squared
error is then exactly the error the partner passes on, for any attention pattern. ``R`` is computed
from the partner's final weights (read from the folder, or decoded first when the partner is coded
too), so nothing extra is stored. Measured on G2P dev words (docs/offline_ae.md): T5 values at 4x,
per-matrix SVD 28.8 -> 19.3 PER and the joint autoencoder 35.7 -> 19.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...arch import adapter_for

METRICS = ("output", "rows")
RIDGE = 1e-6  # of the block's mean squared singular value: keeps R invertible for a dead head or unit

# kind leaf -> (partner leaf, which side of the partner's weight holds the block it reads through)
PARTNERS = {"v": ("o", "columns"), "k": ("q", "rows"), "q": ("k", "rows"), "in": ("out", "columns")}
SIDES = {side for _, side in PARTNERS.values()}


@dataclass(frozen=True)
class Partner:
    """The matrix that reads a coded matrix's output: its parameter name, the side of its weight
    that matches the coded rows (``columns``: ``M_h = P[:, block]``; ``rows``: ``M_h = P[block].T``),
    and the block size (the head size, or 1 for an FFN unit)."""

    name: str
    side: str
    block: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "side": self.side, "block": self.block}

    @classmethod
    def from_dict(cls, spec: dict) -> Partner:
        """A partner read back from a manifest; a ``ValueError`` names a bad side or block."""
        partner = cls(name=str(spec["name"]), side=str(spec["side"]), block=int(spec["block"]))
        if partner.side not in SIDES or partner.block < 1:
            raise ValueError(f"partner {spec!r}: side must be one of {sorted(SIDES)}, block >= 1")
        return partner


def find_partners(model: nn.Module, selected: dict[str, str]) -> dict[str, Partner]:
    """Coded parameter name -> its partner, for every selected matrix that has one. A query whose
    keys are coded too keeps the rows metric (the keys are then coded in the metric of the decoded
    queries), so no two coded matrices depend on each other."""
    adapter = adapter_for(model)
    kinds = {name: adapter.weight_kind(name) for name, _ in model.named_parameters()}
    by_place = {(name.rsplit(".", 2)[0], kind): name for name, kind in kinds.items() if kind}
    partners = {}
    for name, kind in selected.items():
        stack_kind, leaf = kind.rsplit(".", 1)
        if leaf not in PARTNERS:
            continue
        partner_leaf, side = PARTNERS[leaf]
        parent = name.rsplit(".", 2)[0]
        partner = by_place.get((parent, f"{stack_kind}.{partner_leaf}"))
        if partner is None or (leaf == "q" and partner in selected):
            continue
        block = 1 if leaf == "in" else getattr(model.get_submodule(parent), adapter.head_dim_attr)
        partners[name] = Partner(partner, side, int(block))
    return partners


def factors(partner: Partner, weight: torch.Tensor) -> torch.Tensor:
    """Upper-triangular ``R`` per block (blocks x b x b) with ``R^T R = M^T M + ridge`` for the
    partner's weight ``weight``, in float64."""
    w = weight.detach().double()
    w = w if partner.side == "rows" else w.T  # rows: one block of rows per head, each M_h transposed
    blocks = w.reshape(-1, partner.block, w.shape[1])
    gram = blocks @ blocks.transpose(1, 2)  # M_h^T M_h for every block
    mean = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-30)
    eye = torch.eye(partner.block, dtype=gram.dtype)
    return torch.linalg.cholesky(gram + RIDGE * mean[:, None, None] * eye).transpose(1, 2)


def to_metric(rows: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``R_h W_h`` per block: the rows as the partner sees them."""
    blocks = rows.double().reshape(r.shape[0], r.shape[1], -1)
    return (r @ blocks).reshape(rows.shape).to(rows.dtype)


def from_metric(rows: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The rows back from their coded form: ``W_h = R_h^{-1} (R_h W_h)``."""
    blocks = rows.double().reshape(r.shape[0], r.shape[1], -1)
    return torch.linalg.solve_triangular(r, blocks, upper=True).reshape(rows.shape).to(rows.dtype)
