"""``python -m simulator --port N [flags]``: serve the upstream simulator (no Django)."""

import simulator
from simulator.cli import main

if __name__ == "__main__":
    main(description=simulator.__doc__)
