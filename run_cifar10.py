"""DDPM on CIFAR-10: train, resume, convert and sample (see --help)."""
import os
import sys

from ppddpm.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(main(os.path.join(HERE, "configs", "cifar10.yaml"), __doc__))
