"""DDPM on CIFAR-10 (Ho et al. 2020): train, resume, convert and sample."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "cifar10.yaml", ddim=False)
