"""Codebook flips: cells of the final latent whose code index differs from the reference's.

A latent cell that lies within the chain's float32 noise of the boundary between two codes
can land on either side of it: its index flips and the decoded image changes by a whole
code's patch, although every latent is within tolerance. A flip is explained by its
margin, the reference latent's distance to that boundary (the plane bisecting the port's
code a and the reference's code b): m = (|z - a|^2 - |z - b|^2) / (2 |a - b|), positive
when b is the nearer code. A flip whose |m| is within the latent's tolerance is one the
noise explains; a larger one is a failure. The decoded image is then judged with the
flips undone: decoded from the reference's codes at the flipped cells.
"""
from typing import NamedTuple

import numpy as np


class Flips(NamedTuple):
    """The flipped cells (N, 3: example, row, column), their codes and margins."""
    cells: np.ndarray
    ours: np.ndarray          # (N,) the port's code index
    ref: np.ndarray           # (N,) the reference's code index
    margin: np.ndarray        # (N,) the reference latent's signed distance to the a|b boundary
    latent_diff: np.ndarray   # (N,) |port latent - reference latent| at the cell

    def to_arrays(self) -> dict:
        return {"flip_cells": self.cells, "flip_codes": np.stack([self.ours, self.ref], -1),
                "flip_margin": self.margin, "flip_latent_diff": self.latent_diff}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Flips":
        codes = np.asarray(arrays["flip_codes"]).reshape(-1, 2)
        return cls(np.asarray(arrays["flip_cells"]).reshape(-1, 3), codes[:, 0], codes[:, 1],
                   np.asarray(arrays["flip_margin"]), np.asarray(arrays["flip_latent_diff"]))


def find_flips(ours_idx, ref_idx, ours_latent, ref_latent, codebook) -> Flips:
    """Flips between index maps (B, h, w); latents NHWC in the quantizer's units."""
    ours_idx, ref_idx = np.asarray(ours_idx), np.asarray(ref_idx)
    if ours_idx.shape != ref_idx.shape:
        raise ValueError(f"index maps differ in shape: {ours_idx.shape} vs {ref_idx.shape}")
    cells = np.argwhere(ours_idx != ref_idx)
    at = tuple(cells.T)
    codebook = np.asarray(codebook, np.float64)
    z = np.asarray(ref_latent, np.float64)[at]
    a, b = codebook[ours_idx[at]], codebook[ref_idx[at]]
    margin = ((np.sum((z - a) ** 2, -1) - np.sum((z - b) ** 2, -1))
              / (2 * np.linalg.norm(a - b, axis=-1)))
    diff = np.linalg.norm(np.asarray(ours_latent, np.float64)[at] - z, axis=-1)
    return Flips(cells, ours_idx[at], ref_idx[at], margin, diff)


def undo_flips(ours_idx, ref_idx):
    """The port's indices with the reference's at every flipped cell."""
    ours_idx, ref_idx = np.asarray(ours_idx), np.asarray(ref_idx)
    return np.where(ours_idx != ref_idx, ref_idx, ours_idx)


def table(name: str, flips: Flips, allowed: float) -> list:
    """Markdown rows, one per flip: the cell, both codes, the margin and the verdict."""
    return [f"| {name} | ({b}, {h}, {w}) | {o} | {r} | {m:.3g} | {d:.3g} | "
            f"{'explained' if abs(m) <= allowed else 'FAIL'} |"
            for (b, h, w), o, r, m, d in zip(flips.cells, flips.ours, flips.ref, flips.margin,
                                             flips.latent_diff)]


TABLE_HEADER = ["| fixture | cell (example, row, col) | port code | reference code | margin "
                "| latent diff | verdict |", "|---|---|---|---|---|---|---|"]
