"""senca in a process whose numba threads already run, as in a notebook after scanpy: it must leave the process's thread
settings as it found them. numba reads NUMBA_NUM_THREADS at import and again at every compilation and raises once its
threads run if the two differ, so a library that sets it then breaks the user's next numba call (and scanpy's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# A user's session: numba imported and its threads started before senca is used (scanpy's highly_variable_genes starts
# them with numba.get_num_threads()), NUMBA_NUM_THREADS unset. Then the calls of the README's notebook example on
# synthetic data, a short training, the regions with leiden (numba via pynndescent), and a fresh numba compilation.
_SESSION = """
import json, os, sys, warnings
import numba
import torch

numba.get_num_threads()
from numba.np.ufunc import parallel
assert parallel._is_initialized, "numba's threads should run before senca is called"


def settings():
    env = os.environ.get("NUMBA_NUM_THREADS")
    return {"numba": numba.get_num_threads(), "torch": torch.get_num_threads(), "env": env}


before = settings()

import senca

warnings.simplefilter("ignore")
adata = senca.datasets.synthetic(n_spots=300, n_genes=200, seed=0)
adata = senca.pp.select_genes(adata, n_top_genes=100)
senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
model = senca.model.SENCA(adata, n_latent=8)
adata.obsm["X_senca"] = model.get_latent_representation()
senca.tl.regions(adata, n_regions=3)
senca.tl.regions(adata, method="leiden", key_added="leiden_region")
model.train(max_epochs=1, seed=0, enable_progress_bar=False)

@numba.njit
def fresh(x):  # a new compilation re-reads NUMBA_NUM_THREADS: it raises if senca changed it
    return x + 1

fresh(1)
print(json.dumps({"before": before, "after": settings()}))
"""


def test_senca_leaves_thread_settings_of_a_running_session_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run(
        [sys.executable, "-c", _SESSION], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["after"] == seen["before"], seen
