"""ResShift in JAX/Flax: residual-shifting diffusion for image restoration."""
