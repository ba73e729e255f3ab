"""python -m ppddpm.web --models DIR: the local web page (see command.py)."""
import sys

from .command import main

sys.exit(main())
