"""Known files of the public datasets senca can read: sha256, size in bytes, and source repositories.

The hashes were computed from byte-identical copies of the files at the pinned commits (the folders under
``$SENCA_DATA_DIR``). Paths are the local layout: ``her2st/...`` is the almaan/her2st repository with the leading
``data/`` removed from ``data/ST-*`` paths (``app/`` and ``res/`` keep their repository paths);
``spacrd_labels/...`` is the wenwenmin/SpaCRD repository as is.
"""

from __future__ import annotations

#: dataset folder -> (raw-file URL prefix at a pinned commit, function mapping a local path to the repository path)
HER2ST_COMMIT = "85df7411b987a7dec3feff9718b869a7a82091ec"
SPACRD_COMMIT = "91eebc18e3f1b6ba498cc47986e42856f51cb7e8"
BASE_URLS = {
    "her2st": f"https://github.com/almaan/her2st/raw/{HER2ST_COMMIT}/",
    "spacrd_labels": f"https://github.com/wenwenmin/SpaCRD/raw/{SPACRD_COMMIT}/",
}

#: her2st section -> (width, height, file size in bytes) of its full-resolution H&E JPEG, as recorded in the
#: repository's ``app/data/dims.list`` (R saveRDS). ``pixel_x``/``pixel_y`` of the spot files are in this frame.
HER2ST_FULLRES_DIMS: dict[str, tuple[int, int, int]] = {
    "A1": (6954, 7435, 28071304),
    "A2": (6966, 7441, 25949164),
    "A3": (6935, 7437, 27558937),
    "A4": (6975, 7424, 25109197),
    "A5": (6966, 7419, 27369086),
    "A6": (6980, 7404, 21798488),
    "B1": (9260, 9912, 4850462),
    "B2": (9282, 9897, 4879943),
    "B3": (9259, 9912, 4749643),
    "B4": (9272, 9923, 4076552),
    "B5": (9284, 9906, 4341374),
    "B6": (9271, 9931, 4230190),
    "C1": (9252, 9932, 4888799),
    "C2": (9274, 9911, 3990230),
    "C3": (9270, 9936, 3915842),
    "C4": (9278, 9916, 3806070),
    "C5": (9272, 9901, 3719130),
    "C6": (9288, 9907, 3941039),
    "D1": (9275, 9885, 6944209),
    "D2": (9277, 9892, 5265859),
    "D3": (9297, 9918, 5555570),
    "D4": (9307, 9881, 5701704),
    "D5": (9272, 9900, 5586641),
    "D6": (9286, 9885, 5672214),
    "E1": (9322, 9922, 9502957),
    "E2": (9308, 9862, 9808505),
    "E3": (9344, 9907, 9849103),
    "F1": (9307, 9855, 10224131),
    "F2": (9322, 9906, 10362128),
    "F3": (9328, 9900, 10207409),
    "G1": (9310, 9910, 5828713),
    "G2": (9326, 9863, 6150751),
    "G3": (9309, 9861, 5417039),
    "H1": (9301, 9869, 7154315),
    "H2": (9314, 9873, 6681141),
    "H3": (9319, 9889, 6505100),
}
