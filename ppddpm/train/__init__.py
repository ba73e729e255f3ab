"""Training: the trainer and what it needs (checkpoint names, EMA, learning rate, optimizer,
signals, the run lock, timestep samplers)."""
