"""DDPM on CelebA 64x64 (the DDIM paper's UNet and crop): train, resume, convert and sample."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "celeba64.yaml", ddim=False)
