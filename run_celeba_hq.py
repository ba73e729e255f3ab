"""DDPM on CelebA-HQ 128 with the FPN-style UNet: train, resume, convert and sample."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "celeba_hq.yaml", ddim=False)
