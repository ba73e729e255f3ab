"""Files: atomic writes, the allow-list unpickler, Paddle and safetensors weight files, images
and grids. Everything written to disk goes through here, atomically."""
