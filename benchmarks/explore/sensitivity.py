"""Sensitivity of the winning recipe (kernel attention smoothing) to its knobs, 3 seeds, gmm_km on 15 PCs."""

import numpy as np
from _common import cluster, knn, pca, report, sections
from _recipe import embed, weights

SEEDS = [0, 1, 2]
secs = sections()
configs = [{}]
for se in [1.5, 2.5]:
    configs.append({"se": se})
for sh in [0.75, 1.5]:
    configs.append({"sh": sh})
for k in [5, 7]:
    configs.append({"k": k})
configs += [{"he": "scale1"}, {"he": "rgb_only"}, {"refine": True}, {"meth": "gmm"}, {"n_top": 2000}, {"n_pca": 30}]
rows = {}
for s in secs:
    for c0 in configs:
        c = {
            "se": 2.0,
            "sh": 1.0,
            "k": 6,
            "passes": 2,
            "npc": 15,
            "he": "all",
            "refine": False,
            "meth": "gmm_km",
            "n_top": 3000,
            "n_pca": 50,
        }
        c.update(c0)
        idx = knn(s.xy, c["k"])
        logx = s.logx
        if c["n_top"] != 3000:
            import _data
            from _common import hvg_lognorm

            logx = hvg_lognorm(_data.load(s.name)["counts"], c["n_top"])[0]
        p = pca(logx, n=c["n_pca"])
        for use_img in [False, True] if s.he is not None else [False]:
            hp = None
            if use_img:
                he = s.he
                if c["he"] == "scale1":
                    he = he[:, :12]
                elif c["he"] == "rgb_only":
                    he = np.hstack([he[:, :6], he[:, 12:18]])
                hh = (he - he.mean(0)) / (he.std(0) + 1e-8)
                hp = pca(hh, n=min(10, hh.shape[1]))
            a = weights(p, hp, idx, c["se"], c["sh"] if use_img else 0)
            z = embed(p, idx, a, c["passes"])
            key = " ".join(f"{k}={v}" for k, v in c0.items()) or "default"
            key += f" img={use_img}"
            rows.setdefault(key, {})[s.name] = [
                s.score(cluster(z, s.n, sd, c["meth"], n_pcs=c["npc"], idx=idx, do_refine=c["refine"]))[0]
                for sd in SEEDS
            ]
for key, r in rows.items():
    if len(r) == 4:
        report(key, r)
    else:
        print(f"{key:55s} A1 {np.mean(r['A1']):.3f}±{np.std(r['A1']):.3f}")
