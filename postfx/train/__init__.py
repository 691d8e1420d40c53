"""Training (torch, the postfx[train] extra): generator / discriminator models,
datasets, the pix2pix loop. Nothing in the runtime imports this package."""
