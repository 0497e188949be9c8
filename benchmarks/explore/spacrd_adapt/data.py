import os
import pickle

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SENCA_DATA_DIR", "/work/shared/data")
SECTIONS = ["A1", "B1", "C1", "D1"]
CANCER = ["invasive cancer", "cancer in situ"]


def load():
    p = os.path.join(os.environ.get("TMPDIR", "/tmp"), "senca_spacrd_explore.pkl")
    if os.path.exists(p):
        return pickle.load(open(p, "rb"))
    import senca

    out = {}
    for s in SECTIONS:
        a = senca.datasets.her2st(s, image=None)
        a.obs["cancer"] = a.obs["pathologist"].astype(str).isin(CANCER).to_numpy()
        out[s] = a
    pickle.dump(out, open(p, "wb"))
    return out
