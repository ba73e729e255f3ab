"""Files: atomic writes, the allow-list unpickler, Paddle, PyTorch (read without it) and safetensors weight files, images
and grids. Everything written to disk goes through here, atomically."""
