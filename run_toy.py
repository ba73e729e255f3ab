"""DDPM on 2-D toy data (gaussian25 by default; -o data.dataset=scurve | swissroll | gaussian8 |
moons): a one-minute CPU demo with no download. It writes a scatter plot, a GIF of the reverse
process and a JSON of quality figures to toy_out/<data set>/sample/. Run again, it continues its
run (or says it is finished); --overwrite True starts afresh. The same modes and samplers as
run_cifar10.py."""
from ppddpm.cli import script_main

if __name__ == "__main__":
    script_main(__file__, "toy.yaml", ddim=False, rerun_continues=True)
