import sys
from pathlib import Path

# Test helpers (parity.py, nets.py) live beside the tests; importlib mode keeps
# the tests directory off sys.path, so add it here.
sys.path.insert(0, str(Path(__file__).parent))
