"""DDPM on Fashion-MNIST (28x28 greyscale clothes): train, resume, convert and sample."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "fashion_mnist.yaml", ddim=False)
