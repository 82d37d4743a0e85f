"""Where the packetd under test lives, for the tests that start `python -m packetd` in a subprocess.

`make test` runs the suite twice: against the editable install (packetd imported from src/) and against the
compiled wheel installed in .venv-compiled (packetd imported from that venv's site-packages; issue 15). A
subprocess given PYTHONPATH=src/ would run the pure build in both runs, so such tests put PACKAGE_PATH,
the directory this process imported packetd from, first on the subprocess's path instead.
"""

from __future__ import annotations

import os

import packetd

PACKAGE_PATH = os.path.dirname(os.path.dirname(os.path.abspath(packetd.__file__)))
