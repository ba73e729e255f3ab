"""DDPM on 2-D toy data (gaussian25 by default; -o data.dataset=scurve | swissroll | gaussian8 |
moons): a two-minute CPU demo with no download. It writes a scatter plot, a GIF of the reverse
process and a JSON of quality figures. The same modes and samplers as run_cifar10.py; see --help."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "toy.yaml", ddim=False)
