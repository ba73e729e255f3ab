"""DDPM on MNIST (28x28 greyscale digits): train, resume, convert and sample."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "mnist.yaml", ddim=False)
