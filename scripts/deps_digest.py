"""Print a digest of what a venv of this project is made from: pyproject.toml's [project]
and [build-system] tables and the lock file. Its [tool.*] settings (pytest, ruff, the
import rules) change no installed file, so editing them neither reinstalls the venv
(scripts/bootstrap.sh's stamp) nor rebuilds the VM box (scripts/build-box.sh).

    python3 scripts/deps_digest.py pyproject.toml requirements.lock
"""

import hashlib
import json
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
wanted = {key: project.get(key) for key in ("project", "build-system")}
digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode())
with open(sys.argv[2], "rb") as f:
    digest.update(f.read())
print(digest.hexdigest())
