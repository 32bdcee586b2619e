"""Child process entry of the built-in corpus build: `python -m research_search.corpus OUT NAME...`.

Renders each named standard library module into the folder OUT; `_stdlib.py` starts these.
"""

import sys

from research_search.corpus._stdlib import render_child_main

sys.exit(render_child_main(sys.argv[1:]))
