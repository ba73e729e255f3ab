"""DDIM sampling of a CelebA-HQ DDPM: --stride, --eta, --skip; the same modes as run_celeba_hq.py."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "celeba_hq.yaml", ddim=True)
