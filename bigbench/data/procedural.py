"""Learnable datasets generated from a seed, with no download.

``digits``: 28×28 images of the ten digits. Each sample starts from a 5×7 glyph, is randomly
scaled, rotated, sheared and shifted, given a random stroke weight and contrast, and covered in
Gaussian noise. The reference CNN reaches well above 90% test accuracy on it in a minute of CPU.

``tokens``: sequences of uniform random tokens from ``[0, vocab_size)``; the label is 1 when
token 1 occurs more often than token 2 in the sequence, else 0. A recurrent network learns it by
keeping a running difference of two counts in its hidden state; a bag-of-tokens view solves it
too, so it tests learning, not long-range memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bigbench.data.specs import DigitsArgs, TokensArgs
from bigbench.data.tensors import Dataset, Split, make_info

# The ten digits as 7×5 bitmaps ("#" is ink), one row per string.
_GLYPHS = [
    (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),  # 0
    ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),  # 1
    (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),  # 2
    ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),  # 3
    ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),  # 4
    ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),  # 5
    ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),  # 6
    ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),  # 7
    (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),  # 8
    (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),  # 9
]


def _glyph_tensor() -> torch.Tensor:
    """The ten 7×5 glyphs as a (10, 1, 7, 5) float tensor."""
    bits = [[[1.0 if c == "#" else 0.0 for c in row] for row in glyph] for glyph in _GLYPHS]
    return torch.tensor(bits).unsqueeze(1)


def _digit_images(labels: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """Render one 28×28 image per label."""
    n = labels.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    # affine_grid maps output coordinates to glyph coordinates, so a glyph spanning a fraction
    # f of the image needs a scale of 1/f; the glyph fills ~ 70% of the height, 50% of the width.
    scale = uniform(0.8, 1.15)
    angle = uniform(-15, 15) * math.pi / 180
    shear = uniform(-0.2, 0.2)
    sx, sy = 1 / (0.5 * scale), 1 / (0.7 * scale)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([sx * cos, -sx * sin + shear, uniform(-0.25, 0.25) * sx], dim=1),
        torch.stack([sy * sin, sy * cos, uniform(-0.2, 0.2) * sy], dim=1),
    ], dim=1)
    glyphs = _glyph_tensor()[labels]
    grid = F.affine_grid(theta, [n, 1, 28, 28], align_corners=False)
    soft = F.grid_sample(glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # A per-sample threshold turns the soft edges into thinner or bolder strokes.
    threshold = uniform(0.15, 0.5).view(n, 1, 1, 1)
    strokes = ((soft - threshold) * 4).clamp(0, 1) * uniform(0.6, 1.0).view(n, 1, 1, 1)
    return strokes + noise * torch.randn(strokes.shape, generator=generator)


def _digits_split(size: int, noise: float, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(size) % 10)[torch.randperm(size, generator=generator)]
    return Split(_digit_images(labels, noise, generator), labels)


def build_digits(args: DigitsArgs, device: torch.device) -> Dataset:
    """The ``digits`` dataset; train and test use independent generators of the same seed."""
    train = _digits_split(args.size, args.noise, seed=args.seed * 2)
    test = _digits_split(args.test_size, args.noise, seed=args.seed * 2 + 1) \
        if args.test_size else None
    dataset = Dataset(train.to(device), test.to(device) if test else None,
                      make_info(train, test, num_classes=10, vocab_size=None))
    return dataset


def _tokens_split(size: int, args: TokensArgs, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, args.vocab_size, (size, args.seq_len), generator=generator)
    y = ((x == 1).sum(dim=1) > (x == 2).sum(dim=1)).long()
    return Split(x, y)


def build_tokens(args: TokensArgs, device: torch.device) -> Dataset:
    """The ``tokens`` dataset (see the module docstring for the rule)."""
    train = _tokens_split(args.size, args, seed=args.seed * 2)
    test = _tokens_split(args.test_size, args, seed=args.seed * 2 + 1) if args.test_size else None
    return Dataset(train.to(device), test.to(device) if test else None,
                   make_info(train, test, num_classes=2, vocab_size=args.vocab_size))
