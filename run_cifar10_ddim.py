"""DDIM sampling from a CIFAR-10 DDPM (--stride, --eta, --skip); same modes as run_cifar10.py."""
import os
import sys

from ppddpm.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(main(os.path.join(HERE, "configs", "cifar10.yaml"), __doc__,
                  preset=["sample.sampler=ddim"], default_mode="denoise"))
