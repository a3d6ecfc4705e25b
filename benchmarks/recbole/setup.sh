#!/usr/bin/env bash
# RecBole 1.2.1 in its own virtualenv (it needs numpy<2, pandas<2.2, scipy<1.14, setuptools<70),
# with the same CPU torch as sessrec's so that the two toolkits time the same kernels.
# usage: benchmarks/recbole/setup.sh [VENV]   (default benchmarks/.recbole-venv)
set -euo pipefail
VENV=${1:-"$(dirname "$0")/../.recbole-venv"}
TORCH=$(python -c "import torch; print(torch.__version__.split('+')[0])")
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "torch==$TORCH"
"$VENV/bin/pip" install -q recbole==1.2.1 "numpy<2" "pandas<2.2" "scipy<1.14" "setuptools<70"
"$VENV/bin/pip" install -q "torch==$TORCH"  # in case the resolver moved it
"$VENV/bin/python" -c "import recbole, torch; print('recbole', recbole.__version__, 'torch', torch.__version__)"
