"""The 2-D demo: quality figures, scatter plots and GIFs of the toy sets (data/toy.py)."""
