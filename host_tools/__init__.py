"""emlog host tools: the `emlog` command and the emulators used by HIL tests and the simulator."""

from pathlib import Path

__version__ = "0.1.0"

# emlog runs from a checkout (pip install -e .): firmware/, boards/ and protocols/ are read from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
