"""DDIM sampling (Song et al. 2021) of a CIFAR-10 DDPM: --stride, --eta, --skip; the same modes as run_cifar10.py."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "cifar10.yaml", ddim=True)
