"""Transformer encoders over temporal patches, the masked autoencoder around them, and the projection head."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, T) -> (B, T / patch, C * patch): one token per `patch` consecutive samples of all channels."""
    b, c, t = x.shape
    return x.reshape(b, c, t // patch, patch).permute(0, 2, 1, 3).reshape(b, t // patch, c * patch)


def log_power(x: torch.Tensor, bin_size: int) -> torch.Tensor:
    """(B, C, T) -> (B, C, T / bin): log mean square over consecutive bins, an EMG amplitude envelope."""
    b, c, t = x.shape
    return torch.log(x.float().reshape(b, c, t // bin_size, bin_size).pow(2).mean(-1) + 1e-4)


class Encoder(nn.Module):
    """Temporal patch embedding + learnable [CLS] + timm Transformer blocks.

    With `bin_size` > 1 each patch is embedded from its log-power envelope (one value per channel and bin)
    instead of the raw samples; a patch still spans `patch` samples.

    `forward` returns the pooled window embedding: the [CLS] output (`pooling="cls"`) or the mean of the patch
    outputs (`pooling="mean"`).
    """

    def __init__(self, channels: int, samples: int, patch: int, width: int, depth: int, heads: int,
                 mlp_ratio: float, pooling: str = "cls", bin_size: int = 1):
        super().__init__()
        if samples % patch:
            raise ValueError(f"window of {samples} samples is not a whole number of {patch}-sample patches")
        if patch % bin_size:
            raise ValueError(f"patch of {patch} samples is not a whole number of {bin_size}-sample bins")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
        self.channels, self.pooling, self.width, self.bin_size = channels, pooling, width, bin_size
        self.num_patches = samples // patch
        self.token_size = patch // bin_size  # values per channel in one token
        self.embed = nn.Linear(channels * self.token_size, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, width))
        self.blocks = nn.Sequential(*[Block(width, heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        trunc_normal_(self.cls_token, std=0.02)
        trunc_normal_(self.pos_embed, std=0.02)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, N, C * token_size): what the tokens are embedded from (and the MAE rebuilds)."""
        return patchify(log_power(x, self.bin_size) if self.bin_size > 1 else x, self.token_size)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.patches(x)) + self.pos_embed[:, 1:]

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend [CLS] to (already position-embedded) patch tokens and run the blocks: (B, 1 + N, D)."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return self.norm(self.blocks(torch.cat([cls, tokens], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encode_tokens(self.patch_tokens(x))
        return out[:, 0] if self.pooling == "cls" else out[:, 1:].mean(dim=1)


class MaskedAutoencoder(nn.Module):
    """MAE: encode a random subset of patches (the visible ones only), reconstruct all, MSE on the masked ones."""

    def __init__(self, encoder: Encoder, decoder_width: int, decoder_depth: int, heads: int, mask_ratio: float):
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask ratio must be in (0, 1), not {mask_ratio}")
        self.encoder, self.mask_ratio = encoder, mask_ratio
        n = encoder.num_patches
        self.keep = max(1, int(round(n * (1.0 - mask_ratio))))
        self.decoder_embed = nn.Linear(encoder.width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder_pos = nn.Parameter(torch.zeros(1, n + 1, decoder_width))
        self.decoder = nn.Sequential(*[Block(decoder_width, heads, 4.0, qkv_bias=True) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_width)
        self.predict = nn.Linear(decoder_width, encoder.channels * encoder.token_size)
        trunc_normal_(self.mask_token, std=0.02)
        trunc_normal_(self.decoder_pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss of one batch."""
        target = self.encoder.patches(x)
        b, n, _ = target.shape
        tokens = self.encoder.embed(target) + self.encoder.pos_embed[:, 1:]
        order = torch.rand(b, n, device=x.device).argsort(dim=1)
        visible = order[:, :self.keep]
        gather = visible.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        latent = self.decoder_embed(self.encoder.encode_tokens(torch.gather(tokens, 1, gather)))
        # Put the visible tokens back in place, mask tokens everywhere else.
        full = self.mask_token.expand(b, n, -1).clone()
        full.scatter_(1, visible.unsqueeze(-1).expand(-1, -1, full.shape[-1]), latent[:, 1:].to(full.dtype))
        full = torch.cat([latent[:, :1].to(full.dtype), full], dim=1) + self.decoder_pos
        pred = self.predict(self.decoder_norm(self.decoder(full)))[:, 1:]
        masked = torch.ones(b, n, device=x.device)
        masked.scatter_(1, visible, 0.0)
        per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)
        return (per_patch * masked).sum() / masked.sum()


class ProjectionHead(nn.Module):
    """h: maps the EMG embedding into the pose embedding space."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
