"""Torch-free reading of PyTorch checkpoints and their mapping to Flax parameter trees."""
