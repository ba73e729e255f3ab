"""ADM (guided-diffusion's class-conditional 64x64 network) on 64x64 image folders: train,
resume, convert and sample. See --help."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "adm_imagenet64_cond.yaml", ddim=False)
