#!/bin/sh
# The build stage of every pool's image, in two steps so that the dependency layer is cached
# apart from the source:
#   install.sh deps requirements/<pool>.txt    the pool's locked dependencies, hashes checked
#   install.sh project <module>                the project itself, then import the pool's entry
# Everything comes from the locks in requirements/: nothing unpinned is downloaded, not even
# the build backend.
set -eu
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

case "$1" in
  deps)
    python -m venv /opt/venv
    pip install --require-hashes --no-deps --requirement /src/requirements/build.txt
    /opt/venv/bin/pip install --require-hashes --no-deps --requirement "/src/$2"
    ;;
  project)
    pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels /src
    /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl
    /opt/venv/bin/pip check
    /opt/venv/bin/python -c "import $2"
    ;;
  *)
    echo "usage: install.sh deps LOCK | project MODULE" >&2
    exit 2
    ;;
esac
