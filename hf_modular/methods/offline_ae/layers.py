"""The two row coders: an autoencoder (the method) and truncated SVD (the baseline).

Both see a weight matrix as rows (``nn.Linear.weight`` is out x in, so a row is what one output
unit reads) and store, per row, a few numbers (latents / coefficients), plus one decoder per group
of rows (decoder MLP / right singular vectors). In joint mode a group is the rows of one matrix kind
across all layers, so the decoder is shared.

The autoencoder follows the published design: encoder m -> 8x -> 4x -> d and decoder d -> 2x -> 4x
-> m with LeakyReLU and a final Tanh; rows are coded as unit vectors and rebuilt at their stored
L2 norm; the loss mixes mean(1 - cosine) and RMSE. Only latents, decoder and norms are stored.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import ConfigError


def decoder_numbers(latent: int, width: int, columns: int) -> int:
    """Parameters of the decoder d -> 2x -> 4x -> m (weights and biases)."""
    return latent * 2 * width + 2 * width + 2 * width * 4 * width + 4 * width + 4 * width * columns + columns


def autoencoder_shape(rows: int, columns: int, budget: int, latent_fraction: float) -> tuple[int, int]:
    """(latent size d, width x) whose latents + norms + decoder fit ``budget`` numbers, latents
    taking about ``latent_fraction`` of it and x as large as the rest allows."""
    latent = max(1, int((latent_fraction * budget - rows) // rows))
    rest = budget - rows * latent - rows
    # decoder_numbers is 8x^2 + (2d + 6 + 4m)x + m: the largest x with decoder <= rest
    a, b, c = 8, 2 * latent + 6 + 4 * columns, columns - rest
    width = int((-b + math.sqrt(max(b * b - 4 * a * c, 0))) / (2 * a)) if c <= 0 else 0
    while width > 0 and decoder_numbers(latent, width, columns) > rest:
        width -= 1
    if width < 1:
        raise ConfigError(
            f"a budget of {budget} numbers cannot hold an autoencoder for {rows} rows of {columns} "
            f"(latents {rows}x{latent} + norms + the smallest decoder need "
            f"{rows * latent + rows + decoder_numbers(latent, 1, columns)}): use a lower ratio or joint mode"
        )
    return latent, width


def svd_rank(rows: int, columns: int, budget: int) -> int:
    """The largest rank whose factors (rows x r coefficients, r x columns basis) fit ``budget``."""
    rank = min(budget // (rows + columns), rows, columns)
    if rank < 1:
        raise ConfigError(
            f"a budget of {budget} numbers cannot hold even a rank-1 SVD of {rows}x{columns} "
            f"({rows + columns} numbers): use a lower ratio or joint mode"
        )
    return rank


class RowAutoencoder(nn.Module):
    def __init__(self, columns: int, latent: int, width: int):
        super().__init__()
        act = nn.LeakyReLU
        self.encoder = nn.Sequential(
            nn.Linear(columns, 8 * width), act(), nn.Linear(8 * width, 4 * width), act(), nn.Linear(4 * width, latent)
        )
        self.decoder = build_decoder(columns, latent, width)


def build_decoder(columns: int, latent: int, width: int) -> nn.Sequential:
    act = nn.LeakyReLU
    return nn.Sequential(
        nn.Linear(latent, 2 * width),
        act(),
        nn.Linear(2 * width, 4 * width),
        act(),
        nn.Linear(4 * width, columns),
        nn.Tanh(),
    )


def rebuild_rows(decoder: nn.Module, latents: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Decoded rows, rescaled to their stored norms."""
    rows = decoder(latents)
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12) * norms[:, None]


def fit_autoencoder(
    rows: torch.Tensor,
    latent: int,
    width: int,
    steps: int,
    learning_rate: float,
    cosine_weight: float,
    rmse_weight: float,
    generator: torch.Generator,
    progress: object = None,
) -> dict[str, torch.Tensor]:
    """Train an autoencoder on ``rows`` (full batch, Adam); returns what is stored:
    ``latents``, ``norms`` and the decoder's ``decoder.<i>.weight/bias``."""
    rows = rows.detach().float()
    norms = rows.norm(dim=1)
    units = rows / norms[:, None].clamp_min(1e-12)
    model = RowAutoencoder(rows.shape[1], latent, width)
    with torch.no_grad():
        for param in model.parameters():  # seeded initialisation, independent of the global RNG
            bound = 1 / math.sqrt(param.shape[-1])
            param.copy_(torch.rand(param.shape, generator=generator) * 2 * bound - bound)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for _ in range(steps):
        optimizer.zero_grad()
        rebuilt = rebuild_rows(model.decoder, model.encoder(units), norms)
        cosine = nn.functional.cosine_similarity(rebuilt, rows, dim=1).mean()
        rmse = (rebuilt - rows).pow(2).mean().sqrt()
        loss = cosine_weight * (1 - cosine) + rmse_weight * rmse
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress.update(1)
    with torch.no_grad():
        latents = model.encoder(units)
    stored = {"latents": latents.detach(), "norms": norms}
    stored.update({f"decoder.{k}": v.detach().clone() for k, v in model.decoder.state_dict().items()})
    return stored


def decode_autoencoder(stored: dict[str, torch.Tensor], columns: int, latent: int, width: int) -> torch.Tensor:
    decoder = build_decoder(columns, latent, width)
    decoder.load_state_dict({k.removeprefix("decoder."): v for k, v in stored.items() if k.startswith("decoder.")})
    with torch.no_grad():
        return rebuild_rows(decoder, stored["latents"], stored["norms"])


def fit_svd(rows: torch.Tensor, rank: int) -> dict[str, torch.Tensor]:
    """Truncated SVD: ``coefficients`` (U_r S_r, rows x r) and ``basis`` (V_r^T, r x columns)."""
    u, s, vh = torch.linalg.svd(rows.detach().double(), full_matrices=False)
    return {"coefficients": (u[:, :rank] * s[:rank]).float(), "basis": vh[:rank].float()}


def decode_svd(stored: dict[str, torch.Tensor]) -> torch.Tensor:
    return stored["coefficients"] @ stored["basis"]
