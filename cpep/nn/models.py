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
    return torch.log(x.float().reshape(b, c, t // bin_size, bin_size).square().mean(-1) + 1e-4)


def sincos_1d(length: int, width: int) -> torch.Tensor:
    """(length, width) fixed position embeddings: sines then cosines of the position at `width / 2` frequencies
    from 1 down to 1/10000."""
    if width % 2:
        raise ValueError(f"sin-cos position embeddings need an even width, not {width}")
    freq = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float64) / (width // 2))
    angle = torch.arange(length, dtype=torch.float64)[:, None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=1).float()


def fixed_position_embedding(num_patches: int, width: int) -> torch.Tensor:
    """(1, 1 + N, width): zeros for [CLS], then sin-cos for the patches. Kept as a buffer, so that no
    `requires_grad_(True)` (the alignment unfreezing an encoder) can make it trainable."""
    return torch.cat([torch.zeros(1, width), sincos_1d(num_patches, width)]).unsqueeze(0)


class Encoder(nn.Module):
    """Temporal patch embedding + fixed sin-cos positions + learnable [CLS] + timm Transformer blocks.

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
        self.register_buffer("pos_embed", fixed_position_embedding(self.num_patches, width))
        self.blocks = nn.Sequential(*[Block(width, heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        trunc_normal_(self.cls_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token"}

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, N, C * token_size): what the tokens are embedded from (and the MAE rebuilds)."""
        return patchify(log_power(x, self.bin_size) if self.bin_size > 1 else x, self.token_size)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, N, C * token_size) -> (B, N, D): embedded patches plus their positions."""
        return self.embed(patches) + self.pos_embed[:, 1:]

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend [CLS] to (already position-embedded) patch tokens and run the blocks: (B, 1 + N, D)."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return self.norm(self.blocks(torch.cat([cls, tokens], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encode_tokens(self.embed_patches(self.patches(x)))
        return out[:, 0] if self.pooling == "cls" else out[:, 1:].mean(dim=1)


class MaskedAutoencoder(nn.Module):
    """MAE: encode a random subset of patches (the kept ones only), reconstruct all, MSE on the removed ones."""

    def __init__(self, encoder: Encoder, decoder_width: int, decoder_depth: int, decoder_heads: int,
                 mask_ratio: float):
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask ratio must be in (0, 1), not {mask_ratio}")
        if decoder_width % decoder_heads:
            raise ValueError(f"decoder width {decoder_width} is not a multiple of {decoder_heads} heads")
        self.encoder, self.mask_ratio = encoder, mask_ratio
        self.decoder_embed = nn.Linear(encoder.width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.register_buffer("decoder_pos_embed", fixed_position_embedding(encoder.num_patches, decoder_width))
        self.decoder = nn.Sequential(*[Block(decoder_width, decoder_heads, 4.0, qkv_bias=True)
                                       for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_width)
        self.predict = nn.Linear(decoder_width, encoder.channels * encoder.token_size)
        trunc_normal_(self.mask_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"mask_token"}

    def random_masking(self, x: torch.Tensor, mask_ratio: float):
        """Keep a random `1 - mask_ratio` of each sample's tokens (B, N, D).

        Returns the kept tokens (B, keep, D), the mask (B, N: 1 = removed, 0 = kept, in the original order) and
        ids_restore (B, N), the permutation that puts the shuffled tokens back in the original order.
        """
        b, n, d = x.shape
        keep = max(1, int(round(n * (1.0 - mask_ratio))))
        ids_shuffle = torch.rand(b, n, device=x.device).argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        x_masked = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0.0
        return x_masked, torch.gather(mask, 1, ids_restore), ids_restore

    def forward_encoder(self, patches: torch.Tensor, mask_ratio: float):
        """Patches (B, N, C * token_size) -> latent (B, 1 + keep, D) of [CLS] and the kept patches, mask,
        ids_restore."""
        tokens, mask, ids_restore = self.random_masking(self.encoder.embed_patches(patches), mask_ratio)
        return self.encoder.encode_tokens(tokens), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Latent (B, 1 + keep, D) -> predicted patches (B, N, C * token_size)."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        mask_tokens = self.mask_token.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:], mask_tokens], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        return self.predict(self.decoder_norm(self.decoder(x)))[:, 1:]

    def forward_loss(self, patches: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only."""
        per_patch = (pred.float() - patches.float()).square().mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, x: torch.Tensor):
        """(loss, pred, mask) of one batch (B, C, T)."""
        patches = self.encoder.patches(x)  # what the encoder sees, and the reconstruction's target
        latent, mask, ids_restore = self.forward_encoder(patches, self.mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(patches, pred, mask), pred, mask


class ProjectionHead(nn.Module):
    """h: maps the EMG embedding into the pose embedding space."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
